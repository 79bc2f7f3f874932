"""Fault test: folding a storm of big traps keeps memory and the log bounded.

A real `netalert run` with storm limits set low receives 3,000 v2c traps of
~60 KB each from one source, every one with its own trap OID, so nearly all
of them are folded, each under a (source, trap OID) key of its own. The fold
table must keep counters and a small sample per key, not the datagram: the
agent's resident memory (VmRSS in /proc) may grow by a few MB, not by the
~170 MB the datagrams weigh. The ``trap_storm`` warning is rate-limited to one
line per storm interval. A second test sets ``storm_max_keys`` low: folds past
it are shed and counted, and the key gauge never passes the cap.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import PduType
from netalert.snmp.wire.berenc import encode_message
from tests.support.faults import AgentProcess, metric_values
from tests.support.order import LOAD, timing
from tests.support.ports import free_tcp_port, free_udp_port

COUNT = 3_000
VALUE = 10_000  # bytes per OCTET STRING varbind; six of them make a ~60 KB trap
MAX_GROWTH_MB = 40  # before the fix the fold table alone held ~170 MB (it grew 269 MB here)
STORM_INTERVAL = 2.0

_CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
drain_timeout = "1s"

[traps]
listen = ["127.0.0.1:{traps}"]
allow = ["127.0.0.0/8"]
rcvbuf = 33554432
storm_rate = 1.0
storm_burst = 5
storm_trap_rate = 1.0
storm_trap_burst = 1
storm_interval = "{interval}"
{extra}
"""


def big_trap(number: int, size: int = VALUE) -> bytes:
    """A v2c trap with its own enterprise trap OID and six ``size``-byte strings."""
    return encode_message(
        version=1,
        community=b"public",
        pdu_type=PduType.TRAP_V2,
        request_id=number,
        varbinds=[
            ("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 4200),
            ("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, f"1.3.6.1.4.1.99999.0.{number}"),
            *(
                (f"1.3.6.1.4.1.99999.1.{j}.0", SnmpType.OCTET_STRING, bytes([65 + j]) * size)
                for j in range(6)
            ),
        ],
    )


def rss_kb(pid: int) -> int:
    """The process's resident set size in kB (``VmRSS`` of /proc/PID/status)."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    assert match is not None, text
    return int(match.group(1))


def received(agent: AgentProcess) -> float:
    body = agent.get("/metrics")[1]
    return metric_values(body, "netalert_traps_received_total").get('version="2c"', 0.0)


def wait_received(agent: AgentProcess, count: int, *, within: float) -> float:
    """Waits until ``count`` traps were accepted or the count stops moving; returns it."""
    deadline = time.monotonic() + within
    last, still = -1.0, 0
    while True:
        got = received(agent)
        if got >= count:
            return got
        still = still + 1 if got == last else 0
        if still >= 10 or time.monotonic() > deadline:  # 1 s without progress: the rest was lost
            return got
        last = got
        time.sleep(0.1)


def wait_emitted(agent: AgentProcess) -> None:
    """Waits until the fold table is empty: every fold emitted as a storm event (they
    are, every storm interval), polled every 50 ms instead of sleeping the interval."""
    deadline = time.monotonic() + 3 * STORM_INTERVAL + 5.0
    while metric_values(agent.get("/metrics")[1], "netalert_trap_storm_keys")[""] > 0:
        assert time.monotonic() < deadline, agent.log()[-3000:]
        time.sleep(0.05)


def send(port: int, first: int, count: int, seconds: float, size: int = VALUE) -> None:
    """Sends traps ``first`` .. ``first + count - 1``, spread over ``seconds``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        start = time.monotonic()
        for n in range(count):
            sock.sendto(big_trap(first + n, size), ("127.0.0.1", port))
            ahead = start + seconds * (n + 1) / count - time.monotonic()
            if ahead > 0.001:
                time.sleep(ahead)


def storm_lines(agent: AgentProcess) -> list[str]:
    return [line for line in agent.log().splitlines() if "event=trap_storm" in line]


MakeAgent = Callable[..., AgentProcess]


@pytest.fixture
def make_agent(tmp_path: Path, mib_cache: Path) -> Iterator[MakeAgent]:
    made: list[AgentProcess] = []

    def make(extra: str = "", interval: float = STORM_INTERVAL) -> AgentProcess:
        http, traps = free_tcp_port(), free_udp_port()
        text = _CONFIG.format(http=http, traps=traps, interval=f"{interval:g}s", extra=extra)
        agent = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.cleanup()


@LOAD  # an RSS bound while 3,000 big traps arrive
def test_folding_big_traps_keeps_rss_and_log_bounded(make_agent: MakeAgent) -> None:
    agent = make_agent()
    agent.start()
    assert agent.proc is not None
    pid = agent.proc.pid
    # warm up: the first traps and scrapes allocate what any agent keeps (caches, buffers)
    send(agent.traps_port, 1_000_000, 50, 0.2)
    wait_received(agent, 50, within=10)
    wait_emitted(agent)  # the warm-up's folds
    before = rss_kb(pid)
    began = time.monotonic()

    peak = before
    for chunk in range(0, COUNT, 100):
        send(agent.traps_port, chunk, 100, 0.1)
        peak = max(peak, rss_kb(pid))
    got = wait_received(agent, COUNT + 50, within=20)
    peak = max(peak, rss_kb(pid))
    # nearly every trap reached the receiver: the memory figure means something
    assert got >= 0.9 * (COUNT + 50), got
    wait_emitted(agent)  # every fold, as a storm event
    after = rss_kb(pid)
    body = agent.get("/metrics")[1]
    folded = metric_values(body, "netalert_storm_folded_total")[""]
    assert folded > 0.9 * COUNT, folded
    print(f"VmRSS before {before} kB, peak {peak} kB, after {after} kB; folded {folded:.0f}")
    assert (peak - before) / 1024 < MAX_GROWTH_MB, (before, peak, after)
    assert (after - before) / 1024 < MAX_GROWTH_MB, (before, peak, after)
    keys = metric_values(body, "netalert_trap_storm_keys")[""]
    assert keys == 0, keys  # all emitted, nothing left

    # one trap_storm line per storm interval at most (plus the warm-up's), not one per key
    elapsed = time.monotonic() - began
    lines = storm_lines(agent)
    assert len(lines) <= elapsed / STORM_INTERVAL + 3, (len(lines), lines[:5])
    assert any("suppressed=" in line for line in lines), lines[:5]
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]
    assert len(storm_lines(agent)) <= elapsed / STORM_INTERVAL + 4


@timing("disk")  # 500 small traps, each must be received
def test_storm_keys_past_the_cap_are_shed_and_counted(make_agent: MakeAgent) -> None:
    # a long interval: nothing is emitted (and no key freed) while the test looks
    agent = make_agent("storm_max_keys = 100", interval=30.0)
    agent.start()
    send(agent.traps_port, 0, 500, 0.5, size=10)
    got = wait_received(agent, 500, within=10)
    assert got >= 450, got
    body = agent.get("/metrics")[1]
    keys = metric_values(body, "netalert_trap_storm_keys")[""]
    shed = metric_values(body, "netalert_trap_storm_shed_total")[""]
    folded = metric_values(body, "netalert_storm_folded_total")[""]
    assert 0 < keys <= 100, keys
    # every trap past the 5-trap burst was folded; those finding the table full were shed
    assert shed >= folded - 100 > 0, (shed, folded)
    assert metric_values(body, "netalert_traps_dropped_total")[""] >= shed
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]
