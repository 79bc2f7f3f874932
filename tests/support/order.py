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
import re
import sys
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import pytest

__all__ = [
    "BASELINE",
    "GUESS",
    "LOAD",
    "TIMING",
    "baseline",
    "lane_of",
    "order_by_duration",
    "timing",
    "timing_modules",
]

CACHE_KEY = "netalert/durations"
BASELINE = Path(__file__).with_name("durations.json")

# For tests whose bounds are wall time against real processes (sub-second SNMP timeouts,
# leases, /healthz latency during a flood, loop lag): ``make test`` runs them after the
# others, in a pass of their own (``-m timing``) over a few xdist workers, one lane per
# worker. A lane is an xdist group of the timing pass: its tests run one after another,
# beside the other lanes. ``TIMING`` puts a test in its module's lane, ``timing("name")``
# in the named one; ``LOAD`` is the lane of the tests that load the CPU (floods, bursts)
# or measure latency or memory under that load, so that at most one of them runs at a
# time and no other lane holds one. The other lanes wait (leases, timeouts, mail), with
# little CPU. Outside the timing pass (``-n`` alone) every timing test goes to one
# worker, one after another (``xdist_group("timing")``), as before the lanes.
TIMING = pytest.mark.timing
LOAD = pytest.mark.timing("load")
GUESS = {"e2e": 5.0, "daemon": 1.0, "unit": 0.05}  # seconds per test without a record
# How a test module says it has timing tests: the Makefile's timing pass collects only the
# modules that match (collecting all of them costs each worker seconds of CPU), and
# pytest_collection_modifyitems refuses a timing test in a module that does not.
TIMING_SOURCE = re.compile(r"\bTIMING\b|\bLOAD\b|\btiming\(|mark\.timing\b")


def timing(lane: str) -> pytest.MarkDecorator:
    """The ``timing`` mark, in the lane named ``lane`` (see :data:`TIMING`)."""
    return pytest.mark.timing(lane)


def lane_of(item: pytest.Item) -> str | None:
    """The timing-pass lane of ``item`` (None for a test without the ``timing`` mark)."""
    mark = item.get_closest_marker("timing")
    if mark is None:
        return None
    if mark.args:
        return str(mark.args[0])
    return Path(item.nodeid.split("::", 1)[0]).stem.removeprefix("test_")


def timing_modules(root: Path) -> list[str]:
    """The test modules under ``root`` (a ``tests`` folder) that may hold timing tests."""
    return sorted(
        f"{root.name}/{path.name}"
        for path in root.glob("test_*.py")
        if TIMING_SOURCE.search(path.read_text(encoding="utf-8"))
    )


_HIDDEN = pytest.StashKey[set[str]]()


@functools.cache
def _says_timing(module: Path) -> bool:
    return TIMING_SOURCE.search(module.read_text(encoding="utf-8")) is not None


def pytest_itemcollected(item: pytest.Item) -> None:
    lane = lane_of(item)
    if lane is not None:
        if not _says_timing(item.path):  # before ``-m`` deselects it
            item.config.stash.setdefault(_HIDDEN, set()).add(str(item.path))
        timing_pass = item.config.getoption("markexpr", "") == "timing"
        item.add_marker(pytest.mark.xdist_group(f"timing-{lane}" if timing_pass else "timing"))


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
    hidden = sorted(config.stash.get(_HIDDEN, set()))
    if hidden:
        raise pytest.UsageError(
            f"timing tests in {', '.join(hidden)}, which the timing pass of `make test` does "
            f"not collect: mark them with tests.support.order.TIMING, LOAD or timing()"
        )
    cache = getattr(config, "cache", None)
    known = cache.get(CACHE_KEY, {}) if cache is not None else {}
    if not isinstance(known, dict):
        known = {}
    items[:] = order_by_duration(
        items,
        # the timing pass records its tests under their ids with the lane (``_group``)
        {k.split("@timing", 1)[0]: v for k, v in known.items()},
        {i.nodeid: _tier(i) for i in items},
    )
    if hasattr(config, "workerinput") and config.getoption("loadgroup", False):  # xdist sets it
        for item in items:
            _group(item)


def _group(item: pytest.Item) -> None:
    """Suffixes ``@GROUP`` of the item's ``xdist_group`` to its node id, which is how
    pytest-xdist's loadgroup scheduler sees the group. pytest-xdist (3.8) sets the
    ``_nodeid`` attribute for it, which pytest 9 no longer reads (it keeps the id in
    ``_id``): without this, every test of a group is scheduled on its own."""
    groups = sorted(
        {
            str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")
        }
    )
    if not groups:
        return
    suffix = "@" + "_".join(groups)
    if item.nodeid.endswith(suffix):  # xdist did it (a pytest that reads ``_nodeid``)
        return
    if hasattr(item, "_id"):
        from _pytest.nodeid import coerce_node_id  # pytest 9 only

        item._id = coerce_node_id(item.nodeid + suffix)
    else:
        item._nodeid = item.nodeid + suffix


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
    current folder, or the one named): run it after a whole ``make test``. With
    ``timing-modules``, prints the modules the timing pass collects instead."""
    if argv == ["timing-modules"]:
        print(" ".join(timing_modules(Path(__file__).resolve().parents[1])))
        return 0
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
