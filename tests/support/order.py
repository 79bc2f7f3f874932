"""The longest test modules first (pytest plugin), so that pytest-xdist's workers finish
together: a 100 s test handed out last would keep one worker busy while the others idle.

The order is by module (a module's tests stay together and in their order, so
module-scoped fixtures are set up once per worker), longest first: a module's length
is the sum of its tests' durations in the last run (pytest's cache,
``.pytest_cache``), or a guess by tier for a test without one (e2e 5 s, daemon 1 s,
unit 0.05 s). A module none of whose tests the cache knows (a clean clone, CI) takes
its length from :data:`BASELINE` (``durations.json``: seconds per module of one whole
run, committed; ``python -m tests.support.order`` rewrites it from the cache), so a
minute-long unit module is not guessed short and handed out last. Every process of a
run reads the same cache, so the xdist workers collect in the same order; the
controller (or the only process) writes it at the end. Run with
``-p no:cacheprovider`` and the baseline and the guess order.

Load with ``pytest_plugins = ["tests.support.order"]`` (tests/conftest.py), after
:mod:`tests.support.tiers`.
"""

from __future__ import annotations

import functools
import json
import sys
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import pytest

__all__ = ["BASELINE", "GUESS", "TIMING", "baseline", "order_by_duration"]

CACHE_KEY = "netalert/durations"
BASELINE = Path(__file__).with_name("durations.json")

# For tests whose bounds are wall time against real processes (sub-second SNMP timeouts,
# /healthz latency during a flood, loop lag): ``make test`` runs them after the others, in
# one process with no xdist worker beside them (``-m timing``). Under xdist (``-n``) alone
# they still go to one worker, one after another (``xdist_group("timing")``, added below).
TIMING = pytest.mark.timing
GUESS = {"e2e": 5.0, "daemon": 1.0, "unit": 0.05}  # seconds per test without a record


def pytest_itemcollected(item: pytest.Item) -> None:
    if item.get_closest_marker("timing") is not None:
        item.add_marker(pytest.mark.xdist_group("timing"))


@functools.cache
def baseline() -> dict[str, float]:
    """:data:`BASELINE`: seconds per test module (empty when the file is missing or broken)."""
    try:
        data = json.loads(BASELINE.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def order_by_duration(
    items: list[pytest.Item],
    known: Mapping[str, float],
    tier_of: Mapping[str, str],
    snapshot: Mapping[str, float] | None = None,
) -> list[pytest.Item]:
    """``items`` grouped by module, the modules longest first (stable for equal lengths).

    A module's length: its tests' ``known`` durations (a guess by tier for the others), or,
    when ``known`` has none of them, its ``snapshot`` length (default :func:`baseline`).
    """
    snapshot = baseline() if snapshot is None else snapshot
    modules: dict[str, list[pytest.Item]] = defaultdict(list)
    for item in items:
        modules[item.nodeid.split("::", 1)[0]].append(item)

    def length(module: str) -> float:
        tests = modules[module]
        if module in snapshot and not any(i.nodeid in known for i in tests):
            return snapshot[module]
        return sum(
            known.get(i.nodeid, GUESS.get(tier_of.get(i.nodeid, "unit"), 0.05)) for i in tests
        )

    lengths = {module: length(module) for module in modules}
    ordered = sorted(modules, key=lambda module: -lengths[module])
    return [item for module in ordered for item in modules[module]]


def _tier(item: pytest.Item) -> str:
    for name in GUESS:
        if item.get_closest_marker(name) is not None:
            return name
    return "unit"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cache = getattr(config, "cache", None)
    known = cache.get(CACHE_KEY, {}) if cache is not None else {}
    if not isinstance(known, dict):
        known = {}
    items[:] = order_by_duration(items, known, {i.nodeid: _tier(i) for i in items})


class _Recorder:
    """Sums each test's phases; in the xdist controller it sees every worker's reports."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.seen: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seen[report.nodeid] = self.seen.get(report.nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self) -> None:
        cache = getattr(self.config, "cache", None)
        if cache is None or not self.seen:
            return
        known = cache.get(CACHE_KEY, {})
        if not isinstance(known, dict):
            known = {}
        known.update({nodeid: round(seconds, 3) for nodeid, seconds in self.seen.items()})
        cache.set(CACHE_KEY, known)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "timing: bounded by wall time; `make test` runs it with no other test beside"
    )
    if not hasattr(config, "workerinput"):  # the controller records, not the workers
        config.pluginmanager.register(_Recorder(config), "netalert-durations")


def _main(argv: list[str]) -> int:
    """Rewrites :data:`BASELINE` from the last run's durations (``.pytest_cache`` of the
    current folder, or the one named): run it after a whole ``make test``."""
    cache = Path(argv[0] if argv else ".pytest_cache") / "v" / CACHE_KEY
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError) as exc:
        print(f"no durations in {cache}: {exc}", file=sys.stderr)
        return 1
    root = Path(__file__).resolve().parents[2]
    per_module: dict[str, float] = defaultdict(float)
    for nodeid, seconds in known.items():
        module = nodeid.split("::", 1)[0]
        if (root / module).is_file():  # the cache keeps the tests of other branches too
            per_module[module] += float(seconds)
    ordered = dict(sorted(per_module.items(), key=lambda kv: (-kv[1], kv[0])))
    rounded = {module: round(seconds, 1) for module, seconds in ordered.items()}
    BASELINE.write_text(json.dumps(rounded, indent=1) + "\n")
    print(f"{BASELINE}: {len(rounded)} modules, {sum(rounded.values()):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
