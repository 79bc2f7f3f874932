"""Where a test run's CPU goes, per module (an opt-in pytest plugin).

``NETALERT_TEST_CENSUS=folder pytest -p tests.support.census ...`` adds up, per test
module, the CPU (user + sys, ``getrusage``) of the pytest process that ran its tests and
of the processes it waited for while they ran (agents, snmpd, CLI commands, PostgreSQL),
and the wall time of the tests. Each pytest process (every xdist worker) writes one JSON
file into the folder at its end; ``python -m tests.support.census folder`` sums them into a
table, the largest first, then lists the tests that took the most. A process's start-up,
collection and session teardown go to the row ``(start-up)``. The CPU of a process nobody
waits for (an orphan, such as the trap workers of an agent killed with SIGKILL) is not
counted: the figures are a lower bound.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ENV", "summary"]

ENV = "NETALERT_TEST_CENSUS"
START = "(start-up)"


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


class _Census:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # module -> [tests, own CPU, children's CPU, wall]
        self.rows: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
        self.tests: dict[str, float] = {}  # test id -> CPU (own + children)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, None, None]:
        own, kids = _cpu()
        wall = time.monotonic()
        yield
        own2, kids2 = _cpu()
        row = self.rows[item.nodeid.split("::", 1)[0]]
        row[0] += 1
        row[1] += own2 - own
        row[2] += kids2 - kids
        row[3] += time.monotonic() - wall
        self.tests[item.nodeid] = own2 - own + kids2 - kids

    def pytest_sessionfinish(self) -> None:
        own, kids = _cpu()  # the rest: start-up, collection, session fixtures' ends
        self.rows[START][1] = own - sum(r[1] for m, r in self.rows.items() if m != START)
        self.rows[START][2] = kids - sum(r[2] for m, r in self.rows.items() if m != START)
        if len(self.rows) == 1 and "PYTEST_XDIST_WORKER" not in os.environ:
            self.rows[START][2] = 0.0  # the xdist controller: its children are the workers
        self.folder.mkdir(parents=True, exist_ok=True)
        name = os.environ.get("PYTEST_XDIST_WORKER", "main")
        path = self.folder / f"census-{name}-{os.getpid()}.json"
        path.write_text(json.dumps({"modules": dict(self.rows), "tests": self.tests}))


def pytest_configure(config: pytest.Config) -> None:
    folder = os.environ.get(ENV)
    if folder:
        config.pluginmanager.register(_Census(Path(folder)), "netalert-census")


def _modules(data: dict[str, Any]) -> dict[str, list[float]]:
    return dict(data["modules"]) if "tests" in data else data


def summary(folder: Path, top: int = 40) -> str:
    """The table of the files in ``folder``: module, tests, CPU own/children/sum, wall."""
    rows: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for path in folder.glob("census-*.json"):
        for module, figures in _modules(json.loads(path.read_text())).items():
            for n, value in enumerate(figures):
                rows[module][n] += value
    total = sum(r[1] + r[2] for r in rows.values())
    lines = [f"{'module':48} {'tests':>5} {'own':>7} {'kids':>7} {'cpu':>7} {'wall':>7} share"]
    ranked = sorted(rows.items(), key=lambda kv: -(kv[1][1] + kv[1][2]))
    for module, (tests, own, kids, wall) in ranked[:top]:
        cpu = own + kids
        lines.append(
            f"{module:48} {int(tests):5d} {own:7.1f} {kids:7.1f} {cpu:7.1f} {wall:7.1f} "
            f"{100 * cpu / total:4.1f} %"
        )
    lines.append(f"{'total':48} {'':5} {'':7} {'':7} {total:7.1f}")
    return "\n".join(lines)


def slowest(folder: Path, top: int = 40) -> str:
    """The tests of the files in ``folder`` that took the most CPU."""
    tests: dict[str, float] = {}
    for path in folder.glob("census-*.json"):
        tests.update(json.loads(path.read_text()).get("tests", {}))
    ranked = sorted(tests.items(), key=lambda kv: -kv[1])[:top]
    return "\n".join(f"{cpu:7.2f} {test}" for test, cpu in ranked)


if __name__ == "__main__":
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    print(summary(Path(sys.argv[1]), top))
    print(slowest(Path(sys.argv[1]), top))
