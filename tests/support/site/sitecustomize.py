"""The built-in MIB facts of a test run, shared with the netalert processes the tests start.

Python imports ``sitecustomize`` at start-up from ``sys.path``; :mod:`tests.support.shared`
puts this folder on ``PYTHONPATH`` for the whole run, so every `netalert run`,
`netalert check-config`... that a test starts loads this module. With
``NETALERT_TEST_SHARED`` set (the run's shared folder), it wraps
:func:`netalert.mib.builtin.extract_builtin` the moment that module is imported: the
facts pysnmp extracts from its ~300 built-in modules (seconds of CPU, in every process
with a fresh state directory) are read from the run's pickle instead, or extracted and
written there by the first process that needs them. The facts are the same; a failed
extraction is never shared. Likewise :func:`netalert.mib.compiler._parser`, pysmi's SMI
parser (a third of a second of CPU to build its LALR tables, in every process that compiles
a MIB): the tables are kept in the folder through lark's own cache, which checks the
grammar, the options and lark's version before it uses them. Nothing else changes, and
without the variable nothing does.

The MIB trees too: the run's pytest processes set ``NETALERT_MIB_SHARED_CACHE`` empty (no
shared tree cache, so that a test in them that compiles does compile), and a netalert
process that inherits it empty shares the run's folder of trees (``mib-trees``) instead:
a fresh state folder takes the tree an earlier process of the run loaded from the same
MIB files (checked like any shared tree). A test that sets the variable itself, or the
config's ``[mibs] shared_cache``, keeps its own.

Also imported by the pytest processes themselves (as ``tests.support.site.sitecustomize``)
for the same wrapper. Self-contained: it must import nothing of the test suite.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
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
COMPILER = "netalert.mib.compiler"

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

    return extract


def shared_parser(original: Callable[[], Any], folder: Path) -> Callable[[], Any]:
    """``original`` (compiler._parser), its lark tables cached in ``folder`` for the run."""

    @functools.cache
    def parser() -> Any:
        from pysmi.parser import lark_parser

        lark = lark_parser.Lark
        with locked_in(folder, "smi-parser"):
            lark_parser.Lark = functools.partial(lark, cache=str(folder / "smi-parser.lark"))
            try:
                return original()
            finally:
                lark_parser.Lark = lark

    return parser


def _wrapper(attribute: str, share: Callable[[Any, Path], Any]) -> Callable[[ModuleType], None]:
    """Replaces ``module.<attribute>`` by ``share(it, folder)`` once, if a run is on; the
    replacement keeps the original as ``shared_original``."""

    def wrap_module(module: ModuleType) -> None:
        folder = os.environ.get(ENV)
        original = getattr(module, attribute, None)
        if folder and original is not None and not hasattr(original, "shared_original"):
            shared = share(original, Path(folder))
            shared.shared_original = original
            setattr(module, attribute, shared)

    return wrap_module


wrap = _wrapper("extract_builtin", shared_extract)  # netalert.mib.builtin
wrap_parser = _wrapper("_parser", shared_parser)  # netalert.mib.compiler
_WRAPPERS: dict[str, Callable[[ModuleType], None]] = {TARGET: wrap, COMPILER: wrap_parser}


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        _WRAPPERS[module.__name__](module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds netalert.mib.builtin and .compiler as usual and wraps them once they have run."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _WRAPPERS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    """Wraps netalert.mib.builtin and .compiler now if they are imported, else when they are."""
    for name, wrapper in _WRAPPERS.items():
        if name in sys.modules:
            wrapper(sys.modules[name])
    if not all(name in sys.modules for name in _WRAPPERS) and not any(
        isinstance(finder, _Finder) for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, _Finder())


TREES = "NETALERT_MIB_SHARED_CACHE"  # netalert.config.models.SHARED_CACHE_ENV


def share_trees() -> None:
    """In a process the run started: the run's folder of MIB trees, unless a test chose."""
    folder = os.environ.get(ENV)
    if folder and os.environ.get(TREES) == "":
        os.environ[TREES] = str(Path(folder) / "mib-trees")


if os.environ.get(ENV):
    install()
    if __name__ == "sitecustomize":  # a process the run started, not pytest's import
        share_trees()
