"""A hostile network and a hostile local user against `netalert run` with [traps] workers = 2.

Garbage of every kind (the fuzz seeds mutated, truncated and oversized BER,
huge varbind counts, 64 KiB datagrams, SNMPv3 with bogus engine IDs, boots
and times, informs from spoofed sources, floods from one source and from
many) must leave every worker running, the agent answering, memory bounded,
and every refusal counted and logged (escaped, rate-limited); a real trap
afterwards still becomes a mail. Locally, the hand-over channels are unnamed
socket pairs that no other process holds, and a worker killed again and
again is restarted with a growing, bounded back-off, counted.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzz.seeds import built_seeds, v3_seeds
from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import PduType
from netalert.snmp.wire.berenc import encode_message
from tests.support.fault_checks import assert_exactly_once, mail_config
from tests.support.faults import AgentProcess, delivered, link_down, metric_values
from tests.support.order import timing
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.procs import trap_workers
from tests.support.smtp import SmtpServer
from tests.test_traps_workers_e2e import _WORKERS, ENGINE, USER

pytestmark = pytest.mark.e2e

TRAP = ["", "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1", "i", "7"]


@pytest.fixture
def agent(tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path) -> Iterator[AgentProcess]:
    traps, http = free_udp_port(), free_tcp_port()
    text = mail_config(traps=traps, smtp=smtp_server.port, http=http)
    text = text.replace("storm_trap_burst = 1000000\n", "storm_trap_burst = 1000000\n" + _WORKERS)
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    proc.cleanup()


def _workers(agent: AgentProcess) -> list[int]:
    """The agent's worker processes."""
    assert agent.proc is not None
    return trap_workers(agent.proc.pid)


def _memory(pid: int, field: str = "VmHWM") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field}")


def _hostile_datagrams() -> list[bytes]:
    """What a hostile network sends: the fuzz seeds, cut and flipped; broken BER."""
    rng = random.Random(20261207)
    seeds = [*built_seeds(), *v3_seeds()]
    out: list[bytes] = []
    for seed in seeds:
        out.append(seed)
        for cut in (1, 2, len(seed) // 3, len(seed) // 2, len(seed) - 1):
            out.append(seed[:cut])
        for _ in range(20):
            flipped = bytearray(seed)
            for _ in range(rng.randint(1, 4)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            out.append(bytes(flipped))
    out += [
        b"\x30\x84\x7f\xff\xff\xff" + b"\x02\x01\x01" * 10,  # a length of 2 GiB
        b"\x30\x80" * 30000,  # indefinite lengths, nested 30,000 deep
        b"\x30\x82\xff\xf0" + b"\x30\x82\xff\xe0" * 16000,  # nested definite lengths
        b"\x30" + b"\x89" + b"\xff" * 9 + b"\x00",  # a length of 9 octets
        bytes(rng.randrange(256) for _ in range(65507)),  # the largest UDP datagram
        b"\x30\x83\x00\xff\xe0" + b"\x04\x83\x00\xff\xd8" + b"A" * 65496,
    ]
    varbinds = [(f"1.3.6.1.4.1.99999.{i}", SnmpType.NULL, None) for i in range(4000)]
    for pdu in (PduType.TRAP_V2, PduType.INFORM):  # far past max_varbinds, ~60 KiB
        out.append(
            encode_message(
                version=1, community=b"public", pdu_type=pdu, request_id=5, varbinds=varbinds
            )
        )
    # a community and a value crafted to forge log lines
    forged = b"public\nlevel=critical event=forged_line"
    out.append(encode_message(version=1, community=forged, pdu_type=PduType.TRAP_V2, varbinds=[]))
    return out


def _send(datagrams: list[bytes], port: int, sources: list[str], *, rounds: int = 1) -> int:
    sockets = []
    for source in sources:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((source, 0))
        sockets.append(sock)
    sent = 0
    try:
        for _ in range(rounds):
            for n, data in enumerate(datagrams):
                sockets[n % len(sockets)].sendto(data, ("127.0.0.1", port))
                sent += 1
                if sent % 200 == 0:
                    time.sleep(0.002)  # loopback is fast; let the kernel breathe a little
    finally:
        for sock in sockets:
            sock.close()
    return sent


def _net_snmp(agent: AgentProcess, source: str, *argv: str) -> None:
    subprocess.run(
        [argv[0], f"--clientaddr={source}", *argv[1:], f"127.0.0.1:{agent.traps_port}", *TRAP],
        capture_output=True,
        timeout=30,
        check=False,  # snmpinform exits 1 when refused: no Response
    )


class _Health(threading.Thread):
    """Polls /healthz every 0.1 s while the attack runs; keeps the slowest answer."""

    def __init__(self, agent: AgentProcess) -> None:
        super().__init__(daemon=True)
        self.agent = agent
        self.worst = 0.0
        self.failures = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            started = time.monotonic()
            try:
                ok = self.agent.get("/healthz", timeout=10)[0] == 200
            except OSError:
                ok = False
            self.failures += not ok
            self.worst = max(self.worst, time.monotonic() - started)
            self.done.wait(0.1)


# wall-time bound: /healthz answers within 3 s throughout the attack (in a lane beside one
# cluster test: the timing pass's lanes take about as long each)
@timing("cluster-c")
def test_hostile_datagrams_leave_every_worker_running(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    agent.start()
    assert agent.proc is not None
    workers = _workers(agent)
    assert len(workers) == 2
    time.sleep(1)  # the workers' first counters
    base = {pid: _memory(pid, "VmRSS") for pid in [agent.proc.pid, *workers]}
    health = _Health(agent)
    health.start()
    hostile = _hostile_datagrams()
    port = agent.traps_port
    sent = _send(hostile, port, ["127.0.0.1"], rounds=3)  # one source: all to one worker
    many = [f"127.0.{n // 250}.{1 + n % 250}" for n in range(300)]
    sent += _send(hostile, port, many, rounds=3)  # many sources: every worker
    for n in range(20):  # informs from spoofed sources, answered or refused, never amplified
        source = f"127.0.3.{n + 1}"
        _net_snmp(agent, source, "snmpinform", "-v", "2c", "-c", "wrong", "-t", "0.5", "-r", "0")
    for engine, boots in (("0x8000000009999999", "1,1"), (f"0x{ENGINE}", "2147483647,2147483647")):
        for source in ("127.0.0.1", "127.0.0.2"):
            _net_snmp(agent, source, "snmptrap", *USER, "-e", engine, "-Z", boots)
    sent += 20 + 4  # one datagram each (no retries, no discovery)
    flood = [link_down(1)[:-3]] * 30000  # cut: malformed, from one source
    sent += _send(flood, port, ["127.0.0.9"])
    time.sleep(2)
    health.done.set()
    health.join(30)

    # no worker died, none was refused, the agent answered throughout
    assert sorted(_workers(agent)) == sorted(workers), agent.log()[-4000:]
    body = agent.get("/metrics")[1]
    assert metric_values(body, "netalert_trap_worker_restarts_total") == {"": 0.0}
    assert metric_values(body, "netalert_trap_worker_refused_total") == {"": 0.0}
    assert metric_values(body, "netalert_trap_workers") == {"": 2.0}
    assert health.failures == 0 and health.worst < 3.0, (health.failures, health.worst)
    # logged, escaped, rate-limited: one line per source and reason a minute at most
    lines = agent.log().splitlines()
    assert all(line.startswith(("level=", "--- start")) for line in lines), [
        line for line in lines if not line.startswith(("level=", "--- start"))
    ][:5]
    assert not [line for line in lines if "\r" in line or "\x1b" in line]
    refused = [line for line in lines if " event=trap_rejected " in line]
    sources = len(many) + 1 + 20 + 2 + 1
    assert 0 < len(refused) <= sources * 4, len(refused)
    # every refusal counted (or dropped by the kernel: its receive buffer was full)
    rejected = metric_values(body, "netalert_traps_rejected_total")
    drops = agent.metric("netalert_trap_socket_drops")
    assert rejected['reason="malformed"'] + drops > 30000
    assert rejected['reason="too_many_varbinds"'] >= 1
    assert rejected['reason="unknown_engine_id"'] >= 1
    assert rejected['reason="not_in_time_window"'] >= 1
    assert rejected['reason="bad_community"'] >= 20
    received = sum(metric_values(body, "netalert_traps_received_total").values())
    assert sum(rejected.values()) + received + drops <= sent
    # memory bounded: the agent and the workers grew by little
    for pid, rss in base.items():
        assert _memory(pid) - rss < 200 << 20, (pid, rss, _memory(pid))
    # and a real trap still becomes a mail
    for n, source in enumerate(("127.0.0.1", "127.0.0.2")):
        data = link_down(100 + n)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((source, 0))
            sock.sendto(data, ("127.0.0.1", port))
    deadline = time.monotonic() + 30  # (the seeds' own valid traps were mailed as well)
    while delivered(smtp_server.received())[1].keys() < {100, 101}:
        assert time.monotonic() < deadline, agent.log()[-4000:]
        time.sleep(0.1)
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-4000:]


def _sockets(pid: int) -> set[int]:
    """The socket inodes process ``pid`` holds."""
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            target = os.readlink(fd)
            if target.startswith("socket:["):
                out.add(int(target[8:-1]))
    return out


def _unix_paths() -> dict[int, str]:
    """Every Unix socket's inode and path ("" unnamed; "@..." abstract)."""
    out = {}
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        out[int(fields[6])] = fields[7] if len(fields) > 7 else ""
    return out


def _udp_inodes() -> set[int]:
    inodes = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            inodes.add(int(line.split()[9]))
    return inodes


def test_no_other_process_can_reach_the_hand_over_channels(agent: AgentProcess) -> None:
    agent.start()
    assert agent.proc is not None
    one, two = _workers(agent)
    held = {pid: _sockets(pid) for pid in (agent.proc.pid, one, two)}
    unix, udp = _unix_paths(), _udp_inodes()
    for pid, inodes in held.items():
        named = {unix[i] for i in inodes if unix.get(i)}
        assert not named, f"{pid} holds named or abstract Unix sockets {named}"
    for worker, other in ((one, two), (two, one)):
        mine = held[worker]
        # a worker holds its own channel end and its own trap socket, nothing of the others
        assert not (mine & unix.keys()) & (held[other] | held[agent.proc.pid])
        assert not (mine & udp) & held[other]
        assert len(mine & udp) == 1 and (mine & udp) <= held[agent.proc.pid]
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-4000:]


def test_a_worker_killed_again_and_again_is_restarted_with_a_bounded_back_off(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    agent.start()
    victim, survivor = _workers(agent)
    seen = {victim, survivor}
    kills: list[float] = []
    starts: list[float] = []
    for _ in range(5):
        os.kill(victim, signal.SIGKILL)
        kills.append(time.monotonic())
        deadline = time.monotonic() + 30
        while not (new := set(_workers(agent)) - seen):
            assert time.monotonic() < deadline, agent.log()[-4000:]
            time.sleep(0.02)
        starts.append(time.monotonic())
        (victim,) = new
        seen.add(victim)
        assert agent.get("/healthz")[0] == 200
    waits = [start - kill for kill, start in zip(kills, starts, strict=True)]
    # 0.2 s, then doubling while it keeps dying within a minute (10 s at most)
    for n, wait in enumerate(waits):
        assert wait >= 0.2 * 2**n * 0.9, waits
    assert survivor in _workers(agent)
    body = agent.get("/metrics")[1]
    assert metric_values(body, "netalert_trap_worker_restarts_total") == {"": 5.0}
    assert agent.log().count(" event=trap_worker_exited ") == 5
    deadline = time.monotonic() + 30
    while metric_values(agent.get("/metrics")[1], "netalert_trap_workers") != {"": 2.0}:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for n, source in enumerate(("127.0.0.1", "127.0.0.2")):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((source, 0))
            sock.sendto(link_down(200 + n), ("127.0.0.1", agent.traps_port))
    assert_exactly_once(smtp_server, {200, 201})
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-4000:]
