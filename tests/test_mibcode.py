"""tests/support/mibcode.py: pysnmp's MIB modules, compiled once per file, load as pysnmp
loads them."""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from types import CodeType, SimpleNamespace
from typing import Any

import pytest
from pysnmp.smi import builder

from tests.support.mibcode import CachedRunpy, cached_read

pytestmark = pytest.mark.unit

MODULE = "NETALERT-CODE-TEST-MIB"
SOURCE = """\
(Integer32,) = mibBuilder.import_symbols("SNMPv2-SMI", "Integer32")
Answer = type("Answer", (), {{"value": {value}, "file": __file__, "name": __name__}})
mibBuilder.export_symbols("NETALERT-CODE-TEST-MIB", Answer=Answer, Base=Integer32)
"""


def _loaded(folder: Path) -> dict[str, Any]:
    mib = builder.MibBuilder()
    mib.add_mib_sources(builder.DirMibSource(str(folder)))
    mib.load_modules(MODULE)
    return mib.mibSymbols[MODULE]  # type: ignore[no-any-return]


def test_each_module_file_is_compiled_once_and_again_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = builder.DirMibSource.read
    original_read = getattr(source, "cached_original", source)
    reads: list[tuple[str, str]] = []
    compiles: list[str] = []

    def counting_read(self: Any, f: str) -> Any:
        reads.append((self._srcName, f))
        return original_read(self, f)

    def counting_compile(run_name: str, fname: str) -> tuple[CodeType, str]:
        compiles.append(fname)
        return runpy._get_code_from_file(run_name, fname)  # type: ignore[attr-defined,no-any-return]

    real = SimpleNamespace(
        run_path=runpy.run_path,
        _get_code_from_file=counting_compile,
        _run_module_code=runpy._run_module_code,  # type: ignore[attr-defined]
    )
    monkeypatch.setattr(builder.DirMibSource, "read", cached_read(counting_read))
    monkeypatch.setattr(builder, "runpy", CachedRunpy(real))  # type: ignore[arg-type]
    path = tmp_path / f"{MODULE}.py"
    path.write_text(SOURCE.format(value=41))

    first, second = _loaded(tmp_path), _loaded(tmp_path)
    assert first["Answer"] is not second["Answer"]  # each builder ran the module
    assert first["Answer"].value == second["Answer"].value == 41
    assert first["Answer"].file == str(path)  # as runpy.run_path runs a file
    assert first["Answer"].name == "<run_path>"
    assert first["Base"].__name__ == "Integer32"  # imported through the builder
    assert compiles.count(str(path)) == 1
    assert reads.count((str(tmp_path), MODULE)) == 1

    path.write_text(SOURCE.format(value=42_000))
    later = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(later, later))
    assert _loaded(tmp_path)["Answer"].value == 42_000
    assert compiles.count(str(path)) == 2
    assert reads.count((str(tmp_path), MODULE)) == 2


def test_a_builder_loads_the_same_modules_with_and_without_the_plugin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def symbols() -> dict[str, list[tuple[str, str]]]:
        mib = builder.MibBuilder()
        mib.load_modules("SNMPv2-MIB", "SNMP-USER-BASED-SM-MIB", "SNMP-TARGET-MIB")
        return {
            module: sorted(
                (name, str(getattr(obj, "name", "")))
                for name, obj in found.items()
                if not name.startswith("__pysnmp_")
            )
            for module, found in mib.mibSymbols.items()
        }

    cached = symbols()
    read = builder.DirMibSource.read
    monkeypatch.setattr(builder.DirMibSource, "read", getattr(read, "cached_original", read))
    monkeypatch.setattr(builder, "runpy", runpy)
    assert symbols() == cached
    assert ("sysUpTime", "(1, 3, 6, 1, 2, 1, 1, 3)") in cached["SNMPv2-MIB"]


def test_the_plugin_wraps_pysnmp_in_this_process() -> None:
    assert hasattr(builder.DirMibSource.read, "cached_original")
    assert isinstance(builder.runpy, CachedRunpy)
