"""Replay protection for SNMPv3 traps (the RFC 3414 time window) on both paths.

Units of the pure rule, then authentic messages built with chosen boots and
time (tests.test_usmfast) through the fast path and through pysnmp, then real
net-snmp ``snmptrap -v 3`` senders: plain repeated runs, ``-Z boots,time``
runs, and a captured datagram replayed over UDP. Where time must pass, the
receiver's table of sender clocks reads a settable clock instead of
time.monotonic.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from netalert.metrics import Metrics, MetricSample
from netalert.mib import MibTree
from netalert.snmp.types import TrapEvent
from netalert.snmp.wire.berv3 import V3Header, decode_v3_header
from netalert.snmp.wire.timeliness import BOOTS_LATCHED, EngineClock, EngineClocks, Verdict, judge
from netalert.snmp.wire.usm import FastTrap
from netalert.traps.receiver import TrapReceiver
from netalert.traps.stats import RejectReason
from netalert.traps.v3 import V3Engine, V3Notification
from netalert.web.sources import traps_source
from tests.support.ports import free_udp_port
from tests.test_traps import ENGINE, _config
from tests.test_usmfast import ENGINE as USM_ENGINE
from tests.test_usmfast import OWN, SOURCE, TRAP_VARBINDS, USERS, _users, build, scoped_pdu

LATE = RejectReason.NOT_IN_TIME_WINDOW


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- the rule -------------------------------------------------------------------------

KNOWN = EngineClock(boots=5, time=1000, learned=100.0, digest=b"D")


@pytest.mark.parametrize(
    ("known", "boots", "time", "digest", "now", "verdict"),
    [
        (None, 0, 0, b"D", 0.0, Verdict.NEWER),  # first sight is believed
        (KNOWN, 6, 1, b"X", 100.0, Verdict.NEWER),  # engine restart: higher boots, low time
        (KNOWN, 5, 1001, b"X", 100.0, Verdict.NEWER),
        (KNOWN, 5, 1001, b"X", 9999.0, Verdict.NEWER),  # a slow sender clock is fine
        (KNOWN, 5, 1000, b"D", 250.0, Verdict.IN_WINDOW),  # a replay within 150 s passes
        (KNOWN, 5, 1000, b"D", 250.5, Verdict.STALE),  # the same replay later does not
        (KNOWN, 5, 900, b"X", 150.0, Verdict.IN_WINDOW),  # 150 s behind the estimate
        (KNOWN, 5, 849, b"X", 100.0, Verdict.STALE),  # 151 s behind
        (KNOWN, 5, 999, b"X", 300.0, Verdict.STALE),
        (KNOWN, 5, 1000, b"X", 1e6, Verdict.CURRENT),  # another trap, time unchanged
        (KNOWN, 4, 10**6, b"X", 100.0, Verdict.STALE),  # lower boots, however late
        (KNOWN, BOOTS_LATCHED, 0, b"X", 100.0, Verdict.LATCHED),
        (None, BOOTS_LATCHED, 0, b"X", 100.0, Verdict.LATCHED),
    ],
)
def test_judge(
    known: EngineClock | None, boots: int, time: int, digest: bytes, now: float, verdict: Verdict
) -> None:
    assert judge(known, boots, time, digest, now) is verdict


def test_table_learns_only_newer_and_forgets_the_idlest() -> None:
    clock = Clock()
    table = EngineClocks(clock=clock, max_engines=3)
    assert table.admit(b"a", 1, 100, b"1")
    clock.now = 10.0
    assert table.admit(b"a", 1, 50, b"2")  # in the window: accepted, not learned
    assert table.get(b"a") == EngineClock(1, 100, 0.0, b"1")
    assert not table.admit(b"a", BOOTS_LATCHED, 0, b"3")
    assert table.get(b"a") == EngineClock(1, 100, 0.0, b"1")  # latched is never learned
    assert table.admit(b"b", 1, 1, b"4") and table.admit(b"c", 1, 1, b"5")
    assert table.admit(b"a", 2, 0, b"6")  # a restart; "a" is now the latest updated
    assert table.admit(b"d", 1, 1, b"7")  # full: "b", the least recently updated, goes
    assert (len(table), table.get(b"b"), table.refused) == (3, None, 1)
    assert table.get(b"a") == EngineClock(2, 0, 10.0, b"6")
    clock.now = 210.0
    assert not table.admit(b"a", 1, 10**6, b"8")
    assert table.describe(b"a", 1, 10**6) == (
        "engine_id=61 boots=1 time=1000000 known_boots=2 estimated_time=200"
    )
    assert table.refused == 2


# --- both paths, with built messages ----------------------------------------------------


def _header(data: bytes) -> V3Header:
    header = decode_v3_header(data)
    assert isinstance(header, V3Header)
    return header


class Probe:
    """A V3Engine on a settable clock that counts what reached pysnmp."""

    def __init__(self, fast: bool) -> None:
        self.clock = Clock()
        self.notes: list[V3Notification] = []
        self.engine = V3Engine(
            _users(), OWN, on_notification=self.notes.append, send=self._send, fast=fast
        )
        self.engine.clocks.clock = self.clock
        self.to_pysnmp = 0
        dispatcher = self.engine._engine.message_dispatcher
        receive = dispatcher.receive_message

        def counting(*args: Any) -> Any:
            self.to_pysnmp += 1
            return receive(*args)

        dispatcher.receive_message = counting

    def _send(self, data: bytes, addr: tuple[Any, ...]) -> None:
        raise AssertionError("a trap needs no reply")

    def feed(self, data: bytes, at: float) -> RejectReason | None:
        self.clock.now = at
        before = len(self.notes)
        reason = self.engine.handle(data, SOURCE, _header(data))
        assert len(self.notes) - before == (reason is None)
        return reason


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "pysnmp"])
@pytest.mark.parametrize("user", list(USERS))
def test_replays_are_refused_on_both_paths(fast: bool, user: str) -> None:
    probe = Probe(fast)
    first = build(user, scoped_pdu(TRAP_VARBINDS), boots=3, time=1000)
    later = build(user, scoped_pdu(TRAP_VARBINDS), boots=3, time=1200)
    same_time = build(user, scoped_pdu(TRAP_VARBINDS, context=b"other"), boots=3, time=1200)
    reboot = build(user, scoped_pdu(TRAP_VARBINDS), boots=4, time=5)
    old_boots = build(user, scoped_pdu(TRAP_VARBINDS), boots=3, time=99_999)
    steps = [
        (first, 0.0, None),
        (first, 150.0, None),  # USM cannot tell a replay within the window
        (first, 151.0, LATE),  # the captured trap sent again later
        (later, 200.0, None),  # newer: passes and becomes the reference
        (first, 200.0, LATE),  # 200 s behind it
        (same_time, 1000.0, None),  # another trap with an unchanged time (as snmptrapd)
        (later, 1000.0, LATE),  # but the message that set the reference is a replay
        (reboot, 1000.0, None),  # engine restart: higher boots, low time
        (old_boots, 1000.0, LATE),
        (reboot, 1100.0, None),
    ]
    for number, (data, at, expected) in enumerate(steps):
        assert probe.feed(data, at) is expected, f"step {number}"
    assert probe.engine.clocks.refused == 4
    if fast:
        assert all(note.fast for note in probe.notes)
        assert probe.to_pysnmp == 0  # refused by the fast path, never handed to pysnmp
    else:
        assert probe.to_pysnmp == len(steps)


def test_the_fast_path_refuses_a_replay_itself() -> None:
    probe = Probe(fast=True)
    data = build("shaaes", scoped_pdu(TRAP_VARBINDS), boots=9, time=500)
    usm = probe.engine._usm
    assert isinstance(usm.receive(data, _header(data)), FastTrap)
    probe.clock.now = 1000.0
    assert usm.receive(data, _header(data)) is LATE
    latched = build("shaaes", scoped_pdu(TRAP_VARBINDS), boots=BOOTS_LATCHED, time=1)
    assert probe.feed(latched, 1000.0) is LATE  # left to pysnmp, which refuses it too
    assert probe.to_pysnmp == 1
    reference = EngineClock(9, 500, 0.0, _header(data).auth_params)
    assert probe.engine.clocks.get(USM_ENGINE) == reference  # latched is never learned


# --- real senders ---------------------------------------------------------------------------


def _snmptrap(workdir: Path, target: str, *extra: str, level: str = "authPriv") -> None:
    argv = ["snmptrap", "-v", "3", "-u", "shaaes", "-l", level, "-a", "SHA", "-A", "auth-shaaes"]
    if level == "authPriv":
        argv += ["-x", "AES", "-X", "priv-shaaes"]
    argv += ["-e", f"0x{ENGINE}", *extra, target, "", "1.3.6.1.6.3.1.1.5.3"]
    env = dict(os.environ, SNMP_PERSISTENT_DIR=str(workdir))
    subprocess.run(argv, check=True, timeout=20, env=env, capture_output=True)


def _capture(workdir: Path, *extra: str, level: str = "authPriv") -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        _snmptrap(workdir, f"127.0.0.1:{sock.getsockname()[1]}", *extra, level=level)
        return sock.recv(65535)


class Live:
    def __init__(self, receiver: TrapReceiver, queue: asyncio.Queue[TrapEvent], port: int) -> None:
        self.receiver = receiver
        self.queue = queue
        self.target = f"127.0.0.1:{port}"
        self.clock = Clock()
        self._seen = 0
        self._rejected: dict[str, int] = {}
        v3 = receiver._v3
        assert v3 is not None
        v3.clocks.clock = self.clock

    async def outcome(self) -> tuple[int, dict[str, int]]:
        """Events and rejections since the last call, once the datagram was handled."""
        stats = self.receiver.stats
        for _ in range(250):
            if stats.datagrams > self._seen:
                break
            await asyncio.sleep(0.02)
        self._seen = stats.datagrams
        events = 0
        while not self.queue.empty():
            self.queue.get_nowait()
            events += 1
        rejected = {k: v - self._rejected.get(k, 0) for k, v in stats.rejected.items()}
        self._rejected = dict(stats.rejected)
        return events, {k: v for k, v in rejected.items() if v}


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    port = free_udp_port()
    queue: asyncio.Queue[TrapEvent] = asyncio.Queue()
    receiver = TrapReceiver(_config(port), sink=queue, tree=MibTree.builtin())
    await receiver.start()
    yield Live(receiver, queue, port)
    await receiver.stop()


@pytest.mark.daemon
async def test_repeated_snmptrap_runs_pass(live: Live, tmp_path: Path) -> None:
    """Plain snmptrap sends boots 1 and the host uptime in 1/100 s: always newer."""
    for _ in range(3):
        await asyncio.to_thread(_snmptrap, tmp_path, live.target)
        assert await live.outcome() == (1, {})
    live.clock.now = 3600.0  # an hour without traps changes nothing for a running sender
    await asyncio.to_thread(_snmptrap, tmp_path, live.target)
    assert await live.outcome() == (1, {})
    assert live.receiver.stats.v3_fast == 4


@pytest.mark.daemon
async def test_captured_trap_replayed_over_udp_is_refused(
    live: Live, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    captured = await asyncio.to_thread(_capture, tmp_path, "-Z", "7,1000")
    host, port = live.target.split(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(captured, (host, int(port)))
        assert await live.outcome() == (1, {})
        live.clock.now = 1000.0
        with caplog.at_level(logging.WARNING, "netalert.traps"):
            sock.sendto(captured, (host, int(port)))
            assert await live.outcome() == (0, {"not_in_time_window": 1})
        # A sender that repeats its boots and time (-Z) keeps alerting, as with snmptrapd.
        await asyncio.to_thread(_snmptrap, tmp_path, live.target, "-Z", "7,1000")
        assert await live.outcome() == (1, {})
        await asyncio.to_thread(_snmptrap, tmp_path, live.target, "-Z", "7,700")
        assert await live.outcome() == (0, {"not_in_time_window": 1})
        await asyncio.to_thread(_snmptrap, tmp_path, live.target, "-Z", "8,3")  # a restart
        assert await live.outcome() == (1, {})
        sock.sendto(captured, (host, int(port)))
        assert await live.outcome() == (0, {"not_in_time_window": 1})
    (line,) = [r.getMessage() for r in caplog.records if "not_in_time_window" in r.getMessage()]
    assert line == (
        'event=trap_rejected source=127.0.0.1 reason=not_in_time_window detail="shaaes '
        f'engine_id={ENGINE} boots=7 time=1000 known_boots=7 estimated_time=2000"'
    )  # one line: the later ones from this source fall in the log rate limit
    samples = {
        s.labels.get("reason"): s.value
        for s in traps_source(live.receiver.stats)()
        if isinstance(s, MetricSample) and s.name == "netalert_traps_rejected_total"
    }
    assert samples["not_in_time_window"] == 3
    preset, _ = Metrics().render()
    assert b'netalert_traps_rejected_total{reason="not_in_time_window"} 0.0' in preset


@pytest.mark.daemon
async def test_traps_pysnmp_takes_are_checked_too(live: Live, tmp_path: Path) -> None:
    """What pysnmp takes (here: everything, the fast path off) meets the same window table."""
    newer = await asyncio.to_thread(_capture, tmp_path, "-Z", "5,1000")
    older = await asyncio.to_thread(_capture, tmp_path, "-Z", "5,700")
    v3 = live.receiver._v3
    assert v3 is not None
    stats = live.receiver.stats
    v3._usm.enabled = False
    live.receiver.handle(newer, SOURCE)
    assert await live.outcome() == (1, {})
    live.receiver.handle(older, SOURCE)
    assert await live.outcome() == (0, {"not_in_time_window": 1})
    assert stats.v3_fast == 0  # both went through pysnmp
    v3._usm.enabled = True
    live.receiver.handle(older, SOURCE)  # the fast path shares the table
    assert await live.outcome() == (0, {"not_in_time_window": 1})
    v3._usm.enabled = False
    live.clock.now = 1000.0
    live.receiver.handle(newer, SOURCE)  # the reference itself, replayed late, via pysnmp
    assert await live.outcome() == (0, {"not_in_time_window": 1})
