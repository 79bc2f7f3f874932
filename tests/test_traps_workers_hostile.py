"""A worker the agent cannot trust: garbage on the hand-over channel, and a slow agent.

The agent's side (:class:`TrapWorkers`) runs in this process. A "hostile
worker" is a small process started in the place of the first real one: it
reads its spec, says READY and then writes what a buggy or compromised worker
could write on its channel. The agent must refuse the frame, count and log it,
and start a real worker in its place, whose traps then arrive; nothing of the
hostile frame reaches the sink or the counters.
"""

from __future__ import annotations

import logging
import marshal
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from netalert.mib import MibTree
from netalert.snmp.types import SnmpType, TrapEvent, VarBind
from netalert.traps import workers as workers_module
from netalert.traps import workwire
from netalert.traps.stats import RejectReason
from netalert.web.sources import traps_source
from tests.support.order import timing
from tests.support.ports import free_udp_port
from tests.support.trees import builtin_tree
from tests.test_traps_workers import _TRAP_ARGS, Workers, _capture, _config, _start

pytestmark = pytest.mark.daemon


@pytest.fixture(scope="module")
def tree() -> MibTree:
    return builtin_tree()  # shared, read-only


# a hostile worker: says READY, writes the frame in the file given, waits
_HOSTILE = """
import os, sys, time
with open(sys.argv[2], "rb") as file:
    data = file.read()
with os.fdopen(int(sys.argv[1]), "wb") as channel:
    channel.write(data)
    channel.flush()
    time.sleep(30)
"""

_GOOD = TrapEvent(
    source="127.0.0.1",
    source_port=4000,
    version="2c",
    trap_oid="1.3.6.1.6.3.1.1.5.3",
    trap_name="IF-MIB::linkDown",
    varbinds=(VarBind("1.3.6.1.2.1.2.2.1.1.2", SnmpType.INTEGER, 2, "IF-MIB::ifIndex", "2"),),
    uptime=100,
    received=1.0e9,
    community="public",
)


def _framed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _raw(payload: Any) -> bytes:
    return _framed(marshal.dumps(payload))


def _event(**changes: Any) -> tuple[Any, ...]:
    return workwire.encode_event(replace(_GOOD, **changes), None)


def _with(position: int, value: Any) -> tuple[Any, ...]:
    item = list(_event())
    item[position] = value
    return tuple(item)


_STATS = workwire.stats_snapshot(workers_module.TrapStats())

HOSTILE: dict[str, bytes] = {
    "event_of_three_fields": workwire.frame(workwire.EVENTS, [(1, 2, 3)]),
    "event_source_not_text": workwire.frame(workwire.EVENTS, [_with(0, 12345)]),
    "event_port_out_of_range": workwire.frame(workwire.EVENTS, [_with(1, 70000)]),
    "event_unknown_version": workwire.frame(workwire.EVENTS, [_with(2, "4")]),
    "varbind_unknown_type": workwire.frame(
        workwire.EVENTS, [_with(5, (("1.3.6.1", "zz", 1, "", "", ""),))]
    ),
    "varbind_value_a_list": workwire.frame(
        workwire.EVENTS, [_with(5, (("1.3.6.1", "INTEGER", [1, 2], "", "", ""),))]
    ),
    "claim_of_garbage": workwire.frame(workwire.EVENTS, [_with(14, ("x", "y"))]),
    "code_object": workwire.frame(workwire.EVENTS, [compile("1", "x", "eval")]),
    "batch_past_the_bound": workwire.frame(
        workwire.EVENTS, [_event(source_port=n) for n in range(workwire.MAX_EVENTS + 1)]
    ),
    "events_not_a_list": workwire.frame(workwire.EVENTS, 7),
    "stats_not_a_dict": workwire.frame(workwire.STATS, "x"),
    "stats_label_injection": workwire.frame(
        workwire.STATS, {**_STATS, "rejected": {'x"} 1\nnetalert_fake 9\n#': 1}}
    ),
    "stats_negative": workwire.frame(workwire.STATS, {**_STATS, "datagrams": -5}),
    "stats_unknown_counter": workwire.frame(workwire.STATS, {**_STATS, "workers": 99}),
    "recorded_garbage": workwire.frame(workwire.RECORDED, [("not bytes", 1, 2, 3)]),
    "unknown_kind": workwire.frame("Z", None),
    "not_a_pair": _raw(42),
    "truncated_marshal": _framed(marshal.dumps(("E", "x" * 40))[:-3]),
    "bad_marshal": b"\x00\x00\x00\x02\xff\xff",
}


def _hostile_start(data: bytes, path: Path) -> Any:
    """A ``_start`` whose first worker is hostile (writes ``data``), later ones real."""
    real = workers_module._start
    calls = [0]
    path.write_bytes(workwire.frame(workwire.READY, 0) + data)

    def start(tree: Any, spec: Any, fds: Sequence[int]) -> Any:
        calls[0] += 1
        if calls[0] > 1:
            return real(tree, spec, fds)
        return subprocess.Popen(  # its channel's end first, then its sockets
            [sys.executable, "-c", _HOSTILE, str(fds[0]), str(path)], pass_fds=fds
        )

    return start


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_a_hostile_frame_is_refused_counted_and_its_worker_replaced(
    name: str,
    tmp_path: Path,
    tree: MibTree,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = _hostile_start(HOSTILE[name], tmp_path / "frames")
    monkeypatch.setattr(workers_module, "_start", start)
    caplog.set_level(logging.INFO, logger="netalert.traps")
    config = _config(tmp_path, free_udp_port(), workers=1)
    pool, got = await _start(config, tree)
    workers = Workers(pool, got)
    try:
        hostile = pool._workers[0].proc
        assert hostile is not None
        # the agent refuses the frame and kills the hostile worker ...
        await workers.until(lambda: pool.stats.worker_restarts == 1, wait=15)
        assert pool.stats.worker_refused == 1
        assert hostile.wait(5) == -signal.SIGKILL
        refused = [r for r in caplog.records if "event=trap_worker_refused" in r.getMessage()]
        assert len(refused) == 1 and "worker=0" in refused[0].getMessage()
        # ... and a real one takes its socket: its traps arrive
        await workers.ready()
        assert (
            await workers.run("snmptrap", "-v", "2c", "-c", "public", workers.target(), *_TRAP_ARGS)
            == 0
        )
        await workers.until(lambda: len(got) == 1)
        assert got[0].source == "127.0.0.1" and got[0].trap_name == "IF-MIB::linkDown"
        # nothing of the hostile frame reached the counters
        stats = pool.stats
        assert set(stats.rejected) <= {r.value for r in RejectReason}
        assert set(stats.received) == {"2c"} and stats.workers == 1
        assert stats.datagrams >= 1 and stats.worker_refused == 1
    finally:
        await pool.stop()


def test_worker_refused_is_exported() -> None:
    """The counter reaches /metrics (the family is listed in docs/metrics.md)."""
    stats = workers_module.TrapStats(worker_refused=3)
    samples = {s.name: s.value for s in traps_source(stats)()}
    assert samples["netalert_trap_worker_refused_total"] == 3


async def test_a_blocked_agent_loses_nothing_uncounted(tmp_path: Path, tree: MibTree) -> None:
    """The agent's loop blocked (a slow agent): the worker holds at most worker_queue events
    and drops the rest, counted; every trap sent is then delivered or counted as lost."""
    queue = 300
    storms = {"storm_burst": 10**7, "storm_trap_burst": 10**7}
    config = _config(tmp_path, free_udp_port(), workers=1, worker_queue=queue, **storms)
    pool, got = await _start(config, tree)
    workers = Workers(pool, got)
    try:
        await workers.ready()
        datagram = await _capture("snmptrap", "-v", "2c", "-c", "public")
        sent = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.bind(("127.0.0.1", 0))
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:  # the loop does not run: the channel waits
                for _ in range(100):
                    sender.sendto(datagram, ("127.0.0.1", workers.port))
                sent += 100
                time.sleep(0.005)  # noqa: ASYNC251 - blocks the agent's loop on purpose

        def settled() -> bool:
            stats = pool.stats
            return (
                stats.datagrams + pool.kernel_drops() == sent
                and len(got) == stats.received["2c"] - stats.dropped
            )

        await workers.until(settled, wait=30)
        assert pool.stats.dropped > 0  # the worker's queue was full ...
        assert len(got) + pool.stats.dropped + pool.kernel_drops() == sent  # ... all counted
        assert pool.stats.worker_restarts == 0
    finally:
        await pool.stop()


async def test_a_worker_that_cannot_be_started_is_tried_again(
    tmp_path: Path, tree: MibTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its restart fails (fork refused: EAGAIN, out of memory): the agent tries again with the
    same back-off instead of leaving the socket without a worker for good."""
    real = workers_module._start
    calls = [0]

    def start(tree: Any, spec: Any, fds: Sequence[int]) -> Any:
        calls[0] += 1
        if calls[0] in (2, 3):  # the first two restarts
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real(tree, spec, fds)

    monkeypatch.setattr(workers_module, "_start", start)
    config = _config(tmp_path, free_udp_port(), workers=1)
    pool, got = await _start(config, tree)
    workers = Workers(pool, got)
    try:
        await workers.ready()
        proc = pool._workers[0].proc
        assert proc is not None
        proc.kill()
        await workers.until(lambda: calls[0] == 4 and pool.stats.workers == 1, wait=15)
        await workers.ready()
        assert (
            await workers.run("snmptrap", "-v", "2c", "-c", "public", workers.target(), *_TRAP_ARGS)
            == 0
        )
        await workers.until(lambda: len(got) == 1)
        assert pool.stats.worker_restarts == 1
    finally:
        await pool.stop()


@timing("disk")  # wall-time bound: the last restart's wait (a short test, in a lane with room)
async def test_a_crash_looping_worker_waits_at_most_worker_restart_max(
    tmp_path: Path, tree: MibTree
) -> None:
    """Killed again and again within a minute of its start, a worker is started again after
    0.2 s, doubling: up to ``[traps] worker_restart_max``, shown in /metrics."""
    cap = 0.3
    config = _config(tmp_path, free_udp_port(), workers=1, worker_restart_max=f"{cap}s")
    pool, got = await _start(config, tree)
    workers = Workers(pool, got)
    kills = 6  # uncapped, the sixth restart would wait 6.4 s
    try:
        await workers.ready()
        for _ in range(kills):
            proc = pool._workers[0].proc
            assert proc is not None
            killed = time.monotonic()
            proc.kill()
            await workers.until(
                lambda old=proc: pool._workers[0].proc is not old and pool.stats.workers > 0
            )
            waited = time.monotonic() - killed
        assert waited < 4.0, f"the last restart waited {waited:.1f} s"
        assert pool.stats.worker_restarts == kills
        samples = {s.name: s.value for s in traps_source(pool.stats)() if not s.labels}
        assert samples["netalert_trap_worker_restart_delay_seconds"] == cap
        await workers.ready()
    finally:
        await pool.stop()
