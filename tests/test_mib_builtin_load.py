"""The first run's extraction of the built-in MIB facts compiles each module file once.

pysnmp's ``MibBuilder`` compiles a module's source when it reads it, then again in
``runpy.run_path`` to run it, and reads (compiles) a loaded module again whenever it
is asked for it: about 1,700 compiles of 300 files, two thirds of the extraction's CPU
on a fresh machine (every first ``check-config``, ``run``, ``demo``).
:func:`netalert.mib.builtin.once_builder` runs each file once, its code from the
bytecode cache as an import would take it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netalert.mib.builtin import _module_facts, once_builder

ROOT = Path(__file__).resolve().parents[1]

# Counts the compiles of the built-in modules' sources (by file; pysnmp's read names the
# code it compiles ".py") while extract_builtin runs, with no bytecode of them on disk
# yet (a pycache prefix of its own: every module must be compiled once); then those of a
# new builder loading IF-MIB and its imports, which should find them all compiled.
COUNT = """
import builtins, collections, json, os, sys
from netalert.mib import builtin
import pysnmp.smi.builder, pysnmp.proto.rfc1902, pysnmp.smi.view  # compiled as usual
folders = {str(d) for d in builtin.builtin_dirs()}
counts = collections.Counter()
real = builtins.compile
def counting(source, filename, *args, **kwargs):
    name = os.fspath(filename) if isinstance(filename, (str, os.PathLike)) else ""
    if name == ".py" or os.path.dirname(name) in folders:
        counts[name] += 1
    return real(source, filename, *args, **kwargs)
sys.pycache_prefix = sys.argv[1]
builtins.compile = counting
facts, failed = builtin.extract_builtin()
first = dict(counts)
counts.clear()
try:
    again = builtin.once_builder().load_modules("IF-MIB", "SNMPv2-MIB")
except AttributeError:  # a netalert without it
    again = None
print(json.dumps({"first": first, "again": dict(counts), "facts": len(facts), "failed": failed}))
"""


@pytest.mark.daemon  # a netalert process of its own: nothing compiled or memoised before
def test_the_extraction_compiles_each_module_file_once_and_reuses_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)  # not the tests' sitecustomize, which shares the facts
    done = subprocess.run(
        [sys.executable, "-c", COUNT, str(tmp_path / "pycache")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["failed"] == {} and found["facts"] > 250, found["failed"]
    first: dict[str, int] = found["first"]
    # every module the facts came from was compiled, and none twice
    assert len(first) >= found["facts"], sorted(first)
    assert {name: n for name, n in first.items() if n != 1} == {}
    # a later load (the next first run of another state folder) compiles nothing
    assert found["again"] == {}


@pytest.mark.unit
def test_the_facts_are_those_of_pysnmps_own_loading() -> None:
    import warnings

    from pysnmp.smi import builder, error

    names = ("IF-MIB", "SNMPv2-MIB", "HOST-RESOURCES-MIB", "IP-MIB", "ENTITY-MIB")
    plain = builder.MibBuilder()
    once = once_builder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        plain.load_modules(*names)
        once.load_modules(*names)
    assert set(once.mibSymbols) == set(plain.mibSymbols)
    assert set(once.loaded) >= set(names)
    for name in sorted(plain.mibSymbols):
        if name.startswith("ASN1"):
            continue
        made = _module_facts(name, once.mibSymbols[name])
        assert made.to_json() == _module_facts(name, plain.mibSymbols[name]).to_json(), name
        assert made.nodes or name not in names, name
    # a module loaded is not run again (pysnmp's seen files)
    symbols = once.mibSymbols["IF-MIB"]
    once.load_modules("IF-MIB")
    assert once.mibSymbols["IF-MIB"] is symbols
    with pytest.raises(error.MibNotFoundError, match="NO-SUCH-MIB"):
        once.load_modules("NO-SUCH-MIB")
