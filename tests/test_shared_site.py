"""What the processes of one test run share (tests/support/site/sitecustomize.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netalert.mib import compiler
from tests.support.site.sitecustomize import shared_parser

MIB = """\
SHARED-TEST-MIB DEFINITIONS ::= BEGIN
IMPORTS enterprises FROM SNMPv2-SMI;
sharedTest OBJECT IDENTIFIER ::= { enterprises 32473 93 }
END
"""


def test_the_smi_parser_tables_are_built_once_per_run(tmp_path: Path) -> None:
    product = getattr(compiler._parser, "shared_original", compiler._parser)
    original = product.__wrapped__  # functools.cache's: a new parser each call
    first = shared_parser(original, tmp_path)()
    cache = tmp_path / "smi-parser.lark"
    assert cache.stat().st_size > 0
    stamp = cache.stat().st_mtime_ns
    second = shared_parser(original, tmp_path)()  # another process of the run
    assert second is not first
    assert cache.stat().st_mtime_ns == stamp  # read, not built and written again
    assert second.parse(MIB) == first.parse(MIB)
    assert second.parse(MIB)  # the module's definitions, not an empty parse


def test_pysnmp_engines_of_one_process_share_one_parser() -> None:
    # pysnmp's MIB compiler asks pysmi for a parser at each engine's first name lookup
    from pysnmp.smi import compiler as pysnmp_compiler
    from pysnmp.smi.builder import MibBuilder

    factory = pysnmp_compiler.parserFactory
    assert hasattr(factory, "shared_original")
    builders = [MibBuilder(), MibBuilder()]
    for builder in builders:
        pysnmp_compiler.add_mib_compiler(builder)
    first, second = (builder.get_mib_compiler()._parser for builder in builders)
    assert first is second
    assert first.parse(MIB) == compiler._parser().parse(MIB)


def test_the_controller_rewrites_the_modules_it_hands_out(
    pytestconfig: pytest.Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _pytest.assertion import rewrite

    from tests.support.pyc import collected_files, prewrite

    monkeypatch.delenv("NETALERT_SOAK", raising=False)
    for name in ["test_a.py", "sub/test_b.py", "soak/test_c.py", "helper.py"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("def test_x() -> None:\n    x = 1\n    assert x == 2\n")
    first, second = tmp_path / "test_a.py", tmp_path / "sub" / "test_b.py"
    assert collected_files([str(tmp_path)], tmp_path) == sorted([first, second])
    assert collected_files([f"{first}::test_x"], tmp_path) == [first]
    monkeypatch.setattr(rewrite, "get_cache_dir", lambda file: tmp_path / "pyc" / file.parent.name)
    assert prewrite(pytestconfig, [first, second]) == 2
    assert prewrite(pytestconfig, [first, second]) == 0  # current: read, not written again
    code = rewrite._read_pyc(
        first, tmp_path / "pyc" / first.parent.name / f"test_a{rewrite.PYC_TAIL}"
    )
    assert code is not None
    namespace: dict[str, object] = {}
    exec(code, namespace)
    with pytest.raises(AssertionError, match="assert 1 == 2"):  # pytest's explanation
        namespace["test_x"]()  # type: ignore[operator]
