"""Trap → committed outbox row, and new alerts accepted and committed, through `netalert run`.

Each run is a fresh agent started as bench.latency starts it (its process,
its blaster, its v2c linkDown with a new ifIndex per trap: every trap a new
alert). The SMTP server is a port that accepts connections and never
answers: the sender waits on its first message and writes nothing, so what
is measured is the agent's own path (decode, rules, SQLite, rendering) and
its mails stay in the outbox. Sending 1,000 mails/s over one SMTP connection
is beyond the client anyway (~400/s, BASELINES).

* ``commit``: RATE traps/s for SECONDS, each alert in its own group
  (``group_wait = "0s"``): one mail per trap. A mail's commit time is its
  outbox row's ``created``, stamped as its transaction begins (a transaction
  holds at most ~5 ms of inserts); the blaster notes each send with
  ``time.time()``, the same clock. Latency = created - sent.
* ``grouped``: GROUPED_RATE traps/s (more than the 1,000/s asked for, so
  the figure is what the agent keeps up with) for SECONDS, grouped by device
  (one group, one mail). A thread polls the alerts table every 20 ms; a trap's alert counts
  as committed at the first poll that sees as many alerts as traps up to it
  (alerts commit in trap order). Accepted and committed per second = traps /
  (last commit seen - first send).

Both report the agent's CPU per trap (schedstat of its process over the run)
and ``netalert_loop_lag_seconds`` scraped after the burst (the largest lag of
the last 10 s).

Run: .venv/bin/python -m bench.commit_path [--rate 1000] [--grouped-rate 2000] [--seconds 3]
[--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.latency import (  # noqa: E402
    CONFIG,
    HOST,
    AgentProcess,
    _metric,
    blast,
    cpu_ns,
    percentile,
)

__all__ = ["run_commit", "run_grouped"]

MARK = re.compile(rb"benchseq (\d+) end")
GROUPED = CONFIG.replace('group_by = ["rule", "device", "ifIndex"]', 'group_by = ["device"]')
GROUPED = GROUPED.replace('group_wait = "0s"', 'group_wait = "1s"')
assert GROUPED != CONFIG


@contextlib.contextmanager
def silent_smtp() -> Any:
    """A port that accepts TCP connections (the kernel's backlog) and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen(128)
        yield int(sock.getsockname()[1])


def _db(agent: AgentProcess) -> sqlite3.Connection:
    return sqlite3.connect(agent.workdir / "state" / "netalert.db", timeout=10)


def _lat_figures(lat: list[float]) -> dict[str, float]:
    if not lat:
        return {}
    return {
        "p50_ms": statistics.median(lat),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat),
    }


def run_commit(rate: float, seconds: float, settle: float = 60.0) -> dict[str, Any]:
    """One fresh agent, one mail per trap: trap → committed outbox row."""
    count = max(1, round(rate * seconds))
    with tempfile.TemporaryDirectory(prefix="bench-commit-") as tmp, silent_smtp() as smtp:
        agent = AgentProcess(Path(tmp), smtp)
        try:
            blast(agent.traps, 5, 50, first=1_000_000)  # warm-up
            time.sleep(1.0)
            cpu0 = cpu_ns(agent.pid)
            sent = blast(agent.traps, count, rate, first=1, clock=time.time)
            lag = _metric(agent, "netalert_loop_lag_seconds")
            created: dict[int, float] = {}
            last_id = 0
            deadline = time.monotonic() + settle
            with contextlib.closing(_db(agent)) as db:
                while sum(1 for seq in created if seq <= count) < count:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                    query = "SELECT id, created, data FROM outbox WHERE id > ? ORDER BY id"
                    for row_id, at, data in db.execute(query, (last_id,)).fetchall():
                        last_id = int(row_id)
                        found = MARK.search(bytes(data))
                        if found:
                            created[int(found.group(1))] = float(at)
            cpu_ms = (cpu_ns(agent.pid) - cpu0) / 1e6
        finally:
            agent.stop()
    lat = [(created[i + 1] - sent[i]) * 1000 for i in range(count) if i + 1 in created]
    return {
        "rate": rate,
        "traps": count,
        "committed": len(lat),
        "lost": count - len(lat),
        "agent_cpu_ms_per_trap": cpu_ms / count,
        "loop_lag_ms": lag * 1000,
        **_lat_figures(lat),
    }


def run_grouped(rate: float, seconds: float, settle: float = 60.0) -> dict[str, Any]:
    """One fresh agent, every trap a new alert of one group: accepted and committed per second."""
    count = max(1, round(rate * seconds))
    seen: list[tuple[float, int]] = []
    stop = threading.Event()

    def watch(agent: AgentProcess) -> None:
        with contextlib.closing(_db(agent)) as db:
            while not stop.is_set():
                with contextlib.suppress(sqlite3.OperationalError):
                    n = db.execute("SELECT COUNT(*) FROM alerts WHERE rule = 'BenchTrap'")
                    seen.append((time.time(), int(n.fetchone()[0])))
                    if seen[-1][1] >= count + 5:
                        return
                time.sleep(0.02)

    with tempfile.TemporaryDirectory(prefix="bench-grouped-") as tmp, silent_smtp() as smtp:
        agent = AgentProcess(Path(tmp), smtp, GROUPED)
        watcher = threading.Thread(target=watch, args=(agent,), daemon=True)
        try:
            blast(agent.traps, 5, 50, first=1_000_000)  # warm-up: 5 alerts
            time.sleep(1.0)
            cpu0 = cpu_ns(agent.pid)
            watcher.start()
            sent = blast(agent.traps, count, rate, first=1, clock=time.time)
            lag = _metric(agent, "netalert_loop_lag_seconds")
            watcher.join(settle)
            cpu_ms = (cpu_ns(agent.pid) - cpu0) / 1e6
            with contextlib.closing(_db(agent)) as db:
                mails = int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        finally:
            stop.set()
            agent.stop()
    committed = max((n for _, n in seen), default=5) - 5
    lat: list[float] = []
    polls = iter(seen)
    at, n = next(polls, (0.0, 0))
    for i in range(min(committed, count)):
        while n - 5 < i + 1:
            at, n = next(polls)
        lat.append((at - sent[i]) * 1000)
    last = lat[-1] / 1000 + sent[len(lat) - 1] if lat else sent[-1]
    return {
        "rate": rate,
        "traps": count,
        "committed": committed,
        "lost": count - committed,
        "mails": mails,
        "alerts_per_s": committed / max(last - sent[0], 1e-9),
        "agent_cpu_ms_per_trap": cpu_ms / count,
        "loop_lag_ms": lag * 1000,
        **_lat_figures(lat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="traps/s, one mail each")
    parser.add_argument(
        "--grouped-rate", type=float, default=2000.0, help="traps/s offered, grouped"
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    nan = float("nan")
    commit = run_commit(args.rate, args.seconds)
    print(
        f"commit {args.rate:g}/s: {commit['committed']}/{commit['traps']} committed, "
        f"p50 {commit.get('p50_ms', nan):.1f} ms, p99 {commit.get('p99_ms', nan):.1f} ms, "
        f"max {commit.get('max_ms', nan):.1f} ms, agent CPU "
        f"{commit['agent_cpu_ms_per_trap']:.2f} ms/trap, loop lag {commit['loop_lag_ms']:.0f} ms",
        flush=True,
    )
    grouped = run_grouped(args.grouped_rate, args.seconds)
    print(
        f"grouped {args.grouped_rate:g}/s offered: "
        f"{grouped['committed']}/{grouped['traps']} alerts committed, "
        f"{grouped['alerts_per_s']:,.0f}/s, p99 {grouped.get('p99_ms', nan):.0f} ms, "
        f"{grouped['mails']} mail(s), agent CPU {grouped['agent_cpu_ms_per_trap']:.2f} ms/trap, "
        f"loop lag {grouped['loop_lag_ms']:.0f} ms",
        flush=True,
    )
    if args.json:
        args.json.write_text(json.dumps({"commit": commit, "grouped": grouped}, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    main()
