"""What the processes of one test run share (pytest plugin): a folder, a lock, the
built-in MIB facts.

``make test`` runs the suite on several pytest-xdist workers (``-n 4``); without this,
each worker would pay what one run needs once. The first pytest process of a run (the
xdist controller, or the only process) makes a folder and names it in the environment
(:data:`ENV`), which the workers inherit; it removes the folder at the end.

* :func:`locked`: an exclusive ``flock`` on a file of the folder, for "the first
  worker builds it, the others wait and reuse it" (the compiled MIB cache of
  :func:`tests.support.faults.mib_cache`).
* The built-in MIB modules' facts (``MibTree.builtin()``, every fresh state directory):
  pysnmp loads ~300 modules in seconds of CPU per process. The plugin wraps
  :func:`netalert.mib.builtin.extract_builtin` here and, through ``PYTHONPATH`` and
  ``site/sitecustomize.py``, in every netalert process a test starts: the first process
  extracts and pickles the facts into the folder, the others load the pickle. The facts
  are the same; a failed extraction is never shared. pysmi's SMI parser tables (a third of
  a second per process that compiles a MIB) are shared the same way, through lark's cache.
* pysnmp builds a pysmi parser of its own for each engine, at the engine's first name
  lookup (its MIB compiler, which the tests never use: every module it needs is compiled
  in): the pytest processes build it once (:func:`share_pysnmp_parser`), from the same
  lark cache, instead of once per pysnmp engine a test makes (netalert's own engines never
  build it: netalert.snmp.nomibcompiler).
* The MIB trees the tests' netalert processes load (``mib-trees``, their
  ``[mibs].shared_cache``): a fresh state folder takes the tree another process of the run
  built from the same MIB files. pytest's own processes have none.
* :mod:`tests.support.ports` keeps its registry of handed-out ports there.

Load with ``pytest_plugins = ["tests.support.shared"]`` (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.site.sitecustomize import (
    ENV,
    TREES,
    locked_in,
    shared_parser,
    wrap,
    wrap_parser,
)

__all__ = [
    "ENV",
    "SITE",
    "locked",
    "python_path",
    "share_pysnmp_parser",
    "shared_dir",
    "sharing_env",
]

SITE = Path(__file__).parent / "site"  # its sitecustomize.py, for the processes tests start
_MADE = pytest.StashKey[Path]()


def shared_dir() -> Path | None:
    """The run's shared folder, or None outside a pytest run of this suite."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


@contextlib.contextmanager
def locked(name: str) -> Iterator[Path]:
    """Holds an exclusive lock named ``name`` for the whole run; yields the shared folder.

    Outside a run (no shared folder) it yields a private temporary folder, unlocked.
    """
    folder = shared_dir()
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="netalert-shared-") as private:
            yield Path(private)
        return
    with locked_in(folder, name):
        yield folder


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(ENV):
        made = Path(tempfile.mkdtemp(prefix="netalert-tests-"))
        os.environ[ENV] = str(made)
        config.stash[_MADE] = made
    # No shared MIB tree cache in pytest's processes (their tests compile when they mean
    # to, and nothing goes to the user's cache); the processes they start share the run's
    # (site/sitecustomize.py).
    os.environ[TREES] = ""
    # The Python processes the tests start load SITE's sitecustomize (the workers inherit).
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(SITE) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(SITE), *filter(None, paths)])
    # This process: netalert.mib.loader holds extract_builtin under its own name.
    from netalert.mib import builtin, compiler, loader

    wrap(builtin)
    wrap_parser(compiler)
    loader.extract_builtin = builtin.extract_builtin
    from pysnmp.smi import compiler as pysnmp_compiler

    share_pysnmp_parser(pysnmp_compiler)


def share_pysnmp_parser(module: ModuleType) -> None:
    """Makes ``module.parserFactory`` (pysnmp.smi.compiler's, pysmi's) hand out one parser
    per dialect and process, its tables from the run's lark cache when a run is on.

    pysmi's parser keeps nothing from one module to the next (netalert's compiler shares
    one too); pysnmp asks for ``parserFactory(**dialect)()`` once per engine.
    """
    factory = getattr(module, "parserFactory", None)  # absent: pysnmp found no pysmi
    if factory is None or hasattr(factory, "shared_original"):
        return
    made: dict[tuple[tuple[str, Any], ...], Callable[[], Any]] = {}
    folder = shared_dir()

    def parser_factory(**dialect: Any) -> Callable[[], Any]:
        key = tuple(sorted(dialect.items()))
        if key not in made:

            def build() -> Any:
                return factory(**dialect)()

            made[key] = shared_parser(build, folder) if folder else functools.cache(build)
        return made[key]

    parser_factory.shared_original = factory  # type: ignore[attr-defined]
    module.parserFactory = parser_factory  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    made = config.stash.get(_MADE, None)
    if made is not None:
        os.environ.pop(ENV, None)
        shutil.rmtree(made, ignore_errors=True)


def python_path(*first: str | Path) -> str:
    """``PYTHONPATH`` for a child process: ``first``, then this run's (which carries
    :data:`SITE`)."""
    inherited = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    return os.pathsep.join([*map(str, first), *filter(None, inherited)])


def sharing_env() -> dict[str, str]:
    """What a child process started with an environment of its own needs to share this run's
    MIB facts and parser tables (the folder and ``PYTHONPATH``); empty outside a run."""
    folder = os.environ.get(ENV)
    return {ENV: folder, "PYTHONPATH": python_path()} if folder else {}
