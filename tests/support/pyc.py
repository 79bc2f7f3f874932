"""The test modules' assertion rewriting, done once per run (pytest plugin).

pytest rewrites the ``assert`` statements of every test module it imports (about 2.5 s of
CPU for this suite's 180 files) and keeps the result in a pyc next to the file, unless
Python is told not to write bytecode (``PYTHONDONTWRITEBYTECODE``): then every pytest
process rewrites every module again. Under pytest-xdist the workers start together, so
even with pycs allowed each of them rewrites what no other worker has written yet.

Here every pytest process of a run looks for those pycs in the run's shared folder
(:mod:`tests.support.shared`) instead, and the xdist controller writes them there before
it starts its workers, for the modules it will hand out: the workers only read them
(the second pass of ``make test`` finds them written). The pycs are pytest's own,
checked against the hash of their source before use, so a stale one is rewritten as
usual. This uses pytest's internal rewrite functions: if they change, the plugin does
nothing and pytest works as it always does.

Load with ``pytest_plugins = ["tests.support.pyc"]`` (tests/conftest.py), after
``tests.support.shared``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.shared import shared_dir

__all__ = ["collected_files", "prewrite"]

_PATCHED = pytest.StashKey[Callable[[Path], Path]]()
_SOAK = "soak"  # collected only with NETALERT_SOAK (tests/conftest.py)


def _rewrite_module() -> ModuleType | None:
    """pytest's assertion rewrite module, if it still has what this plugin uses."""
    try:
        from _pytest.assertion import rewrite
    except ImportError:  # pragma: no cover
        return None
    needed = ("get_cache_dir", "_read_pyc", "_rewrite_test", "_write_pyc", "PYC_TAIL")
    return rewrite if all(hasattr(rewrite, name) for name in needed) else None


def collected_files(args: Iterable[str], root: Path) -> list[Path]:
    """The test modules a session given ``args`` collects (all of ``root`` without args)."""
    found: set[Path] = set()
    for arg in list(args) or [str(root)]:
        path = Path(arg.split("::", 1)[0])
        path = path if path.is_absolute() else Path.cwd() / path
        if path.is_file() and path.suffix == ".py":
            found.add(path.resolve())
        elif path.is_dir():
            found.update(
                file.resolve()
                for file in path.rglob("test_*.py")
                if _SOAK not in file.relative_to(path).parts or os.environ.get("NETALERT_SOAK")
            )
    return sorted(found)


def prewrite(config: pytest.Config, files: Iterable[Path]) -> int:
    """Rewrites ``files`` into their pycs unless a current pyc is there; returns how many."""
    rewrite = _rewrite_module()
    if rewrite is None:
        return 0
    state = config.stash[rewrite.assertstate_key]
    written = 0
    for file in files:
        pyc = rewrite.get_cache_dir(file) / (file.name[:-3] + rewrite.PYC_TAIL)
        if rewrite._read_pyc(file, pyc) is not None:
            continue
        pyc.parent.mkdir(parents=True, exist_ok=True)
        source_hash, code = rewrite._rewrite_test(file, config)
        written += bool(rewrite._write_pyc(state, code, source_hash, pyc))
    return written


@pytest.hookimpl(trylast=True)  # after tests.support.shared has made the run's folder
def pytest_configure(config: pytest.Config) -> None:
    folder = shared_dir()
    rewrite = _rewrite_module()
    if folder is None or rewrite is None or config.getoption("assertmode") != "rewrite":
        return
    original = rewrite.get_cache_dir
    cache = folder / "pyc"

    def get_cache_dir(file_path: Path) -> Path:
        return cache / Path(*file_path.parts[1:-1])

    rewrite.get_cache_dir = get_cache_dir
    config.stash[_PATCHED] = original
    workers = config.getoption("numprocesses", None)
    if workers and not hasattr(config, "workerinput"):  # the xdist controller
        files = collected_files(config.args, config.rootpath / "tests")
        hook = config.stash[rewrite.assertstate_key].hook
        # the conftest and plugin modules this process rewrote on import
        done = getattr(hook, "_rewritten_names", {}) if hook is not None else {}
        prewrite(config, [*files, *(Path(path) for path in done.values())])


def pytest_unconfigure(config: pytest.Config) -> None:
    original = config.stash.get(_PATCHED, None)
    rewrite = _rewrite_module()
    if original is not None and rewrite is not None:
        rewrite.get_cache_dir = original
