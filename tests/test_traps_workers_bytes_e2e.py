"""A trap worker whose agent stands still holds at most ``[traps] worker_queue_bytes`` for it.

The agent is stopped (SIGSTOP: a blocked loop, a debugger, a swapped-out process) while a
device sends large traps (8 KB each, of a trap OID of their own): its worker goes on receiving
and has to keep what the agent does not read. Bounded by count alone (`worker_queue`,
10,000 events) that is up to 80 MB per worker; bounded in bytes its memory stays flat,
and what it dropped is counted once the agent reads again.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fault_checks import mail_config
from tests.support.faults import AgentProcess, delivered, link_down, metric_values
from tests.support.order import LOAD
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.procs import trap_workers
from tests.support.smtp import SmtpServer
from tests.test_faults_storm_memory import big_trap

pytestmark = [pytest.mark.e2e, LOAD]  # worker memory measured while traps pour in

TRAPS = 4000
VALUE = 8000  # bytes of each trap's values (six strings), no rule matching it
BOUND = 1 << 20  # [traps] worker_queue_bytes of the test
GROWTH_MAX = 24 << 20  # the bound, two batches, 4,000 storm buckets and noise (80 MB before)


@pytest.fixture
def agent(tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path) -> Iterator[AgentProcess]:
    traps, http = free_udp_port(), free_tcp_port()
    text = mail_config(traps=traps, smtp=smtp_server.port, http=http, workers=2)
    text = text.replace("[traps]\n", f"[traps]\nworker_queue_bytes = {BOUND}\n", 1)
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    if proc.proc is not None:
        os.kill(proc.proc.pid, signal.SIGCONT)
    proc.cleanup()


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def _cpu(pids: list[int]) -> int:
    """Clock ticks the processes ran (user + system)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def _settle(pids: list[int], *, within: float) -> None:
    """Waits until the processes are idle (a tick of CPU at most in 0.5 s: a worker wakes
    ten times a second to look at its counters)."""
    deadline = time.monotonic() + within
    before = _cpu(pids)
    while True:
        time.sleep(0.5)
        now = _cpu(pids)
        if now - before <= 1:
            return
        assert time.monotonic() < deadline, "the workers never went idle"
        before = now


def test_a_worker_holds_at_most_its_bytes_for_a_stopped_agent(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    agent.start()
    assert agent.proc is not None
    workers = trap_workers(agent.proc.pid)
    assert len(workers) == 2, workers
    base = {pid: _status(pid, "VmRSS") for pid in workers}
    os.kill(agent.proc.pid, signal.SIGSTOP)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for number in range(TRAPS):
                sock.sendto(big_trap(number, VALUE // 6), ("127.0.0.1", agent.traps_port))
                if number % 100 == 99:
                    time.sleep(0.005)  # the worker keeps up: the kernel drops none
        _settle(workers, within=60)
        grown = {pid: _status(pid, "VmHWM") - rss for pid, rss in base.items()}
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)
    assert max(grown.values()) < GROWTH_MAX, f"bytes grown by worker: {grown}"
    # the agent reads again: what the worker dropped is counted, and a trap still mails
    deadline = time.monotonic() + 30
    while True:
        body = agent.get("/metrics")[1]
        full = metric_values(body, "netalert_trap_worker_queue_full_total")
        if full.get('bound="bytes"', 0) > 0:
            break
        assert time.monotonic() < deadline, full
        time.sleep(0.1)
    received = metric_values(body, "netalert_traps_received_total").get('version="2c"', 0)
    dropped = metric_values(body, "netalert_traps_dropped_total")[""]
    assert dropped >= full['bound="bytes"'] > TRAPS / 2, (dropped, full)
    assert full.get('bound="events"', 0) == 0
    assert received > 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(link_down(7), ("127.0.0.1", agent.traps_port))
    while delivered(smtp_server.received())[1].keys() < {7}:
        assert time.monotonic() < deadline + 30, agent.log()[-4000:]
        time.sleep(0.1)
