"""The bench's verdict: `python -m bench` exits 1 when a row with a target fails or a step errs.

A regression must not pass unnoticed: a FAIL row (a target missed) and an ERROR
row (a step that produced no figures) both make the exit status 1, and the
summary line names every such row; PASS and info rows leave it 0.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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


def test_a_full_run_writes_latest_files_not_the_last_steps_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table of a run lands in latest.json/latest.md (what `make docs` reads), whatever
    the last step was called; --instructions keeps its own instructions.* files."""
    import bench.__main__ as bench_main

    def fake_step(name: str, quick: bool, work: Path, log: object) -> tuple[dict[str, Any], float]:
        return {"polls_per_s": 1.0}, 0.01

    machine = dict.fromkeys(("cpu_model", "date", "os", "kernel", "python", "net_snmp"), "x")
    monkeypatch.setattr(bench_main, "describe", lambda: {**machine, "cores": 2})
    monkeypatch.setattr(bench_main, "run_step", fake_step)
    monkeypatch.setattr(bench_main, "rows_for", lambda name, figures: [row(name, "PASS")])
    for argv, stem in (
        (["--only", "poll,scale_10k"], "latest"),
        (["--instructions"], "instructions"),
    ):
        out = tmp_path / stem
        monkeypatch.setattr(sys, "argv", ["bench", *argv, "--out", str(out)])
        assert bench_main.main() == 0
        assert (out / f"{stem}.json").is_file() and (out / f"{stem}.md").is_file()
        assert (out / f"{stem}.log").is_file()
        assert not (out / "scale_10k.json").exists()


def test_100k_devices_rows_judge_rss_cpu_and_start_up() -> None:
    scale = {
        "devices": 100_000,
        "interval": 60.0,
        "rss_mb": 900.0,
        "overruns": 0,
        "cpu_cores": 0.6,
        "failed": 0,
        "startup_seconds": 6.3,
        "startup_rss_mb": 360.0,
    }
    rows = rows_for("scale_100k", {"scale": scale})
    assert [r.verdict for r in rows] == ["PASS", "PASS", "PASS"]
    assert rows[0].target == "<= 1,024 MB" and "100k devices" in rows[0].measurement
    slow = rows_for("scale_100k", {"scale": scale | {"startup_seconds": 12.0, "rss_mb": 1100.0}})
    assert [r.verdict for r in slow] == ["FAIL", "FAIL", "PASS"]
    assert "start-up" in slow[1].measurement


RULES = {
    "compiled": 2_000_000.0,
    "python": 8_000_000.0,
    "eval": 60_000.0,
    "compiled_over_python": 0.25,
    "compiled_over_eval": 33.0,
    "on_poll": 140_000.0,
}


def test_trap_rules_500_against_5_beside_the_linear_scan() -> None:
    figures = RULES | {
        "trap_5": 10_000.0,
        "trap_500": 9_000.0,
        "trap_5_linear": 10_000.0,
        "trap_500_linear": 1_000.0,
        "trap_500_over_5": 1.11,
        "trap_500_over_5_linear": 10.0,
    }
    *_, traps = rows_for("rules", figures)
    assert (traps.netalert, traps.reference, traps.ratio, traps.verdict) == (
        "100.0 -> 111.1 us",
        "linear scan 100.0 -> 1000.0 us",
        "1.11x; linear 10.0x",
        "PASS",
    )
    slow = rows_for("rules", figures | {"trap_500_over_5": 1.3})[-1]
    assert slow.verdict == "FAIL"
    # figures of a bench from before the trap rows: the other rows, no error
    assert [r.verdict for r in rows_for("rules", RULES)] == ["PASS", "info"]


CLUSTER = {
    "nodes": 3,
    "shards": 16,
    "lease_s": 3.0,
    "latency": {
        "rate": 100.0,
        "traps": 1000,
        "mails": 1000,
        "lost": 0,
        "cpu_ms_per_trap": 6.0,
        "p50_ms": 12.0,
        "p99_ms": 40.0,
    },
    "single": {"rate": 100.0, "p99_ms": 10.0, "agent_cpu_ms_per_trap": 2.0},
    "failover": {"kills": 20, "median_s": 3.1, "max_s": 4.2, "probes_lost": 0},
    "flow": {"rate": 20.0, "alerts": 2000, "mailed": 2000, "lost": 0, "duplicates": 0},
}


def test_cluster_rows_judge_p99_failover_against_the_lease_and_lost_or_twice() -> None:
    latency, failover, kills, cpu = rows_for("cluster", CLUSTER)
    assert [r.verdict for r in (latency, failover, kills, cpu)] == ["PASS"] * 3 + ["info"]
    assert (latency.netalert, latency.reference, latency.ratio) == (
        "p50 12.0 / p99 40.0 ms, 1000/1000 mails",
        "single node p99 10.0 ms",
        "4.0x",
    )
    assert failover.target == "<= 4.5 s (1.5x lease)" and "lease 3 s, 20 kills" in (
        failover.measurement
    )
    assert (cpu.netalert, cpu.reference, cpu.ratio) == ("6.00 ms", "single node 2.00 ms", "3.0x")
    slow = CLUSTER | {
        "latency": CLUSTER["latency"] | {"p99_ms": 51.0},
        "failover": CLUSTER["failover"] | {"max_s": 4.6},
        "flow": CLUSTER["flow"] | {"duplicates": 1},
    }
    assert [r.verdict for r in rows_for("cluster", slow)] == ["FAIL"] * 3 + ["info"]
    lost = CLUSTER | {
        "failover": CLUSTER["failover"] | {"probes_lost": 1},
        "flow": CLUSTER["flow"] | {"lost": 1},
    }
    assert [r.verdict for r in rows_for("cluster", lost)[1:3]] == ["FAIL", "FAIL"]
    # no failover mail at all is a failure, not an error
    none = CLUSTER | {"failover": CLUSTER["failover"] | {"median_s": None, "max_s": None}}
    assert rows_for("cluster", none)[1].verdict == "FAIL"


def _workers_figures(many: float, one: float, snmptrapd: float, lost: int) -> dict[str, Any]:
    settings = {"workers": 2, "sources": 64}
    return {
        "settings": settings,
        "workers_2": {"sustained": many},
        "workers_1": {"sustained": one},
        "snmptrapd": {"sustained": snmptrapd},
        "ratio_vs_1": many / one,
        "ratio_vs_snmptrapd": many / snmptrapd,
        "loss": {"sent": 200_000, "rate": 10_000, "lost": lost},
    }


@pytest.mark.parametrize(
    ("many", "one", "snmptrapd", "lost", "verdicts"),
    [
        (20_000, 10_000, 5_000, 0, ["PASS", "PASS", "PASS"]),
        (14_000, 10_000, 5_000, 0, ["FAIL", "PASS", "PASS"]),  # 1.4x one worker
        (20_000, 10_000, 15_000, 0, ["PASS", "FAIL", "PASS"]),  # 1.33x snmptrapd
        (20_000, 10_000, 5_000, 1, ["PASS", "PASS", "FAIL"]),  # one trap lost
    ],
)
def test_trap_workers_rows_hold_the_targets(
    many: float, one: float, snmptrapd: float, lost: int, verdicts: list[str]
) -> None:
    rows = rows_for("trap_workers", _workers_figures(many, one, snmptrapd, lost))
    assert [r.verdict for r in rows] == verdicts
    assert rows[0].ratio == f"{many / one:.2f}x"
