"""``netalert test rules FILE...``: runs every test of every file, prints PASS/FAIL and diffs.

Exit code: 0 every test passed, 1 some test failed, 2 a file (or a test's
input) is invalid; problems print as ``FILE: path.to.field: message`` on
stderr, like ``check-config``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TextIO

from netalert.errors import ConfigError
from netalert.logs import setup_logging
from netalert.logtext import escape
from netalert.ruletest.runner import Outcome, PreparedCache, run_test
from netalert.ruletest.spec import load_test_file

__all__ = ["format_outcome", "run_files"]


def format_outcome(outcome: Outcome) -> list[str]:
    """The lines printed for one test: ``PASS name`` or ``FAIL name`` and its diffs."""
    name = escape(outcome.name)
    if outcome.passed:
        return [f"  PASS  {name}"]
    lines = [f"  FAIL  {name}"]
    for check in outcome.checks:
        lines.append(f"        at {check.at}, {check.section} (- expected, + got):")
        lines += [f"          {line}" for line in check.lines]
    return lines


async def _run_all(paths: list[Path], out: TextIO, err: TextIO) -> int:
    configs = PreparedCache()
    passed = failed = 0
    broken = False
    for path in paths:
        try:
            spec = load_test_file(path)
        except ConfigError as exc:
            for line in exc.problems:
                print(line, file=err)
            broken = True
            continue
        print(str(path), file=out)
        for number, test in enumerate(spec.tests):
            outcome = await run_test(test, spec, path.resolve().parent, number, configs)
            if outcome.problems:
                broken = True
                for line in outcome.problems:
                    print(f"{path}: {line}", file=err)
                print(f"  ERROR {escape(test.name)}", file=out)
                continue
            for line in format_outcome(outcome):
                print(line, file=out)
            passed += outcome.passed
            failed += not outcome.passed
    print(f"rule tests: {passed} passed, {failed} failed", file=out)
    if broken:
        return 2
    return 1 if failed else 0


def run_files(paths: list[Path], *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Runs the rule tests of ``paths``; returns the exit code (0, 1 or 2).

    The report goes to ``out`` and ``err``, by default ``sys.stdout`` and ``sys.stderr`` as
    they are when it runs (not as they were at import: a caller may have redirected them).
    The stages' own log lines (a refused test trap, say) are errors-only here:
    the report is the output.
    """
    setup_logging("error")
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    return asyncio.run(_run_all(paths, out, err))
