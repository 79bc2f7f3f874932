"""The bench's verdict: `python -m bench` exits 1 when a row with a target fails or a step errs.

A regression must not pass unnoticed: a FAIL row (a target missed) and an ERROR
row (a step that produced no figures) both make the exit status 1, and the
summary line names every such row; PASS and info rows leave it 0.
"""

from __future__ import annotations

import pytest

from bench.report import Row, exit_status, rows_for

pytestmark = pytest.mark.unit


def row(measurement: str, verdict: str, target: str = ">= 1x") -> Row:
    return Row(measurement, "1", "-", "-", target, verdict)


def test_pass_and_info_rows_exit_0() -> None:
    status, summary = exit_status([row("a", "PASS"), row("b", "info", target="-")])
    assert status == 0
    assert "FAILED" not in summary


def test_a_failed_target_exits_1_and_names_the_row() -> None:
    rows = [row("poll v2c", "PASS"), row("trap loss", "FAIL"), row("mib", "info", "-")]
    status, summary = exit_status(rows)
    assert status == 1
    assert "trap loss" in summary
    assert "poll v2c" not in summary and "mib" not in summary
    assert "1 of 3" in summary


def test_every_failed_and_erred_row_is_named() -> None:
    rows = [
        row("trap CPU", "FAIL"),
        *rows_for("latency", {"error": "timed out after 300 s"}),
        row("outbox", "PASS"),
        row("scale", "FAIL"),
    ]
    status, summary = exit_status(rows)
    assert status == 1
    for name in ("trap CPU", "latency", "scale"):
        assert name in summary
    assert "outbox" not in summary


def test_no_rows_at_all_is_a_failure() -> None:
    status, summary = exit_status([])
    assert status == 1
    assert "no rows" in summary


def test_instruction_counts_are_rows_beside_net_snmp() -> None:
    figures = {
        "tool": "callgrind",
        "event": "Ir",
        "traps": {"count": 1000, "netalert": 300_000.0, "snmptrapd": 150_000.0, "ratio": 2.0},
        "poll_v2c": {"count": 200, "netalert": 2_000_000.0, "netalert_failed": 0},
    }
    traps, poll = rows_for("instructions", figures)
    assert (traps.netalert, traps.reference, traps.ratio) == (
        "300,000",
        "snmptrapd 150,000",
        "2.00x",
    )
    assert "callgrind" in traps.measurement and "1,000" in traps.measurement
    assert (poll.reference, poll.ratio) == ("-", "-")
    assert exit_status([traps, poll])[0] == 0  # information, no target
