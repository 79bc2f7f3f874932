"""pysnmp's MIB modules compiled once per module file in each pytest process (pytest plugin).

pysnmp keeps its MIB modules (SNMPv2-SMI, SNMP-FRAMEWORK-MIB, SNMP-USER-BASED-SM-MIB...)
as Python source and never writes bytecode for them: every ``MibBuilder`` compiles each
module it loads, twice (``DirMibSource.read`` compiles the source, then, unless Python
runs with ``-O``, ``MibBuilder.load_module`` hands the file to ``runpy.run_path``, which
compiles it again and runs that). Each pysnmp engine loads some twenty modules, and the
tests make hundreds of engines (the reference paths of the trap and USM tests, the pysnmp
client backend, the tests' own senders): about a tenth of the CPU of those modules.

The plugin keeps the code object of each module file, by its path, size and modification
time (a changed file is compiled again), for both: ``DirMibSource.read`` returns the
kept code with the suffix pysnmp returns, and the ``runpy`` that ``pysnmp.smi.builder``
calls is one whose ``run_path`` runs a kept code object of a file as ``runpy.run_path``
does (``runpy``'s own functions: the same namespace, ``__file__`` and ``sys.argv[0]``
handling); anything but a file goes to ``runpy.run_path`` itself. A code object is
immutable: running it again is running a fresh compile of the same source. This uses
pysnmp's and runpy's internals: if they change, the plugin does nothing and pysnmp
compiles as it always does. Only the pytest processes: the processes the tests start
load their modules as they always do.

Load with ``pytest_plugins = ["tests.support.mibcode"]`` (tests/conftest.py).
"""

from __future__ import annotations

import os
import runpy
from collections.abc import Callable
from types import CodeType, ModuleType
from typing import Any

import pytest

__all__ = ["CachedRunpy", "cached_read", "install"]

_Key = tuple[str, int, int]


def _stamp(path: str) -> _Key | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return path, info.st_mtime_ns, info.st_size


def cached_read(original: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """``original`` (pysnmp's ``MibSource.read(self, name)``), its result kept per module
    file: the source's and a bytecode file's path, size and modification time."""
    kept: dict[tuple[_Key | None, _Key | None], Any] = {}

    def read(self: Any, f: str) -> Any:
        folder = getattr(self, "_srcName", None)
        if not isinstance(folder, str):
            return original(self, f)
        source = _stamp(os.path.join(folder, f + ".py"))
        key = (source, _stamp(os.path.join(folder, f + ".pyc")))
        if source is None:  # not a module file of this folder: pysnmp decides
            return original(self, f)
        if key not in kept:
            kept[key] = original(self, f)
        return kept[key]

    read.cached_original = original  # type: ignore[attr-defined]
    return read


class CachedRunpy:
    """Stands for ``runpy`` in ``pysnmp.smi.builder``: ``run_path`` of a file runs its
    code compiled once (as ``runpy._get_code_from_file`` compiles it)."""

    def __init__(self, real: ModuleType) -> None:
        self.real = real
        self._code: dict[_Key, tuple[CodeType, str]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def run_path(
        self,
        path_name: str,
        init_globals: dict[str, Any] | None = None,
        run_name: str | None = None,
    ) -> dict[str, Any]:
        stamp = _stamp(os.fspath(path_name)) if os.path.isfile(path_name) else None
        if stamp is None:
            return self.real.run_path(path_name, init_globals, run_name)  # type: ignore[no-any-return]
        if run_name is None:
            run_name = "<run_path>"
        if stamp not in self._code:
            self._code[stamp] = self.real._get_code_from_file(run_name, path_name)
        code, fname = self._code[stamp]
        pkg_name = run_name.rpartition(".")[0]
        return self.real._run_module_code(  # type: ignore[no-any-return]
            code, init_globals, run_name, pkg_name=pkg_name, script_name=fname
        )


def install() -> None:
    """Wraps pysnmp's MIB loading in this process (once), if its internals are as expected."""
    from pysnmp.smi import builder

    needed = ("_get_code_from_file", "_run_module_code")
    if not all(hasattr(runpy, name) for name in needed):
        return
    source = getattr(builder, "DirMibSource", None)
    if source is None or not callable(getattr(source, "read", None)):
        return
    if not hasattr(source.read, "cached_original"):
        source.read = cached_read(source.read)
    if getattr(builder, "runpy", None) is runpy:
        builder.runpy = CachedRunpy(runpy)


def pytest_configure(config: pytest.Config) -> None:
    install()
