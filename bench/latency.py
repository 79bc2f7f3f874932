"""Trap → SMTP-accepted latency through the real agent (`netalert run`), group_wait 0.

Three processes on loopback, ports found free at run time:

* the agent: ``netalert run -c config.toml`` with one trap listener, one trap
  rule matching every trap (``trap = "*"``, ``key = ["ifIndex"]``: every trap
  carries a new ifIndex, so every trap is a new alert and one mail), one route
  with ``group_wait = "0s"``, storm control raised out of the way, logging at
  info as in production;
* an aiosmtpd sink in its own process that notes ``time.monotonic()`` when it
  accepts each message (the 250 after DATA);
* the blaster (this process): pre-encoded v2c linkDown traps paced at the
  rate asked, each send noted with ``time.monotonic()`` (CLOCK_MONOTONIC, one
  clock for every process of the machine).

A trap is matched to its mail by the ifIndex the rule's summary puts in the
body (``benchseq N end``). Latency = accepted - sent, so it includes the
kernel's queueing, the agent's decode, rules, SQLite writes, outbox, rendering
and the SMTP dialogue.

Run: .venv/bin/python -m bench.latency [--run 100:10] [--run 1000:3] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netalert.snmp.types import SnmpType  # noqa: E402
from netalert.snmp.wire.ber import PduType  # noqa: E402
from netalert.snmp.wire.berenc import encode_message  # noqa: E402

__all__ = ["AgentProcess", "Sink", "blast", "cpu_ns", "percentile", "run_latency"]

HOST = "127.0.0.1"
MARK = re.compile(rb"benchseq (\d+) end")

CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
drain_timeout = "2s"

[mibs]
paths = []

[traps]
listen = ["127.0.0.1:{traps}"]
communities = ["public"]
allow = ["127.0.0.0/8"]
# every trap must become a mail: storm control folds repeats, so it is raised here
storm_rate = 1000000.0
storm_burst = 1000000
storm_trap_rate = 1000000.0
storm_trap_burst = 1000000

# every trap is a new alert: the alert caps are raised for the same reason
[limits]
max_active_alerts = 1000000
max_active_alerts_per_rule = 1000000

[[rules]]
name = "BenchTrap"
trap = "*"
key = ["ifIndex"]
severity = "warning"
summary = "benchseq {{{{ ifIndex }}}} end"

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"

[[routes]]
to = ["noc@example.org"]
group_by = ["rule", "device", "ifIndex"]
group_wait = "0s"
group_interval = "1m"
"""


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` (schedstat, as bench_traps reads it)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):  # a thread may exit meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total


def trap(seq: int) -> bytes:
    """A v2c linkDown whose ifIndex is ``seq`` (the key: one new alert per trap)."""
    return encode_message(
        version=1,
        community=b"public",
        pdu_type=PduType.TRAP_V2,
        request_id=seq,
        varbinds=[
            ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 123456),
            ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, "1.3.6.1.6.3.1.1.5.3"),
            (f"1.3.6.1.2.1.2.2.1.1.{seq}", SnmpType.INTEGER, seq),
            (f"1.3.6.1.2.1.2.2.1.7.{seq}", SnmpType.INTEGER, 1),
            (f"1.3.6.1.2.1.2.2.1.8.{seq}", SnmpType.INTEGER, 2),
            (f"1.3.6.1.2.1.2.2.1.2.{seq}", SnmpType.OCTET_STRING, f"Gi0/{seq}".encode()),
        ],
    )


# --- the SMTP sink (its own process) --------------------------------------------------


def serve_sink(port: int, out: Path) -> None:
    """Accepts every message, notes when; on SIGTERM writes ``[[seq, t], ...]`` to ``out``."""
    from aiosmtpd.controller import Controller

    accepted: list[tuple[float, bytes]] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            accepted.append((time.monotonic(), bytes(envelope.original_content or b"")))
            return "250 2.0.0 accepted"

    controller = Controller(Handler(), hostname=HOST, port=port, ready_timeout=10.0)
    controller.start()
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    print("ready", flush=True)
    while not stop[0]:
        time.sleep(0.1)
    controller.stop()
    records = []
    for at, raw in accepted:
        # the body may be quoted-printable or base64: decode before looking for the mark
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(("plain",))
        text = body.get_content().encode() if body is not None else raw
        found = MARK.search(text)
        records.append([int(found.group(1)) if found else -1, at])
    out.write_text(json.dumps(records))


class Sink:
    """The sink process: ``results()`` stops it and returns {seq: accepted at}."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port(socket.SOCK_STREAM)
        self.out = workdir / f"sink-{self.port}.json"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.latency", "--sink", str(self.port), str(self.out)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"the SMTP sink did not start: {line!r}"

    def records(self) -> list[tuple[int, float]]:
        """Stops the sink; every message it accepted as (seq, accepted at), repeats kept."""
        self.proc.terminate()
        self.proc.wait(60)
        return [(int(seq), float(at)) for seq, at in json.loads(self.out.read_text())]

    def results(self) -> dict[int, float]:
        return dict(self.records())


# --- the agent --------------------------------------------------------------------------


class AgentProcess:
    """`netalert run` with the bench config, started and ready (/healthz answers)."""

    def __init__(self, workdir: Path, smtp_port: int, template: str = CONFIG) -> None:
        self.http = free_port(socket.SOCK_STREAM)
        self.traps = free_port(socket.SOCK_DGRAM)
        self.workdir = workdir
        config = workdir / "config.toml"
        config.write_text(template.format(http=self.http, traps=self.traps, smtp=smtp_port))
        self.log_path = workdir / "agent.log"
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "netalert", "run", "-c", str(config)],
                stdout=log,
                stderr=log,
                cwd=workdir,
                # this checkout's netalert, whatever the venv's editable install points at
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        self.pid = self.proc.pid
        deadline = time.monotonic() + 120
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"netalert run did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        self.start_seconds = time.monotonic() - started

    def _healthy(self) -> bool:
        try:
            url = f"http://{HOST}:{self.http}/healthz"
            with urllib.request.urlopen(url, timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# --- one run --------------------------------------------------------------------------


def blast(
    port: int,
    count: int,
    rate: float,
    first: int,
    clock: Callable[[], float] = time.monotonic,
    sources: Sequence[str] = (),
) -> list[float]:
    """Sends ``count`` traps paced at ``rate``/s; returns each one's send time by ``clock``.

    With ``sources`` (loopback addresses) the traps come from each of them in turn.
    """
    data = [trap(first + i) for i in range(count)]
    sent = [0.0] * count
    with contextlib.ExitStack() as stack:
        socks = []
        for address in sources or [""]:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            if address:
                sock.bind((address, 0))
            socks.append(sock)
        target = (HOST, port)
        start = time.monotonic()
        for i, datagram in enumerate(data):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent[i] = clock()
            socks[i % len(socks)].sendto(datagram, target)
    return sent


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def run_latency(rate: float, seconds: float, settle: float = 60.0) -> dict[str, Any]:
    """One fresh agent, ``rate`` traps/s for ``seconds``; figures in ms and counts.

    Waits up to ``settle`` seconds after the last trap for the mails still queued.
    """
    count = max(1, round(rate * seconds))
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        workdir = Path(tmp)
        sink = Sink(workdir)
        agent: AgentProcess | None = None
        try:
            agent = AgentProcess(workdir, sink.port)
            blast(agent.traps, 5, 50, first=1_000_000)  # warm-up: first render, SMTP connect
            time.sleep(1.0)
            cpu0 = cpu_ns(agent.pid)
            sent = blast(agent.traps, count, rate, first=1)
            blast_end = time.monotonic()
            lag = _metric(agent, "netalert_loop_lag_seconds")  # the largest of the last 10 s
            deadline = blast_end + settle
            # the agent logs one "notification" line per mail it queued; the sink's
            # count is only known at the end, so wait on the outbox via /metrics
            while time.monotonic() < deadline and _queued(agent) < count + 5:
                time.sleep(0.1)
            while time.monotonic() < deadline and _pending(agent) > 0:
                time.sleep(0.1)
            cpu_ms = (cpu_ns(agent.pid) - cpu0) / 1e6
            start_seconds = agent.start_seconds
        finally:
            if agent is not None:
                agent.stop()
            accepted = sink.results()
    lat = [(accepted[i + 1] - sent[i]) * 1000 for i in range(count) if i + 1 in accepted]
    last = max((accepted[i + 1] for i in range(count) if i + 1 in accepted), default=blast_end)
    out: dict[str, Any] = {
        "rate": rate,
        "traps": count,
        "mails": len(lat),
        "lost": count - len(lat),
        "agent_start_s": round(start_seconds, 2),
        "agent_cpu_ms_per_trap": cpu_ms / count,
        "mails_per_s": len(lat) / max(last - sent[0], 1e-9),
        "loop_lag_ms": lag * 1000,
    }
    if lat:
        out |= {
            "p50_ms": statistics.median(lat),
            "p90_ms": percentile(lat, 90),
            "p99_ms": percentile(lat, 99),
            "max_ms": max(lat),
        }
    return out


def _metric(agent: AgentProcess, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{agent.http}/metrics", timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head = line.split()[0]
            if head == name or head.startswith(name + "{"):
                total += float(line.split()[-1])
    return total


def _queued(agent: AgentProcess) -> float:
    return _metric(agent, "netalert_mail_sent_total") + _metric(agent, "netalert_outbox_pending")


def _pending(agent: AgentProcess) -> float:
    return _metric(agent, "netalert_outbox_pending")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sink", nargs=2, metavar=("PORT", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--run", action="append", metavar="RATE:SECONDS", help="traps/s and for how long"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if args.sink:
        serve_sink(int(args.sink[0]), Path(args.sink[1]))
        return
    results = []
    for spec in args.run or ["100:10"]:
        rate, _, seconds = spec.partition(":")
        res = run_latency(float(rate), float(seconds or 10))
        results.append(res)
        nan = float("nan")
        print(
            f"{spec}: {res['mails']}/{res['traps']} mails, p50 {res.get('p50_ms', nan):.1f} ms, "
            f"p99 {res.get('p99_ms', nan):.1f} ms, max {res.get('max_ms', nan):.1f} ms, "
            f"{res['mails_per_s']:.0f} mails/s, agent CPU {res['agent_cpu_ms_per_trap']:.2f} "
            f"ms/trap, loop lag {res['loop_lag_ms']:.0f} ms, agent start {res['agent_start_s']} s",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    main()
