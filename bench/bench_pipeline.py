"""CPU per trap → committed outbox row, through the agent's real objects in this process.

The agent (:class:`netalert.service.Agent`) starts as ``netalert run`` would,
with a config like bench.latency's: one trap rule matching every trap, every
trap a new alert (its ifIndex is new). Its sender is stopped, so nothing
competes with the path measured and every mail stays in the outbox. Pre-encoded
v2c linkDown datagrams go through ``TrapReceiver.handle`` (decode, access
control, naming), ``batch`` per loop turn as the socket reader hands them over,
and the clock stops when the outbox holds every mail (committed: the count
comes from the agent's own counter, bumped after the commit).

CPU is ``time.process_time()`` of the whole process (every thread) over the
run, divided by the traps; the best of ``reps`` runs is reported (the machine
is shared: the other runs only lose CPU to cache and scheduler noise).

Workloads:

* ``per_trap``: ``group_by`` includes ifIndex, ``group_wait = "0s"``: one
  mail rendered and committed per trap (the worst case);
* ``grouped``: ``group_by = ["device"]``: the traps' alerts are grouped, one
  mail for the group; the run ends when every alert is committed.

Run: .venv/bin/python -m bench.bench_pipeline [--traps 3000] [--reps 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.latency import free_port, trap  # noqa: E402
from netalert.config import load_config_text  # noqa: E402
from netalert.logs import setup_logging  # noqa: E402
from netalert.service import Agent, Prepared, prepare  # noqa: E402

__all__ = ["run_pipeline"]

CONFIG = """
[agent]
state_dir = "{state}"
http = ""

[mibs]
paths = []

[traps]
workers = 1  # the receiver in this process: the bench hands it the traps
listen = ["127.0.0.1:{traps}"]
communities = ["public"]
allow = ["127.0.0.0/8"]
storm_rate = 1000000.0
storm_burst = 1000000
storm_trap_rate = 1000000.0
storm_trap_burst = 1000000

[[rules]]
name = "BenchTrap"
trap = "*"
key = ["ifIndex"]
severity = "warning"
summary = "benchseq {{{{ ifIndex }}}} end"

[limits]
# the caps out of the way: every trap must become an alert
max_active_alerts = 1000000
max_active_alerts_per_rule = 1000000

[smtp]
host = "127.0.0.1"
port = 9
from = "netalert <netalert@example.org>"

[[routes]]
to = ["noc@example.org"]
group_by = {group_by}
group_wait = "{group_wait}"
group_interval = "1m"
"""

WORKLOADS = {
    "per_trap": ('["rule", "device", "ifIndex"]', "0s"),
    "grouped": ('["device"]', "1s"),
}


async def _one_run(prepared: Prepared, traps: int, batch: int, grouped: bool) -> dict[str, Any]:
    agent = Agent(prepared)
    await agent.start()
    assert agent.mail is not None and agent.receiver is not None and agent.store is not None
    await agent.mail.sender.stop()
    address = ("127.0.0.1", 50_000)
    for seq in range(5):  # warm-up: first render, first statements
        agent.receiver.handle(trap(5_000_000 + seq), address)
    await _settle(agent, 5, grouped)
    data = [trap(seq) for seq in range(1, traps + 1)]
    mails = agent.counters["notifications"]
    wall = time.perf_counter()
    cpu = time.process_time()
    for first in range(0, traps, batch):
        for datagram in data[first : first + batch]:
            agent.receiver.handle(datagram, address)
        await asyncio.sleep(0)
    await _settle(agent, 5 + traps, grouped)
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    out = {
        "traps": traps,
        "cpu_ms_per_trap": cpu * 1000 / traps,
        "wall_s": wall,
        "mails": agent.counters["notifications"] - mails,
    }
    agent.request_stop()
    await agent.drain(0)
    return out


async def _settle(agent: Agent, count: int, grouped: bool) -> None:
    """Waits until ``count`` new alerts are committed (grouped) or ``count`` mails (per trap)."""
    assert agent.store is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if grouped:
            done = agent.counters["transitions"] >= count and not agent.store.dirty
        else:
            done = agent.counters["notifications"] >= count
        if done:
            return
        await asyncio.sleep(0.001)
    raise TimeoutError(f"{count} not committed in 120 s")


def run_pipeline(workload: str, traps: int, batch: int, reps: int, mibs: Path) -> dict[str, Any]:
    """The best of ``reps`` runs of ``workload`` (a fresh state directory each)."""
    group_by, group_wait = WORKLOADS[workload]
    runs = []
    for _ in range(reps):
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
            state = Path(tmp) / "state"
            shutil.copytree(mibs, state / "mibs")
            text = CONFIG.format(
                state=state,
                traps=free_port(socket.SOCK_DGRAM),
                group_by=group_by,
                group_wait=group_wait,
            )
            prepared = prepare(load_config_text(text))
            runs.append(asyncio.run(_one_run(prepared, traps, batch, workload == "grouped")))
    best = min(runs, key=lambda r: r["cpu_ms_per_trap"])
    return {
        **best,
        "workload": workload,
        "batch": batch,
        "reps": [r["cpu_ms_per_trap"] for r in runs],
    }


def warm_mibs(directory: Path) -> Path:
    """The built-in MIBs compiled once into ``directory``/state/mibs (reused by each run)."""
    state = directory / "state"
    prepare(load_config_text(CONFIG.format(state=state, traps=1, group_by="[]", group_wait="0s")))
    return state / "mibs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=16, help="datagrams per loop turn")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    # log as `netalert run` does (the info lines are part of the cost), into nowhere
    sink = io.StringIO()
    with contextlib.redirect_stderr(sink):
        setup_logging("info")
    logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # noqa: SIM115
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-mibs-") as tmp:
        mibs = warm_mibs(Path(tmp))
        for workload in WORKLOADS:
            res = run_pipeline(workload, args.traps, args.batch, args.reps, mibs)
            results[workload] = res
            print(
                f"{workload}: {res['cpu_ms_per_trap']:.3f} ms CPU per trap -> committed "
                f"(runs: {', '.join(f'{r:.3f}' for r in res['reps'])}), {res['mails']} mails, "
                f"{res['traps'] / res['wall_s']:,.0f} traps/s wall",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    main()
