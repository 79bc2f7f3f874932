"""Fault-test helpers: a `netalert run` subprocess, trap datagrams, delivery counting.

Used by tests/test_faults*.py (fast, in ``make test``) and tests/soak/ (``make soak``).
The agent runs exactly as systemd would start it; traps are real UDP datagrams
built with :mod:`netalert.snmp.wire.berenc` (the same bytes net-snmp's snmptrap sends
for a linkDown, without a process per trap); mail goes to the aiosmtpd sink of
:mod:`tests.support.smtp`.

Load with ``pytest_plugins = ["tests.support.faults"]`` (tests/conftest.py) for the
session fixture ``mib_cache`` (built-in MIBs compiled once; each agent's state
directory starts from a copy, so a start takes ~1 s instead of ~5 s).

Also a command-line trap blaster, run as its own process so the flood does not
share the measuring thread's interpreter::

    python -m tests.support.faults blast PORT COUNT SECONDS
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import PduType
from netalert.snmp.wire.berenc import encode_message
from tests.support.shared import locked, python_path, shared_dir
from tests.support.smtp import ReceivedMessage

__all__ = [
    "LINK_DOWN",
    "SUMMARY_RE",
    "AgentProcess",
    "FloodReport",
    "alert_indexes",
    "blast",
    "delivered",
    "flood",
    "kept_running",
    "link_down",
    "metric_values",
    "mib_cache",
    "send_traps",
    "warm_mib_cache",
]

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_ADMIN = "1.3.6.1.2.1.2.2.1.7"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
ROOT = Path(__file__).resolve().parents[2]

# The fault-test rules' summary; the text body carries it, so a mail names its alert.
SUMMARY = "fault-test ifIndex={{ ifIndex }}"
SUMMARY_RE = re.compile(r"fault-test ifIndex=(\d+)")


def link_down(
    index: int, *, uptime: int = 4200, extra: tuple[tuple[str, SnmpType, Any], ...] = ()
) -> bytes:
    """A v2c linkDown for ``ifIndex`` = ``index`` (admin up, oper down), community public;
    ``extra`` varbinds follow."""
    return encode_message(
        version=1,
        community=b"public",
        pdu_type=PduType.TRAP_V2,
        request_id=index,
        varbinds=[
            (SYS_UPTIME, SnmpType.TIMETICKS, uptime),
            (TRAP_OID, SnmpType.OID, LINK_DOWN),
            (f"{IF_INDEX}.{index}", SnmpType.INTEGER, index),
            (f"{IF_ADMIN}.{index}", SnmpType.INTEGER, 1),
            (f"{IF_OPER}.{index}", SnmpType.INTEGER, 2),
            *extra,
        ],
    )


def send_traps(port: int, datagrams: list[bytes], *, seconds: float = 0.0) -> None:
    """Sends ``datagrams`` to 127.0.0.1:``port``, spread evenly over ``seconds``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        start = time.monotonic()
        count = len(datagrams)
        for number, data in enumerate(datagrams):
            sock.sendto(data, ("127.0.0.1", port))
            if seconds > 0:
                ahead = start + seconds * (number + 1) / count - time.monotonic()
                if ahead > 0.002:
                    time.sleep(ahead)


def blast(port: int, count: int, seconds: float) -> int:
    """Sends ``count`` linkDown traps (ifIndex 1..1000 in turn) over ``seconds``; paced in 5 ms
    slices. Returns how many were sent."""
    templates = [link_down(1 + i % 1000) for i in range(min(count, 1000))]
    slices = max(1, int(seconds / 0.005))
    per_slice = count / slices
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        start = time.monotonic()
        for number in range(slices):
            target = round(per_slice * (number + 1))
            while sent < target:
                try:
                    sock.sendto(templates[sent % len(templates)], ("127.0.0.1", port))
                except BlockingIOError:  # pragma: no cover - loopback sendto blocks instead
                    continue
                sent += 1
            ahead = start + (number + 1) * 0.005 - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    return sent


def delivered(messages: list[ReceivedMessage]) -> tuple[Counter[str], Counter[int]]:
    """Counts the accepted mails by Message-ID and by the ifIndex their body names."""
    by_id: Counter[str] = Counter()
    by_index: Counter[int] = Counter()
    for message in messages:
        parsed = message.parsed()
        by_id[str(parsed["Message-ID"])] += 1
        body = parsed.get_body(("plain",))
        assert body is not None
        for match in set(SUMMARY_RE.findall(body.get_content())):
            by_index[int(match)] += 1
    return by_id, by_index


def warm_mib_cache(directory: Path) -> Path:
    """Compiles the built-in MIBs once into ``directory``/mibs (seconds; later starts reuse it)."""
    state = directory / "warm-state"
    done = directory / "warm.done"
    if not done.is_file():
        config = directory / "warm.toml"
        config.write_text(f'[agent]\nstate_dir = "{state}"\nhttp = ""\n')
        subprocess.run(
            [sys.executable, "-m", "netalert", "check-config", "-c", str(config)],
            capture_output=True,
            timeout=120,
            check=True,
        )
        done.touch()
    return state / "mibs"


@pytest.fixture(scope="session")
def mib_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compiled MIB cache to copy into each agent's state directory: built once per run,
    by the first xdist worker that needs it (the others wait for it and reuse it)."""
    folder = shared_dir()
    if folder is None:
        return warm_mib_cache(tmp_path_factory.mktemp("mib-cache"))
    with locked("mib-cache"):
        directory = folder / "mib-cache"
        directory.mkdir(exist_ok=True)
        return warm_mib_cache(directory)


@dataclass
class AgentProcess:
    """One `netalert run` subprocess in ``directory`` with ``config.toml`` written there."""

    directory: Path
    config_text: str
    http_port: int
    mib_cache: Path | None = None
    traps_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    env: dict[str, str] = field(default_factory=dict)
    rlimit_nofile: int | None = None  # RLIMIT_NOFILE (soft and hard) of the agent process
    args: list[str] = field(default_factory=list)  # extra `netalert run` options

    @property
    def config(self) -> Path:
        return self.directory / "config.toml"

    @property
    def state(self) -> Path:
        return self.directory / "state"

    @property
    def log_path(self) -> Path:
        return self.directory / "agent.log"

    def log(self) -> str:
        """Everything the agent wrote to stdout and stderr so far (every start)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, *, within: float = 60.0) -> None:
        """Starts the agent and waits until /healthz answers 200."""
        self.config.write_text(self.config_text)
        if self.mib_cache is not None and not (self.state / "mibs").exists():
            shutil.copytree(self.mib_cache, self.state / "mibs")
        env = {**os.environ, "NOTIFY_SOCKET": "", **self.env}
        env["PYTHONPATH"] = python_path(ROOT)
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "netalert", "run", "-c", str(self.config), *self.args],
                stdout=log,
                stderr=log,
                cwd=self.directory,
                env=env,
                preexec_fn=None if self.rlimit_nofile is None else self._limit_files,
            )
        self.starts += 1
        deadline = time.monotonic() + within
        while True:
            assert self.proc.poll() is None, f"agent exited:\n{self.log()}"
            with contextlib.suppress(OSError):
                if self.get("/healthz", timeout=1.0)[0] == 200:
                    return
            assert time.monotonic() < deadline, f"/healthz never answered:\n{self.log()}"
            time.sleep(0.05)

    def _limit_files(self) -> None:
        # Runs in the child between fork and exec: only the async-signal-safe setrlimit.
        assert self.rlimit_nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.rlimit_nofile, self.rlimit_nofile))

    def kill9(self) -> None:
        """SIGKILL, by PID: no drain, no flush, no closing line."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, *, within: float = 15.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=within)
        return code, time.monotonic() - started

    def cleanup(self) -> None:
        """Kills a still running agent (test teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def get(self, path: str, *, timeout: float = 5.0) -> tuple[int, str]:
        """GET on the agent's web port; returns (status, body)."""
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Runs a read query on the agent's state database (WAL: safe while it runs)."""
        db = sqlite3.connect(self.state / "netalert.db", timeout=10)
        try:
            return list(db.execute(sql).fetchall())
        finally:
            db.close()

    def outbox_count(self) -> int:
        """Messages waiting in the outbox (0 before the database exists)."""
        if not (self.state / "netalert.db").exists():
            return 0
        try:
            return int(self.query("SELECT COUNT(*) FROM outbox")[0][0])
        except sqlite3.OperationalError:  # tables not created yet
            return 0

    def wait_outbox(self, count: int, *, within: float) -> None:
        """Waits until the outbox holds at least ``count`` messages."""
        deadline = time.monotonic() + within
        while self.outbox_count() < count:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, (
                f"outbox has {self.outbox_count()} of {count}:\n{self.log()[-4000:]}"
            )
            time.sleep(0.05)

    def metric(self, name: str) -> float:
        """One unlabelled sample from /metrics."""
        status, body = self.get("/metrics")
        assert status == 200, body
        match = re.search(rf"^{re.escape(name)} (\S+)$", body, re.MULTILINE)
        assert match is not None, f"{name} not in /metrics"
        return float(match.group(1))


@contextlib.contextmanager
def kept_running(agent: AgentProcess) -> Iterator[AgentProcess]:
    """Starts ``agent`` for the tests of a module that share it (module-scoped fixtures);
    at the end it must stop cleanly (exit 0) after all of them. Killed if it did not."""
    try:
        agent.start()
        yield agent
        code, _ = agent.terminate()
        assert code == 0, agent.log()[-4000:]
    finally:
        agent.cleanup()


def alert_indexes(agent: AgentProcess, rule: str) -> set[int]:
    """The ifIndex of every alert of ``rule`` in the state database."""
    rows = agent.query(f"SELECT labels FROM alerts WHERE rule = '{rule}'")
    return {int(json.loads(str(labels))["ifIndex"]) for (labels,) in rows}


@dataclass(frozen=True, slots=True)
class FloodReport:
    """What :func:`flood` measured: every /healthz probe during the flood."""

    sent: int
    seconds: float
    latencies: tuple[float, ...]  # seconds, one per probe
    statuses: tuple[int, ...]  # HTTP status per probe; 0 for no answer

    @property
    def worst(self) -> float:
        return max(self.latencies)


def flood(agent: AgentProcess, port: int, count: int, seconds: float) -> FloodReport:
    """Sends ``count`` traps in ``seconds`` from a separate process while probing
    /healthz every 50 ms (a new connection each, as a monitoring system would)."""
    latencies: list[float] = []
    statuses: list[int] = []
    blaster = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.faults",
            "blast",
            str(port),
            str(count),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": python_path(ROOT)},
    )
    began = time.monotonic()
    try:
        while blaster.poll() is None or len(latencies) * 0.05 < seconds:
            tick = time.monotonic()
            try:
                status = agent.get("/healthz", timeout=2.0)[0]
            except OSError:
                status = 0
            latencies.append(time.monotonic() - tick)
            statuses.append(status)
            time.sleep(max(0.0, tick + 0.05 - time.monotonic()))
            assert time.monotonic() - began < seconds + 60, "blaster did not finish"
        out, _ = blaster.communicate(timeout=10)
    finally:
        if blaster.poll() is None:
            blaster.kill()
            blaster.wait(timeout=10)
    return FloodReport(int(out), time.monotonic() - began, tuple(latencies), tuple(statuses))


def metric_values(body: str, name: str) -> dict[str, float]:
    """Every sample of ``name`` in a /metrics body, keyed by its label text ("" if none)."""
    pattern = rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$"
    return {labels or "": float(v) for labels, v in re.findall(pattern, body, re.MULTILINE)}


def _main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "blast":
        sent = blast(int(argv[1]), int(argv[2]), float(argv[3]))
        print(sent, flush=True)
        return 0
    print("usage: python -m tests.support.faults blast PORT COUNT SECONDS", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


@pytest.fixture
def flood_agent(tmp_path: Path, smtp_server: Any, mib_cache: Path) -> Iterator[AgentProcess]:
    """A `netalert run` set up for trap floods (see fault_checks.flood_config), not started."""
    from tests.support.fault_checks import flood_config
    from tests.support.ports import free_tcp_port, free_udp_port

    http, traps = free_tcp_port(), free_udp_port()
    text = flood_config(traps=traps, smtp=smtp_server.port, http=http)
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    proc.cleanup()


@pytest.fixture
def mail_agent(tmp_path: Path, smtp_server: Any, mib_cache: Path) -> Iterator[AgentProcess]:
    """A `netalert run` with one trap rule whose every alert is mailed alone
    (see fault_checks.mail_config), not started."""
    from tests.support.fault_checks import mail_config
    from tests.support.ports import free_tcp_port, free_udp_port

    traps, http = free_udp_port(), free_tcp_port()
    text = mail_config(traps=traps, smtp=smtp_server.port, http=http)
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    proc.cleanup()
