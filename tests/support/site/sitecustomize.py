"""The built-in MIB facts of a test run, shared with the netalert processes the tests start.

Python imports ``sitecustomize`` at start-up from ``sys.path``; :mod:`tests.support.shared`
puts this folder on ``PYTHONPATH`` for the whole run, so every `netalert run`,
`netalert check-config`... that a test starts loads this module. With
``NETALERT_TEST_SHARED`` set (the run's shared folder), it wraps
:func:`netalert.mib.builtin.extract_builtin` the moment that module is imported: the
facts pysnmp extracts from its ~300 built-in modules (seconds of CPU, in every process
with a fresh state directory) are read from the run's pickle instead, or extracted and
written there by the first process that needs them. The facts are the same; a failed
extraction is never shared. Nothing else changes, and without the variable nothing does.

Also imported by the pytest processes themselves (as ``tests.support.site.sitecustomize``)
for the same wrapper. Self-contained: it must import nothing of the test suite.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.abc
import importlib.machinery
import os
import pickle
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ENV = "NETALERT_TEST_SHARED"
TARGET = "netalert.mib.builtin"

Extract = Callable[[], tuple[Any, dict[str, str]]]


@contextlib.contextmanager
def locked_in(folder: Path, name: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder``/``name``.lock while the block runs."""
    with (folder / f"{name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def shared_extract(original: Extract, folder: Path) -> Extract:
    """``original`` (extract_builtin), its result kept in ``folder`` for the run."""

    def extract() -> tuple[Any, dict[str, str]]:
        path = folder / "builtin-facts.pickle"
        with locked_in(folder, "builtin-facts"):
            if path.is_file():
                with path.open("rb") as file:
                    return pickle.load(file), {}  # written by this run
            facts, failed = original()
            if not failed:  # a failure depends on the process: never shared
                scratch = path.with_suffix(f".{os.getpid()}")
                with scratch.open("wb") as file:
                    pickle.dump(facts, file, protocol=pickle.HIGHEST_PROTOCOL)
                scratch.replace(path)
            return facts, failed

    extract.__wrapped__ = original  # type: ignore[attr-defined]
    return extract


def wrap(module: ModuleType) -> None:
    """Wraps ``module.extract_builtin`` (netalert.mib.builtin) once, if a run is on."""
    folder = os.environ.get(ENV)
    original = getattr(module, "extract_builtin", None)
    if folder and original is not None and not hasattr(original, "__wrapped__"):
        module.extract_builtin = shared_extract(original, Path(folder))  # type: ignore[attr-defined]


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        wrap(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds netalert.mib.builtin as usual and wraps it once it has run."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    """Wraps netalert.mib.builtin now if it is imported, else when it is."""
    if TARGET in sys.modules:
        wrap(sys.modules[TARGET])
    elif not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


if os.environ.get(ENV):
    install()
