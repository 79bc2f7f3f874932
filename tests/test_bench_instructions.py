"""The instruction counter's arithmetic: what perf stat and callgrind write, and differencing.

The counts themselves come from `python -m bench --instructions` (it runs the
tools); these are the pure parts it relies on.
"""

from __future__ import annotations

import pytest

from bench.instructions import _difference, read_callgrind, read_perf

pytestmark = pytest.mark.unit


def test_perf_csv_gives_the_count_of_its_event() -> None:
    text = (
        "# started on Sun Dec  6 16:02:58 2026\n\n"
        "1234567,,instructions:u,2000000,100.00,,\n"
        "99,,cycles:u,2000000,100.00,,\n"
    )
    assert read_perf(text) == 1234567
    assert read_perf(text, "cycles:u") == 99


@pytest.mark.parametrize(
    "text",
    ["<not supported>,,instructions:u,0,100.00,,\n", "<not counted>,,instructions:u,,\n", ""],
)
def test_perf_without_a_count_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        read_perf(text)


def test_callgrind_totals_win_over_a_zero_summary() -> None:
    # instrumentation switched on late: "summary:" stays 0, "totals:" holds the count
    assert read_callgrind("events: Ir\nsummary: 0\nfl=x\n1 2\ntotals: 362392589\n") == 362392589
    assert read_callgrind("events: Ir\nsummary: 31706263116\n") == 31706263116
    with pytest.raises(ValueError):
        read_callgrind("events: Ir\n")


def test_differencing_leaves_start_up_out() -> None:
    start_up, per = 5_000_000, 160_000
    runs = [(start_up + 250 * per, 250.0), (start_up + 790 * per, 790.0)]
    assert _difference(runs) == pytest.approx(per)
    with pytest.raises(ValueError):
        _difference([(10, 5.0), (20, 5.0)])
