"""Trap workers ([traps] workers = 2) against real senders: net-snmp snmptrap / snmpinform.

The workers are real processes on a SO_REUSEPORT group; the agent's side
(:class:`TrapWorkers`) runs in this process with a list as its sink. Loopback
source addresses choose the worker: the kernel steers by source address, so
127.0.0.1 and 127.0.0.2 land on different workers of two.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from netalert.config.models import Config
from netalert.mib import MibTree
from netalert.rules.engine import RuleEngine
from netalert.snmp.types import TrapEvent
from netalert.snmp.wire.engines import EngineIdRegistry
from netalert.traps.listen import BindError, open_udp_socket
from netalert.traps.pcap import read_datagrams
from netalert.traps.workers import TrapWorkers
from netalert.traps.zygote import Forked, zygote_for
from tests.support.ports import free_udp_port
from tests.support.procs import alive
from tests.support.trees import builtin_tree

pytestmark = pytest.mark.daemon

ENGINE = "8000000001020304"
LINK = ["1.3.6.1.2.1.2.2.1.1.2", "i", "2", "1.3.6.1.2.1.2.2.1.8.2", "i", "2"]
USER = ["-v", "3", "-u", "shaaes", "-l", "authPriv", "-a", "SHA", "-A", "auth-shaaes"]
USER += ["-x", "AES", "-X", "priv-shaaes"]
SOURCES = ("127.0.0.1", "127.0.0.2")  # one per worker


@pytest.fixture(scope="module")
def tree() -> MibTree:
    return builtin_tree()  # shared, read-only


def _config(tmp_path: Path, port: int, **traps: Any) -> Config:
    data: dict[str, Any] = {
        "listen": [f"127.0.0.1:{port}"],
        "communities": ["public"],
        "workers": 2,
        "users": [
            {
                "user": "shaaes",
                "auth_protocol": "SHA",
                "auth_password": "auth-shaaes",
                "priv_protocol": "AES-128",
                "priv_password": "priv-shaaes",
                "engine_ids": [ENGINE],
            }
        ],
        "engine_id": "80001f8804746573742d7472617073",
    }
    data.update(traps)
    return Config.model_validate({"agent": {"state_dir": str(tmp_path)}, "traps": data})


class Workers:
    def __init__(self, pool: TrapWorkers, got: list[TrapEvent]) -> None:
        self.pool = pool
        self.got = got
        self.port = pool.addresses[0][1]

    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def run(self, *argv: str, source: str = "127.0.0.1") -> int:
        proc = await asyncio.create_subprocess_exec(
            argv[0], f"--clientaddr={source}", *argv[1:],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 20)
        if proc.returncode:
            print(err.decode(), file=sys.stderr)
        assert proc.returncode is not None
        return proc.returncode

    async def until(self, check: Callable[[], bool], wait: float = 20.0) -> None:
        for _ in range(int(wait / 0.02)):
            if check():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"condition not reached; events: {len(self.got)}")

    async def ready(self) -> None:
        """Waits until both workers report (their first counters arrive after a second)."""
        await self.until(lambda: all(w.snapshot for w in self.pool._workers))


async def _start(config: Config, tree: MibTree) -> tuple[TrapWorkers, list[TrapEvent]]:
    got: list[TrapEvent] = []
    pool = TrapWorkers(config, sink=got.append, tree=tree, count=config.traps.workers)
    await pool.open()
    pool.begin()
    return pool, got


@pytest.fixture
async def workers(tmp_path: Path, tree: MibTree) -> AsyncIterator[Workers]:
    pool, got = await _start(_config(tmp_path, free_udp_port()), tree)
    yield Workers(pool, got)
    await pool.stop()


async def _capture(*argv: str) -> bytes:
    """The datagram net-snmp sends for ``argv`` (a trap sent to a socket of ours)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(10)
        port = sink.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(*argv, f"127.0.0.1:{port}", *_TRAP_ARGS)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        return sink.recv(65535)


_TRAP_ARGS = ("", "1.3.6.1.6.3.1.1.5.3", *LINK)


def _send(data: bytes, source: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.sendto(data, ("127.0.0.1", port))


async def test_every_version_through_two_workers(workers: Workers) -> None:
    """v1, v2c and v3 traps and v2c and v3 informs from both workers' sources reach the sink;
    snmpinform gets its Response from the worker that received the inform."""
    target = workers.target()
    for source in SOURCES:
        assert await workers.run(
            "snmptrap", "-v", "1", "-c", "public", target,
            "1.3.6.1.4.1.8072.3.2.10", "192.0.2.9", "2", "0", "4242", *LINK, source=source,
        ) == 0  # fmt: skip
        assert (
            await workers.run(
                "snmptrap", "-v", "2c", "-c", "public", target, *_TRAP_ARGS, source=source
            )
            == 0
        )
        assert (
            await workers.run(
                "snmptrap", *USER, "-e", f"0x{ENGINE}", target, *_TRAP_ARGS, source=source
            )
            == 0
        )
        assert await workers.run(
            "snmpinform", "-v", "2c", "-c", "public", "-t", "3", "-r", "0", target,
            "", "1.3.6.1.6.3.1.1.5.4", *LINK, source=source,
        ) == 0  # fmt: skip  # exit 1 without a Response
        assert await workers.run(
            "snmpinform", *USER, "-t", "3", "-r", "0", target,
            "", "1.3.6.1.6.3.1.1.5.4", *LINK, source=source,
        ) == 0  # fmt: skip
    await workers.until(lambda: len(workers.got) == 10)
    seen = {(e.source, e.version, e.inform, e.trap_name) for e in workers.got}
    for source in SOURCES:
        assert {(v, i, n) for s, v, i, n in seen if s == source} == {
            ("1", False, "IF-MIB::linkDown"),
            ("2c", False, "IF-MIB::linkDown"),
            ("3", False, "IF-MIB::linkDown"),
            ("2c", True, "IF-MIB::linkUp"),
            ("3", True, "IF-MIB::linkUp"),
        }
    # each worker took one source: their counters add up in the agent's
    await workers.until(
        lambda: (
            sum(workers.pool.stats.received.values()) == 10
            and all(w.snapshot.get("datagrams") for w in workers.pool._workers)
        )
    )
    stats = workers.pool.stats
    assert dict(stats.received) == {"1": 2, "2c": 4, "3": 4}
    assert stats.informs_answered == 2 and stats.workers == 2 and not stats.rejected


async def test_v3_replay_to_another_worker_is_refused(workers: Workers) -> None:
    """The time window is one table for all workers: a trap that another worker's newer
    one made stale is refused, whichever worker it reaches."""
    old = await _capture("snmptrap", *USER, "-e", f"0x{ENGINE}", "-Z", "1,1000")
    new = await _capture("snmptrap", *USER, "-e", f"0x{ENGINE}", "-Z", "2,5")
    _send(old, SOURCES[0], workers.port)
    await workers.until(lambda: len(workers.got) == 1)
    _send(new, SOURCES[0], workers.port)
    await workers.until(lambda: len(workers.got) == 2)
    _send(old, SOURCES[1], workers.port)  # the other worker has never seen this engine
    await workers.ready()
    await workers.until(lambda: workers.pool.stats.datagrams == 3)
    await asyncio.sleep(0.3)
    assert len(workers.got) == 2
    assert workers.pool.stats.rejected["not_in_time_window"] == 1
    assert workers.pool.stats.received["3"] == 2


async def test_storm_fold_is_per_source_across_workers(tmp_path: Path, tree: MibTree) -> None:
    """A source sending from 200 ports folds as one: its bucket lives in one worker."""
    config = _config(
        tmp_path, free_udp_port(), storm_rate=0.001, storm_burst=10, storm_interval="1h"
    )
    pool, got = await _start(config, tree)
    try:
        port = pool.addresses[0][1]
        data = await _capture("snmptrap", "-v", "2c", "-c", "public")
        for source in SOURCES:
            for _ in range(100):  # a new socket each: a new source port each
                _send(data, source, port)
        helper = Workers(pool, got)
        await helper.until(lambda: pool.stats.datagrams == 200)
    finally:
        await pool.stop()  # the open folds become storm events
    passed = [e for e in got if e.storm_count == 1]
    storms = [e for e in got if e.storm_count > 1]
    assert sorted(e.source for e in passed) == sorted([*SOURCES] * 10)
    assert sorted((e.source, e.storm_count) for e in storms) == [(s, 90) for s in SOURCES]


async def test_killed_worker_is_restarted(workers: Workers) -> None:
    """kill -9 of a worker: it is started again on the same socket and later traps arrive."""
    await workers.ready()
    victim = workers.pool._workers[0]
    assert victim.proc is not None
    os.kill(victim.proc.pid, signal.SIGKILL)
    await workers.until(lambda: workers.pool.stats.worker_restarts == 1)
    for source in SOURCES:  # one of them is the restarted worker's
        assert (
            await workers.run(
                "snmptrap", "-v", "2c", "-c", "public", workers.target(), *_TRAP_ARGS, source=source
            )
            == 0
        )
    await workers.until(lambda: len(workers.got) == 2)
    assert sorted(e.source for e in workers.got) == sorted(SOURCES)
    await workers.until(lambda: workers.pool.stats.workers == 2)


async def test_a_second_agent_cannot_share_the_port(workers: Workers, tmp_path: Path) -> None:
    """The port is checked free before the group binds: a second agent (workers or not) and
    a plain socket are refused instead of splitting the traps."""
    with pytest.raises(BindError, match="in use"):
        open_udp_socket("127.0.0.1", workers.port, 65536)
    second = TrapWorkers(
        _config(tmp_path, workers.port), sink=lambda _: None, tree=builtin_tree(), count=2
    )
    with pytest.raises(BindError, match="in use"):
        await second.open()


async def test_engine_ids_learned_by_the_poller_reach_every_worker(
    tmp_path: Path, tree: MibTree
) -> None:
    """An engine ID known at start and one learned while running: traps signed by either
    are accepted by both workers and credited to the polled device."""
    registry = EngineIdRegistry()
    registry.add("early-sw", "192.0.2.1", 161, bytes.fromhex("8000000001aaaa01"))
    config = _config(tmp_path, free_udp_port())
    got: list[TrapEvent] = []
    pool = TrapWorkers(config, sink=got.append, tree=tree, engines=registry, count=2)
    await pool.open()
    pool.begin()
    helper = Workers(pool, got)
    try:
        await helper.ready()
        registry.add("late-sw", "192.0.2.2", 161, bytes.fromhex("8000000001aaaa02"))
        await asyncio.sleep(0.5)  # the workers hear of it
        for source in SOURCES:
            for engine in ("8000000001aaaa01", "8000000001aaaa02"):
                assert await helper.run(
                    "snmptrap", *USER, "-e", f"0x{engine}", helper.target(), *_TRAP_ARGS,
                    source=source,
                ) == 0  # fmt: skip
        await helper.until(lambda: len(got) == 4)
    finally:
        await pool.stop()
    assert sorted((e.source, e.device) for e in got) == sorted(
        (source, device) for source in SOURCES for device in ("early-sw", "late-sw")
    )


async def test_the_record_file_gets_every_worker_s_datagrams(tmp_path: Path, tree: MibTree) -> None:
    """[traps] record with workers: the agent writes the one file, datagrams of both."""
    record = tmp_path / "traps.pcap"
    config = _config(tmp_path, free_udp_port(), record=str(record))
    pool, got = await _start(config, tree)
    try:
        data = await _capture("snmptrap", "-v", "2c", "-c", "public")
        for source in SOURCES:
            for _ in range(5):
                _send(data, source, pool.addresses[0][1])
        _send(b"not snmp", SOURCES[1], pool.addresses[0][1])  # refused, recorded all the same
        await Workers(pool, got).until(lambda: len(got) == 10 and pool.stats.datagrams == 11)
    finally:
        await pool.stop()
    recorded = list(read_datagrams(record))
    assert sorted(d.source[0] for d in recorded) == sorted([*SOURCES] * 5 + [SOURCES[1]])
    assert sum(d.data == data for d in recorded) == 10
    assert pool.stats.record.recorded == 11


_RULES = [
    {"name": "Down", "trap": "IF-MIB::linkDown", "key": ["ifIndex"], "where": "ifIndex == 2"},
    {"name": "Any", "trap": "*"},
]


async def test_the_workers_match_the_rule_set_in_force(tmp_path: Path, tree: MibTree) -> None:
    """Each worker matches the trap rules of the set the agent has in force and says which;
    after a new set, traps carry its token, and the agent's observations are those its own
    engine makes of the same traps."""
    config = _config(tmp_path, free_udp_port()).model_copy(
        update={"rules": Config.model_validate({"rules": _RULES}).rules}
    )
    got: list[TrapEvent] = []
    matched: list[tuple[TrapEvent, Any]] = []
    pool = TrapWorkers(
        config, sink=got.append, tree=tree, count=2, matched=lambda t, m: matched.append((t, m))
    )
    await pool.open()
    pool.begin()
    helper = Workers(pool, got)
    engine = RuleEngine(config, tree)
    try:
        await helper.ready()
        pool.set_rules(engine.token, config)
        await asyncio.sleep(0.5)  # the workers compile the set
        for source in SOURCES:
            assert await helper.run(
                "snmptrap", "-v", "2c", "-c", "public", helper.target(), *_TRAP_ARGS, source=source
            ) == 0  # fmt: skip
        await helper.until(lambda: len(matched) == 2)
        assert not got
        assert {m[0] for _, m in matched} == {engine.token}
        for trap, found in matched:
            assert {o.policy.name for o in engine.on_trap(trap, found)} == {"Down", "Any"}
            assert engine.on_trap(trap, found) == engine.on_trap(trap)  # matched here
        # a new rule set: Down no longer matches this trap
        newer = config.model_copy(
            update={"rules": Config.model_validate({"rules": [_RULES[1]]}).rules}
        )
        engine.reload(newer, tree)
        stale = engine.on_trap(matched[0][0], matched[0][1])  # matched with the old set
        assert {o.policy.name for o in stale} == {"Any"}  # ... so matched again, here
        pool.set_rules(engine.token, newer)
        await asyncio.sleep(0.5)
        matched.clear()
        for source in SOURCES:
            assert await helper.run(
                "snmptrap", "-v", "2c", "-c", "public", helper.target(), *_TRAP_ARGS, source=source
            ) == 0  # fmt: skip
        await helper.until(lambda: len(matched) == 2)
        assert {m[0] for _, m in matched} == {engine.token}
        assert all([r for r, *_ in m[1][0]] == ["Any"] for _, m in matched)
    finally:
        await pool.stop()


async def test_a_worker_without_a_pidfd_is_killed_and_waited_for_by_its_pid(
    workers: Workers,
) -> None:
    """Linux before 5.3 has no pidfd: the agent goes by the worker's pid and the zygote's
    report of its exit, and a killed worker is restarted all the same."""
    await workers.ready()
    victim = workers.pool._workers[0]
    assert isinstance(victim.proc, Forked)
    pid = victim.proc.pid
    victim.proc = Forked(zygote_for(workers.pool._tree), pid, -1)  # as without pidfd_open
    assert victim.proc.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        victim.proc.wait(0.2)
    victim.proc.kill()
    assert victim.proc.wait(10) == -signal.SIGKILL
    await workers.until(lambda: workers.pool.stats.worker_restarts == 1)
    await workers.until(lambda: workers.pool.stats.workers == 2)
    assert workers.pool._workers[0].proc is not None
    assert workers.pool._workers[0].proc.pid != pid


async def test_a_zygote_dead_before_the_first_worker_is_replaced(
    tmp_path: Path, tree: MibTree
) -> None:
    """The zygote killed (the OOM killer, an operator) between the agent's start and its
    first worker, before the agent noticed: the workers start from a new zygote, not an
    agent that fails to start."""
    first = zygote_for(tree)
    os.kill(first.pid, signal.SIGKILL)
    for _ in range(500):
        if not alive(first.pid):
            break
        await asyncio.sleep(0.01)
    assert first.alive  # not noticed yet: its end of the pair was not read
    pool, got = await _start(_config(tmp_path, free_udp_port()), tree)
    try:
        assert pool.stats.workers == 2
        assert zygote_for(tree).pid != first.pid
        helper = Workers(pool, got)
        for source in SOURCES:
            assert await helper.run(
                "snmptrap", "-v", "2c", "-c", "public", helper.target(), *_TRAP_ARGS, source=source
            ) == 0  # fmt: skip
        await helper.until(lambda: len(got) == 2)
    finally:
        await pool.stop()


async def test_many_listen_addresses_reach_every_worker(tmp_path: Path, tree: MibTree) -> None:
    """A worker gets one socket per listen address through the zygote (descriptors passed
    in one message): 100 addresses, each answered by both workers."""
    ports = [free_udp_port() for _ in range(100)]
    config = _config(tmp_path, ports[0], listen=[f"127.0.0.1:{port}" for port in ports])
    pool, got = await _start(config, tree)
    try:
        assert pool.stats.workers == 2
        helper = Workers(pool, got)
        for port in (ports[0], ports[-1]):
            for source in SOURCES:
                assert await helper.run(
                    "snmptrap", "-v", "2c", "-c", "public", f"127.0.0.1:{port}",
                    *_TRAP_ARGS, source=source,
                ) == 0  # fmt: skip
        await helper.until(lambda: len(got) == 4)
    finally:
        await pool.stop()


async def _events_per_turn(tmp_path: Path, tree: MibTree, count: int, cost: float) -> list[int]:
    """How many events the agent handed to its sink in each turn of its loop, of ``count``
    traps sent at once to workers that gather for 100 ms; each costs the sink ``cost`` s."""
    config = _config(
        tmp_path, free_udp_port(), storm_rate=1e9, storm_burst=10**9,
        storm_trap_rate=1e9, storm_trap_burst=10**9, worker_flush_interval="100ms",
    )  # fmt: skip
    turns: list[int] = []
    turn = 0

    def sink(event: TrapEvent) -> None:
        turns.append(turn)
        until = time.perf_counter() + cost
        while time.perf_counter() < until:
            pass

    pool = TrapWorkers(config, sink=sink, tree=tree, count=2)
    await pool.open()
    pool.begin()

    async def ticker() -> None:
        nonlocal turn
        while True:
            turn += 1
            await asyncio.sleep(0)  # once per turn of the loop

    ticking = asyncio.ensure_future(ticker())
    try:
        await Workers(pool, []).ready()
        port = pool.addresses[0][1]
        data = await _capture("snmptrap", "-v", "2c", "-c", "public")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            for _ in range(count):
                sock.sendto(data, ("127.0.0.1", port))
        await Workers(pool, []).until(lambda: len(turns) == count)
    finally:
        ticking.cancel()
        await pool.stop()
    return [turns.count(t) for t in sorted(set(turns))]


async def test_a_turn_of_the_agent_s_loop_hands_at_most_64_events(
    tmp_path: Path, tree: MibTree
) -> None:
    """Workers gather events for [traps] worker_flush_interval, up to 256 in one batch; the
    agent hands at most 64 of them to its sink per turn of its loop (as its own receiver
    reads its socket), so a flood does not hold the web and the mail for a whole batch."""
    per_turn = await _events_per_turn(tmp_path, tree, 600, 0.0)  # batches of 256, 256, 88
    assert max(per_turn) <= 64, per_turn
    assert sum(per_turn) == 600


async def test_a_turn_of_the_agent_s_loop_hands_events_for_5_ms_at_most(
    tmp_path: Path, tree: MibTree
) -> None:
    """Events that cost the agent much (each opens an alert: rows, a mail group) are handed
    for about 5 ms per turn of its loop, then the loop turns (the web, the mail, the other
    workers), whatever the batch holds: here 2 ms each, so 3 per turn at most."""
    per_turn = await _events_per_turn(tmp_path, tree, 60, 0.002)
    assert max(per_turn) <= 3, per_turn
