"""tests/support/order.py: the longest modules first, also on a clean clone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.order import BASELINE, GUESS, baseline, order_by_duration, timing_modules

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Item:
    nodeid: str


def modules(items: list[Item]) -> list[str]:
    out: list[str] = []
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        if module not in out:
            out.append(module)
    return out


ITEMS = [
    Item("tests/test_a.py::test_1"),
    Item("tests/test_b.py::test_1"),
    Item("tests/test_b.py::test_2"),
    Item("tests/test_c.py::test_1"),
]


def test_the_last_run_orders_longest_first_and_keeps_a_module_together() -> None:
    known = {"tests/test_a.py::test_1": 1.0, "tests/test_b.py::test_1": 2.0}
    known |= {"tests/test_b.py::test_2": 0.5, "tests/test_c.py::test_1": 9.0}
    ordered = order_by_duration(ITEMS, known, {}, {})  # type: ignore[arg-type]
    assert [i.nodeid for i in ordered] == [
        "tests/test_c.py::test_1",
        "tests/test_b.py::test_1",
        "tests/test_b.py::test_2",
        "tests/test_a.py::test_1",
    ]


def test_without_a_last_run_the_committed_baseline_orders() -> None:
    # a clean clone: no pytest cache, so a unit module that takes minutes (hypothesis)
    # would be guessed at 0.05 s a test and handed out last
    tiers = {i.nodeid: "unit" for i in ITEMS} | {"tests/test_c.py::test_1": "e2e"}
    snapshot = {"tests/test_a.py": 100.0, "tests/test_b.py": 2.0}
    ordered = order_by_duration(ITEMS, {}, tiers, snapshot)  # type: ignore[arg-type]
    assert modules(ordered) == ["tests/test_a.py", "tests/test_c.py", "tests/test_b.py"]
    # the last run, where there is one, wins over the baseline
    known = {"tests/test_b.py::test_1": 300.0}
    ordered = order_by_duration(ITEMS, known, tiers, snapshot)  # type: ignore[arg-type]
    assert modules(ordered)[0] == "tests/test_b.py"
    assert GUESS["e2e"] > GUESS["unit"]


def test_the_committed_baseline_is_seconds_per_test_module() -> None:
    snapshot = baseline()
    assert BASELINE.is_file() and len(snapshot) > 10, BASELINE
    for module, seconds in snapshot.items():
        assert module.startswith("tests/test_") and module.endswith(".py"), module
        assert isinstance(seconds, float) and seconds >= 0, (module, seconds)


LANES = """
import os

import pytest

from tests.support.order import timing


@timing("a")
@pytest.mark.parametrize("n", range(4))
def test_a(n):
    with open(os.environ["LANES_LOG"], "a") as log:
        log.write(f"a {os.environ['PYTEST_XDIST_WORKER']}\\n")


@timing("b")
@pytest.mark.parametrize("n", range(4))
def test_b(n):
    with open(os.environ["LANES_LOG"], "a") as log:
        log.write(f"b {os.environ['PYTEST_XDIST_WORKER']}\\n")


def test_not_timing():
    pass
"""


@pytest.mark.daemon  # pytest-xdist's workers are processes
def test_the_timing_pass_runs_each_lane_on_one_worker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, pytest 9 ignored the group pytest-xdist 3.8 set: the lanes' tests ran
    anywhere (tests/support/order.py, _group)."""
    log = pytester.path / "lanes.log"
    monkeypatch.setenv("LANES_LOG", str(log))
    # the workers import tests.support.order
    pytester.makeconftest(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\npytest_plugins = ['tests.support.order']\n"
    )
    pytester.makepyfile(test_lanes=LANES)
    args = ["-p", "no:cacheprovider", "-p", "no:asyncio", "-n", "2"]
    result = pytester.runpytest(*args, "--dist", "loadgroup", "-m", "timing")
    result.assert_outcomes(passed=8)
    runs = [line.split() for line in log.read_text().splitlines()]
    workers = {lane: {w for name, w in runs if name == lane} for lane in "ab"}
    assert [len(runs), len(workers["a"]), len(workers["b"])] == [8, 1, 1], runs


def test_the_timing_pass_collects_the_modules_that_mark_tests(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_marked.py").write_text("pytestmark = TIMING\n")
    (tests / "test_lane.py").write_text('@timing("cluster")\ndef test_x(): pass\n')
    (tests / "test_plain.py").write_text("def test_timings(): pass\n")
    assert timing_modules(tests) == ["tests/test_lane.py", "tests/test_marked.py"]
    found = timing_modules(ROOT / "tests")
    assert {"tests/test_faults_flood.py", "tests/test_cluster_node.py"} <= set(found), found
    assert "tests/test_traps.py" not in found


def test_a_timing_test_the_timing_pass_would_not_collect_stops_the_collection(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\npytest_plugins = ['tests.support.order']\n"
    )
    pytester.makepyfile(
        test_hidden="import pytest\npytestmark = getattr(pytest.mark, 'tim' + 'ing')\n"
        "def test_x(): pass\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio", "-m", "not timing")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*timing tests in *test_hidden.py, which the timing pass*"])
