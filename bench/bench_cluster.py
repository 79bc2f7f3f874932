"""Cluster mode (issue 16): trap → mail latency, failover after ``kill -9``, CPU per trap.

Three `netalert run` nodes share a private PostgreSQL and a private ``nats-server
-js``, both started with the test suite's own code (tests/support/postgres.py and
nats.py), on free loopback ports. The node config is bench.latency's (one rule
matching every trap, a new alert and one mail per trap, ``group_wait = "0s"``, an
aiosmtpd sink in its own process) plus 48 devices on 127.0.1.1-48 (not polled; their
traps spread over every shard) and ``[cluster]`` with ``lease = "3s"``,
``ack_wait = "5s"`` and ``mail_claim = "5s"``. Every trap is sent to one node, n0:
it publishes it to JetStream, the owner of the device's shard evaluates it, commits
it and mails it.

1. **latency**: ``--rate`` traps/s for ``--seconds`` to n0; latency = the sink's 250
   minus the send time (CLOCK_MONOTONIC), as bench.latency. The single-node figure
   beside it is bench.latency's own run, in the same process, right before.
2. **failover**: ``--kills`` times, ``kill -9`` of the node owning a device's shard
   (n1 and n2 in turn), then at once a trap from that device to n0; failover =
   the sink's 250 for that trap's mail minus the kill. The killed node is started
   again and the shards split evenly before the next kill. Meanwhile a steady flow
   (``--flow`` traps/s over the devices) runs through all the kills: at the end,
   every one of its alerts and of the probes must be mailed once (lost, duplicates).
3. **CPU per trap**: the three nodes' CPU over the latency burst (from before it to
   its last mail sent) / traps, beside bench.latency's single node.

Run: .venv/bin/python -m bench.bench_cluster [--seconds 10] [--kills 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.latency import (  # noqa: E402
    CONFIG,
    AgentProcess,
    Sink,
    blast,
    cpu_ns,
    percentile,
    run_latency,
)
from netalert.cluster.shards import shard_of  # noqa: E402
from tests.support.nats import NatsServer  # noqa: E402
from tests.support.postgres import PostgresServer, find_bindir  # noqa: E402

__all__ = ["run_cluster"]

SHARDS = 16
LEASE = 3.0
CLAIM = 5.0  # mail_claim and ack_wait: what a killed node held comes back after this
DEVICES = [(f"dev{n}", f"127.0.1.{n + 1}") for n in range(48)]  # every shard has some
NAMES = ["n0", "n1", "n2"]  # n0 receives every trap and is never killed
WARMUP, LATENCY_FIRST, FLOW_FIRST, PROBE_FIRST = 1_000_000, 1, 200_000, 900_000

CLUSTER = """
[[devices]]
name = "@NAME@"
address = "@ADDRESS@"
enabled = false
"""

SECTION = f"""
[cluster]
postgres = "@DSN@"
nats = "@NATS@"
node = "@NODE@"
shards = {SHARDS}
lease = "{LEASE:g}s"
ack_wait = "{CLAIM:g}s"
mail_claim = "{CLAIM:g}s"
"""


def template(dsn: str, nats: str, node: str) -> str:
    """bench.latency's config, the devices and ``[cluster]``: a template for AgentProcess."""
    devices = "".join(
        CLUSTER.replace("@NAME@", name).replace("@ADDRESS@", address) for name, address in DEVICES
    )
    cluster = SECTION.replace("@DSN@", dsn).replace("@NATS@", nats).replace("@NODE@", node)
    return CONFIG + devices + cluster


def query(dsn: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        return list(conn.execute(sql, args).fetchall())


def owners(dsn: str) -> dict[int, str]:
    """shard -> the node holding an unexpired lease on it."""
    rows = query(dsn, "SELECT shard, node FROM shard_leases WHERE expires > now()")
    return {int(shard): str(node) for shard, node in rows if node is not None}


def wait_until(what: str, check: Callable[[], bool], within: float) -> float:
    """Polls ``check`` every 50 ms; returns the seconds it took, raises past ``within``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            raise RuntimeError(f"{what}: not within {within:g} s")
        time.sleep(0.05)
    return time.monotonic() - started


def split(dsn: str) -> dict[int, str]:
    """Waits until every shard is held, by all three nodes, evenly; returns the owners."""
    found: dict[int, str] = {}

    def even() -> bool:
        nonlocal found
        found = owners(dsn)
        counts = Counter(found.values())
        spread = max(counts.values(), default=0) - min(counts.values(), default=0)
        return len(found) == SHARDS and set(counts) == set(NAMES) and spread <= 1

    wait_until("the shards split over three nodes", even, within=60)
    time.sleep(0.5)  # the nodes act on what they gained within a renewal
    return found


def outbox(dsn: str) -> tuple[int, int]:
    """(mails queued, of them not yet sent) over all nodes."""
    ((total, unsent),) = query(
        dsn, "SELECT count(*), count(*) FILTER (WHERE sent IS NULL) FROM outbox"
    )
    return int(total), int(unsent)


def mailed(dsn: str, seq: int) -> bool:
    """The mail of trap ``seq`` was sent (its summary is in the queued message)."""
    mark = f"benchseq {seq} end".encode()
    sql = "SELECT 1 FROM outbox WHERE sent IS NOT NULL AND position(%s::bytea in message) > 0"
    return bool(query(dsn, sql, mark))


class Cluster:
    """PostgreSQL, nats-server and three nodes on loopback; :meth:`close` stops them by PID."""

    def __init__(self, workdir: Path, smtp_port: int) -> None:
        self.workdir, self.smtp_port = workdir, smtp_port
        self.nodes: dict[str, AgentProcess] = {}
        bindir = find_bindir()
        if bindir is None or not (bindir / "postgres").exists():
            raise RuntimeError("PostgreSQL's initdb/postgres not found: run `make debs`")
        # its own folder under /tmp: as root, postgres runs as `nobody`, who must enter it
        self.pg = PostgresServer(
            directory=Path(tempfile.mkdtemp(prefix="bench-pg-")), bindir=bindir
        )
        (workdir / "nats").mkdir()
        self.nats = NatsServer(directory=workdir / "nats")
        self.pg.init().start()
        self.dsn = self.pg.create_database()
        self.nats.start()

    def start(self, name: str) -> AgentProcess:
        directory = self.workdir / name
        first = self.workdir / "n0" / "state" / "mibs"
        if not directory.exists():
            directory.mkdir()
            if first.is_dir():  # the compiled MIB cache of the first node: a start in ~1 s
                shutil.copytree(first, directory / "state" / "mibs")
        node = AgentProcess(directory, self.smtp_port, template(self.dsn, self.nats.url, name))
        self.nodes[name] = node
        return node

    def kill9(self, name: str) -> None:
        node = self.nodes[name]
        os.kill(node.pid, signal.SIGKILL)
        node.proc.wait(10)

    def cpu_ns(self) -> int:
        return sum(cpu_ns(node.pid) for node in self.nodes.values())

    def close(self) -> None:
        for node in self.nodes.values():
            node.stop()
        self.nats.stop()
        self.pg.stop()
        shutil.rmtree(self.pg.directory, ignore_errors=True)


class Flow:
    """A steady flow of traps over the devices to one node, in a thread, until stopped."""

    def __init__(self, port: int, rate: float) -> None:
        self.port, self.rate = port, rate
        self.sent: list[int] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        addresses = [address for _, address in DEVICES]
        while not self.stopping.is_set():
            first = FLOW_FIRST + len(self.sent)
            blast(self.port, len(addresses), self.rate, first=first, sources=addresses)
            self.sent += range(first, first + len(addresses))

    def stop(self) -> list[int]:
        self.stopping.set()
        self.thread.join(30)
        return self.sent


def run_cluster(
    rate: float, seconds: float, kills: int, flow_rate: float, settle: float = 60.0
) -> dict[str, Any]:
    count = max(1, round(rate * seconds))
    addresses = [address for _, address in DEVICES]
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        workdir = Path(tmp)
        sink = Sink(workdir)
        cluster: Cluster | None = None
        try:
            cluster = Cluster(workdir, sink.port)
            started = time.monotonic()
            for name in NAMES:
                cluster.start(name)
            start_seconds = time.monotonic() - started
            split(cluster.dsn)
            receiver = cluster.nodes["n0"]

            # 1. latency and CPU: every device once (first renders, SMTP connections), then
            #    the burst; done when every mail is queued and sent
            blast(receiver.traps, len(addresses), 50, first=WARMUP, sources=addresses)
            warm = len(addresses)
            wait_until("the warm-up mailed", lambda: outbox(cluster.dsn) == (warm, 0), settle)
            time.sleep(1.0)
            cpu0 = cluster.cpu_ns()
            sent = blast(receiver.traps, count, rate, first=LATENCY_FIRST, sources=addresses)
            with_burst = warm + count
            done = time.monotonic() + settle
            while time.monotonic() < done and outbox(cluster.dsn) != (with_burst, 0):
                time.sleep(0.1)
            cpu_ms = (cluster.cpu_ns() - cpu0) / 1e6

            # 2. failover: kill -9 the owner of a device's shard, a trap from that device
            #    at once, the node back; a flow of traps all along
            flow = Flow(receiver.traps, flow_rate)
            kill_at: dict[int, float] = {}
            victims: list[str] = []
            for k in range(kills):
                owned = split(cluster.dsn)
                victim = NAMES[1 + k % 2]
                mine = [d for d in DEVICES if owned[shard_of(d[0], SHARDS)] == victim]
                _, address = mine[k // 2 % len(mine)]
                probe = PROBE_FIRST + k
                cluster.kill9(victim)
                kill_at[probe] = time.monotonic()
                blast(receiver.traps, 1, 1.0, first=probe, sources=[address])
                victims.append(victim)
                wait_until("the probe mailed", lambda p=probe: mailed(cluster.dsn, p), 30)
                cluster.start(victim)
            flowed = flow.stop()
            expected = warm + count + len(flowed) + kills
            done = time.monotonic() + settle
            while time.monotonic() < done and outbox(cluster.dsn) != (expected, 0):
                time.sleep(0.1)
            time.sleep(CLAIM + 1)  # past any claim or delivery the last killed node held
        finally:
            if cluster is not None:
                cluster.close()
            records = sink.records()

    first_at: dict[int, float] = {}
    for seq, at in records:
        first_at[seq] = min(at, first_at.get(seq, at))
    # [seconds into the burst, latency in ms] of each trap mailed
    timed = [
        (sent[i] - sent[0], (first_at[i + 1] - sent[i]) * 1000)
        for i in range(count)
        if i + 1 in first_at
    ]
    lat = [ms for _, ms in timed]
    latency: dict[str, Any] = {
        "rate": rate,
        "traps": count,
        "mails": len(lat),
        "lost": count - len(lat),
        "nodes_start_s": round(start_seconds, 2),
        "cpu_ms_per_trap": cpu_ms / count,
    }
    if lat:
        latency |= {
            "p50_ms": statistics.median(lat),
            "p90_ms": percentile(lat, 90),
            "p99_ms": percentile(lat, 99),
            "max_ms": max(lat),
            # the five slowest: [seconds into the burst, ms], to tell a stall from a trend
            "slowest": [
                [round(at, 2), round(ms, 1)] for at, ms in sorted(timed, key=lambda t: -t[1])[:5]
            ],
        }
    failovers = [first_at[p] - at for p, at in kill_at.items() if p in first_at]
    watched = set(flowed) | set(kill_at)
    mails = Counter(seq for seq, _ in records if seq in watched)
    return {
        "nodes": len(NAMES),
        "shards": SHARDS,
        "lease_s": LEASE,
        "latency": latency,
        "failover": {
            "kills": kills,
            "victims": victims,
            "seconds": [round(s, 3) for s in failovers],
            "median_s": statistics.median(failovers) if failovers else None,
            "max_s": max(failovers) if failovers else None,
            "probes_lost": len(kill_at) - len(failovers),
        },
        "flow": {
            "rate": flow_rate,
            "alerts": len(watched),
            "mailed": len(mails),
            "lost": len(watched - set(mails)),
            "duplicates": sum(n - 1 for n in mails.values()),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="traps/s of the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    parser.add_argument("--kills", type=int, default=20, help="kill -9 of a shard's owner")
    parser.add_argument("--flow", type=float, default=20.0, help="traps/s during the kills")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    single = run_latency(args.rate, args.seconds)
    figures = run_cluster(args.rate, args.seconds, args.kills, args.flow)
    figures["single"] = single
    figures["load_1m"] = [load, os.getloadavg()[0]]
    lat, fail, flow = figures["latency"], figures["failover"], figures["flow"]
    nan = float("nan")
    print(
        f"cluster {lat['rate']:g}/s: {lat['mails']}/{lat['traps']} mails, "
        f"p50 {lat.get('p50_ms', nan):.1f} ms, p99 {lat.get('p99_ms', nan):.1f} ms "
        f"(single node p99 {single.get('p99_ms', nan):.1f} ms); CPU/trap "
        f"{lat['cpu_ms_per_trap']:.2f} ms over 3 nodes "
        f"(single {single['agent_cpu_ms_per_trap']:.2f})"
        f"\nfailover over {fail['kills']} kills (lease {LEASE:g} s): {fail['seconds']} s, "
        f"{fail['probes_lost']} probes lost; flow {flow['alerts']} alerts: {flow['lost']} lost, "
        f"{flow['duplicates']} twice; load {figures['load_1m']}",
        flush=True,
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    main()
