"""A ``netalert`` command line run in the test's own process.

A ``netalert`` process costs a Python start and the imports (about half a second of CPU)
and, for the commands that load the MIBs, the MIB tree again (another half second to a
second). Tests whose subject is what a command prints or returns, not the process itself,
run the same command line here: :func:`netalert.cli.run_cli` is what the console script
calls, so the exit code, stdout and stderr are the process's. Each command still has tests
that start it as a real process (exit codes through the entry point, the streams of a
process, a terminal).

What the process would start from, the command gets here too: no log handler of pytest on
the root logger (a record of WARNING and above reaches stderr through logging's last
resort, as in a fresh process), the root at WARNING; what the command sets up (its log
handler, warnings captured into logging) is undone afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from netalert.cli import run_cli

__all__ = ["netalert_in_process"]


@contextlib.contextmanager
def _fresh_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = {
        logger: logger.level
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    }
    captured = getattr(logging, "_warnings_showwarning", None) is not None
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for logger, was in loggers.items():
            logger.setLevel(was)
        logging.captureWarnings(captured)


def netalert_in_process(
    capsys: pytest.CaptureFixture[str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``netalert ARGS`` (in ``cwd`` when given) in this process; returns its exit code,
    stdout and stderr as :func:`subprocess.run` with ``capture_output`` would."""
    capsys.readouterr()  # what came before is not the command's
    with _fresh_logging(), contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
        code = run_cli(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["netalert", *args], code, out, err)
