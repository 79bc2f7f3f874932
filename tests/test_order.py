"""tests/support/order.py: the longest modules first, also on a clean clone."""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.order import BASELINE, GUESS, baseline, order_by_duration


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
