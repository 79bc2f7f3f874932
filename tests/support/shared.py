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
  :func:`netalert.mib.builtin.extract_builtin` as :mod:`netalert.mib.loader` calls it:
  the first worker extracts and pickles the facts into the folder, the others load the
  pickle. The facts are the same (a failed extraction is never shared); the netalert
  commands the tests start in subprocesses still extract for themselves.
* :mod:`tests.support.ports` keeps its registry of handed-out ports there.

Load with ``pytest_plugins = ["tests.support.shared"]`` (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ENV", "locked", "shared_dir"]

ENV = "NETALERT_TEST_SHARED"
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
    with (folder / f"{name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _shared_extract(original: Callable[[], tuple[Any, dict[str, str]]]) -> Callable[..., Any]:
    def extract() -> tuple[Any, dict[str, str]]:
        with locked("builtin-facts") as folder:
            path = folder / "builtin-facts.pickle"
            if path.is_file():
                with path.open("rb") as file:
                    return pickle.load(file), {}  # written by this run
            facts, failed = original()
            if not failed:  # a failure depends on the process: never shared
                scratch = path.with_suffix(".tmp")
                with scratch.open("wb") as file:
                    pickle.dump(facts, file, protocol=pickle.HIGHEST_PROTOCOL)
                scratch.replace(path)
            return facts, failed

    extract.__wrapped__ = original  # type: ignore[attr-defined]
    return extract


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(ENV):
        made = Path(tempfile.mkdtemp(prefix="netalert-tests-"))
        os.environ[ENV] = str(made)
        config.stash[_MADE] = made
    from netalert.mib import loader

    if not hasattr(loader.extract_builtin, "__wrapped__"):
        loader.extract_builtin = _shared_extract(loader.extract_builtin)  # type: ignore[assignment]


def pytest_unconfigure(config: pytest.Config) -> None:
    made = config.stash.get(_MADE, None)
    if made is not None:
        os.environ.pop(ENV, None)
        shutil.rmtree(made, ignore_errors=True)
