"""Trap workers' pure parts: the frames and events they hand over, their counters, the count."""

from __future__ import annotations

import asyncio
import contextlib
import marshal
import os
import socket
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netalert.config.models import TrapsConfig
from netalert.snmp.types import SnmpType, TrapEvent, VarBind
from netalert.snmp.wire.timeliness import EngineClocks
from netalert.traps import worker as worker_module
from netalert.traps import workwire
from netalert.traps.stats import RejectReason, TrapStats
from netalert.traps.workers import AUTO_MAX, worker_count
from tests.support.strategies import TRAP_EVENTS

pytestmark = pytest.mark.unit

_events = st.tuples(TRAP_EVENTS, st.text(max_size=20)).map(
    lambda pair: replace(pair[0], message_id=pair[1])
)
_claims = st.one_of(
    st.none(),
    st.tuples(
        st.binary(min_size=5, max_size=32),
        st.integers(0, 2**31 - 1),
        st.integers(0, 2**31 - 1),
        st.binary(max_size=48),
    ),
)


@given(event=_events, claim=_claims)
def test_an_event_crosses_the_channel_unchanged(event: TrapEvent, claim: Any) -> None:
    if claim is not None:
        event = replace(event, version="3")  # only an SNMPv3 trap has a clock claim
    data = workwire.frame(workwire.EVENTS, [workwire.encode_event(event, claim)])
    ((kind, body),) = list(workwire.FrameReader().feed(data))
    assert kind == workwire.EVENTS
    back, back_claim, back_matched = workwire.decode_event(body[0])
    assert back == event and back.message_id == event.message_id
    assert back_claim == claim and back_matched is None
    assert all(type(vb.type) is SnmpType for vb in back.varbinds)


@given(events=st.lists(_events, min_size=1, max_size=5))
def test_events_through_a_varbind_cache_come_out_as_without_it(events: list[TrapEvent]) -> None:
    """The agent keeps the varbinds it checked: an event sent twice comes out the same,
    with the same varbinds, as through no cache."""
    cache = workwire.VarbindCache(1000, TrapStats())
    for event in events * 2:
        item = marshal.loads(marshal.dumps(workwire.encode_event(event, None)))
        back, _, _ = workwire.decode_event(item, cache)
        assert back == workwire.decode_event(item)[0] == event
        assert [type(vb.value) for vb in back.varbinds] == [type(vb.value) for vb in event.varbinds]


def test_a_cached_varbind_is_taken_only_with_a_value_of_its_type() -> None:
    """1 == 1.0 == True: a varbind equal to one kept, but whose value is of another type,
    is checked afresh (a bool refused, a float kept a float)."""
    cache = workwire.VarbindCache(1000, TrapStats())
    bind = ("1.3.6.1.2.1.2.2.1.1.2", "INTEGER", 1, "IF-MIB::ifIndex", "2", "")
    assert workwire.decode_event(_changed(5, (bind,)), cache)[0].varbinds[0].value == 1
    assert cache.made  # kept
    with pytest.raises(ValueError, match="event"):
        workwire.decode_event(_changed(5, ((*bind[:2], True, *bind[3:]),)), cache)
    (vb,) = workwire.decode_event(_changed(5, ((*bind[:2], 1.0, *bind[3:]),)), cache)[0].varbinds
    assert type(vb.value) is float
    # unhashable: refused as a varbind, not an error of the cache
    with pytest.raises(ValueError, match="event"):
        workwire.decode_event(_changed(5, ((*bind[:2], [1], *bind[3:]),)), cache)


def test_the_varbind_cache_is_bounded_counted_and_skips_changing_values() -> None:
    stats = TrapStats()
    cache = workwire.VarbindCache(3, stats)
    for n in range(7):
        bind = (f"1.3.6.1.2.1.2.2.1.1.{n}", "INTEGER", n, "IF-MIB::ifIndex", str(n), "")
        workwire.decode_event(_changed(5, (bind,)), cache)
        assert len(cache.made) <= 3
    assert stats.varbind_cache_evictions == 6  # emptied twice, 3 each time
    ticks = ("1.3.6.1.2.1.1.3.0", "TimeTicks", 5, "SNMPv2-MIB::sysUpTime", "0", "")
    workwire.decode_event(_changed(5, (ticks,)), cache)
    assert ticks not in cache.made
    none = workwire.VarbindCache(0, stats)
    workwire.decode_event(_changed(5, ((*ticks[:1], "INTEGER", *ticks[2:]),)), none)
    assert not none.made


def test_a_worker_s_kept_varbinds_are_written_once_per_frame_and_read_back_the_same() -> None:
    """The same VarBind trap after trap (the v2c fast path's): encoded once, the same tuple
    in every event, so a frame carries it once; the agent reads back equal events."""
    stats = TrapStats()
    encoder = workwire.VarbindEncoder(100, stats)
    index = VarBind("1.3.6.1.2.1.2.2.1.1.3", SnmpType.INTEGER, 3, "IF-MIB::ifIndex", "3")
    descr = VarBind("1.3.6.1.2.1.2.2.1.2.3", SnmpType.OCTET_STRING, b"Gi0/3", "IF-MIB::ifDescr")
    base = workwire.decode_event(_GOOD)[0]
    events = [
        replace(
            base,
            varbinds=(VarBind("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, n), index, descr),
        )
        for n in range(50)
    ]
    plain = [workwire.encode_event(event, None) for event in events]
    kept = [workwire.encode_event(event, None, encoder) for event in events]
    assert kept == plain
    assert kept[0][5][1] is kept[1][5][1] and kept[0][5][2] is kept[49][5][2]
    assert kept[0][5][0] is not kept[1][5][0]  # the uptime: not kept
    small, large = (workwire.frame(workwire.EVENTS, body) for body in (kept, plain))
    assert len(small) < len(large) * 0.8
    ((_, body),) = list(workwire.FrameReader().feed(small))
    cache = workwire.VarbindCache(100, stats)
    assert [got for got, _, _ in workwire.check_events(body, cache)] == events
    assert stats.varbind_cache_evictions == 0


def test_the_varbind_encoder_is_bounded_and_counted() -> None:
    stats = TrapStats()
    encoder = workwire.VarbindEncoder(2, stats)
    binds = [VarBind(f"1.3.6.1.4.1.9.{n}", SnmpType.INTEGER, n) for n in range(5)]
    assert encoder.encode(tuple(binds)) == tuple(
        (vb.oid, "INTEGER", vb.value, "", "", "") for vb in binds
    )
    assert stats.varbind_cache_evictions == 4  # emptied twice, 2 each time
    assert workwire.VarbindEncoder(0, stats).encode(tuple(binds[:1])) == (
        (binds[0].oid, "INTEGER", 0, "", "", ""),
    )
    assert stats.varbind_cache_evictions == 4


def test_long_values_are_not_kept_by_the_encoder_nor_the_agent() -> None:
    """A long value comes as a new VarBind at every trap (the fast path keeps only short
    ones): kept, a table of 8,192 would hold 8,192 of them."""
    stats = TrapStats()
    encoder = workwire.VarbindEncoder(100, stats)
    cache = workwire.VarbindCache(100, stats)
    base = workwire.decode_event(_GOOD)[0]
    long = [VarBind(f"1.3.6.1.4.1.9.{n}", SnmpType.OCTET_STRING, b"x" * 129) for n in range(3)]
    short = VarBind("1.3.6.1.4.1.9.9", SnmpType.OCTET_STRING, b"x" * 128)
    text = VarBind("1.3.6.1.4.1.9.8", SnmpType.OCTET_STRING, "y" * 200)
    event = replace(base, varbinds=(*long, short, text))
    item = workwire.encode_event(event, None, encoder)
    workwire.decode_event(item, cache)
    assert [vb.value for vb, _ in encoder._kept.values()] == [b"x" * 128]
    assert [vb.value for vb in cache.made.values()] == [b"x" * 128]


async def _read_everything(channel: Any, there: socket.socket) -> list[tuple[str, Any]]:
    """The agent reads again: every frame the channel held, once it has written them all."""
    there.setblocking(False)
    reader, got = workwire.FrameReader(), []
    for _ in range(2000):
        with contextlib.suppress(BlockingIOError):
            got += reader.feed(there.recv(65536))
        if channel.idle.is_set():
            with contextlib.suppress(BlockingIOError):
                for _ in range(1000):
                    got += reader.feed(there.recv(65536))
            break
        await asyncio.sleep(0.001)
    assert channel.idle.is_set()
    return got


async def test_a_worker_s_channel_holds_bounded_bytes_while_the_agent_does_not_read() -> None:
    """Large events: the bytes bound is reached long before the count, and counted."""
    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    here.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    here.setblocking(False)
    stats = TrapStats()
    bound = 256 * 1024
    channel = worker_module._Channel(here, 10_000, stats, limit_bytes=bound)
    try:
        base = workwire.decode_event(_GOOD)[0]
        datagram = (b"x" * 8000, ("127.0.0.1", 5000), ("127.0.0.1", 162), 1.0)
        for n in range(2000):
            value = b"%08d" % n * 1000
            varbinds = (VarBind("1.3.6.1.4.1.9.1", SnmpType.OCTET_STRING, value),)
            channel.add(workwire.encode_event(replace(base, varbinds=varbinds), None))
            channel.record(datagram)
            if n % 50 == 49:
                await asyncio.sleep(0)  # the flush
        await asyncio.sleep(0)
        held = sum(len(data) for data, _ in channel._out)
        assert held <= bound + 2 * 256 * 8100, held  # the bound, and a batch of each kind
        assert stats.queue_full_bytes > 1500 and stats.queue_full_events == 0
        assert stats.dropped == stats.queue_full_bytes
        assert stats.record_shed > 1500
        # the agent reads again: what was held arrives, and nothing is counted as held
        got = await _read_everything(channel, there)
        assert channel._bytes == 0
        events = sum(len(body) for kind, body in got if kind == workwire.EVENTS)
        assert events + stats.dropped == 2000
    finally:
        here.close()
        there.close()


def test_frames_split_anywhere_come_out_whole_and_in_order() -> None:
    stream = b"".join(workwire.frame(workwire.STATS, {"n": n, "pad": "x" * n}) for n in range(50))
    reader = workwire.FrameReader()
    got: list[Any] = []
    for at in range(0, len(stream), 7):  # 7-byte pieces: every frame is split somewhere
        got += [body["n"] for _, body in reader.feed(stream[at : at + 7])]
    assert got == list(range(50))


def test_a_frame_longer_than_any_a_peer_sends_is_refused() -> None:
    with pytest.raises(ValueError, match="frame of"):
        list(workwire.FrameReader().feed(b"\xff\xff\xff\xff"))


def test_counters_of_workers_and_of_exited_ones_add_up() -> None:
    one, two = TrapStats(), TrapStats()
    one.received["2c"] += 3
    one.rejected["bad_community"] += 1
    one.storm_keys, one.datagrams = 2, 4
    two.received["2c"] += 5
    two.received["3"] += 1
    two.datagrams = 6
    retired: dict[str, Any] = {}
    workwire.add_snapshot(retired, workwire.stats_snapshot(one))
    workwire.add_snapshot(retired, workwire.stats_snapshot(one))
    total = TrapStats()
    total.worker_restarts = 2  # the agent's own: not a worker's counter
    total.received["1"] = 99  # stale: replaced by the sum
    workwire.sum_stats(total, [retired, workwire.stats_snapshot(two)])
    assert dict(total.received) == {"2c": 11, "3": 1}
    assert dict(total.rejected) == {"bad_community": 2}
    assert (total.datagrams, total.storm_keys, total.worker_restarts) == (14, 4, 2)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.dictionaries(st.sampled_from(["1", "2c", "3"]), st.integers(0, 9)),
            st.dictionaries(st.sampled_from(["bad_community", "malformed"]), st.integers(0, 9)),
            st.integers(0, 9),
            st.integers(0, 9),
        ),
        max_size=12,
    )
)
def test_a_worker_s_new_counters_move_the_total_as_a_full_recount_would(
    updates: list[tuple[int, dict[str, int], dict[str, int], int, int]],
) -> None:
    """The agent adds what changed since a worker's last counters (each STATS frame of
    each worker, as often as it hands events over) instead of summing every worker's."""
    snapshots: list[dict[str, Any]] = [{}, {}, {}]
    total = TrapStats()
    total.worker_restarts = 3  # the agent's own: not a worker's counter
    for worker, received, rejected, datagrams, keys in updates:
        stats = TrapStats(datagrams=datagrams, storm_keys=keys)
        stats.received.update(received)
        stats.rejected.update(rejected)
        new = workwire.stats_snapshot(stats)
        workwire.add_difference(total, snapshots[worker], new)
        snapshots[worker] = new
        expected = TrapStats(worker_restarts=3)
        workwire.sum_stats(expected, snapshots)
        for name in ("received", "rejected", "malformed_detail"):
            got = {k: v for k, v in getattr(total, name).items() if v}
            assert got == {k: v for k, v in getattr(expected, name).items() if v}
        plain = {k: v for k, v in total.as_dict().items() if not isinstance(v, dict)}
        assert plain == {k: v for k, v in expected.as_dict().items() if not isinstance(v, dict)}


def test_a_deferred_time_window_keeps_the_claim_for_the_agent() -> None:
    worker = EngineClocks(clock=lambda: 0.0, defer=True)
    assert worker.admit(b"engine-1", 1, 1000, b"d1")
    assert worker.admit(b"engine-1", 0, 0, b"d0")  # stale, but the agent judges it
    assert worker.claim == (b"engine-1", 0, 0, b"d0") and len(worker) == 0
    agent = EngineClocks(clock=lambda: 0.0)
    assert agent.admit(b"engine-1", 2, 5, b"d2")
    assert not agent.admit(*worker.claim)


@pytest.mark.parametrize(("workers", "expected"), [(1, 1), (2, 2), (200, 200)])
def test_an_explicit_worker_count_is_taken_as_it_is(workers: int, expected: int) -> None:
    assert worker_count(TrapsConfig.model_validate({"workers": workers})) == expected


def test_workers_0_is_one_per_usable_core_up_to_the_cap() -> None:
    cores = len(os.sched_getaffinity(0))
    assert worker_count(TrapsConfig()) == min(cores, AUTO_MAX)


_GOOD = workwire.encode_event(
    TrapEvent(
        source="::1",
        source_port=162,
        version="3",
        trap_oid="1.3.6.1.6.3.1.1.5.3",
        trap_name="IF-MIB::linkDown",
        varbinds=(VarBind("1.3.6.1.2.1.2.2.1.1.2", SnmpType.COUNTER64, 2**64 - 1),),
        uptime=7,
        received=1.5e9,
        user="u",
    ),
    (b"engine-1", 1, 2, b"d" * 12),
)
_BIND = _GOOD[5][0]


def _changed(position: int, value: Any) -> tuple[Any, ...]:
    item = list(_GOOD)
    item[position] = value
    return tuple(item)


def _bind(position: int, value: Any) -> tuple[Any, ...]:
    bind = list(_BIND)
    bind[position] = value
    return _changed(5, (tuple(bind),))


@pytest.mark.parametrize(
    "item",
    [
        _GOOD[:14],
        [*_GOOD],
        _changed(0, b"::1"),
        _changed(1, -1),
        _changed(1, 65536),
        _changed(1, True),
        _changed(2, "2"),
        _changed(3, None),
        _changed(4, 1),
        _changed(5, [_BIND]),
        _changed(6, -1),
        _changed(6, 2**64),
        _changed(7, float("nan")),
        _changed(7, "now"),
        _changed(8, None),
        _changed(9, b"public"),
        _changed(10, 0),
        _changed(11, 1),
        _changed(12, 0),
        _changed(13, None),
        _changed(14, (b"engine-1", 1, 2)),
        _changed(14, (b"e" * 33, 1, 2, b"d")),
        _changed(14, (b"engine-1", -1, 2, b"d")),
        _changed(14, (b"engine-1", 1, 2**31, b"d")),
        _changed(14, ("engine-1", 1, 2, b"d")),
        _changed(14, (b"engine-1", 1, 2, b"d" * 65)),
        _changed(2, "2c"),  # a clock claim on a v2c event: only v3 carries one
        _bind(0, 1),
        _bind(1, "Integer"),
        _bind(2, 2**64),
        _bind(2, [1]),
        _bind(2, (1,)),
        _bind(3, None),
        _bind(4, 1),
        _bind(5, b""),
        _changed(5, (_BIND[:5],)),
    ],
)
def test_every_field_of_a_worker_s_event_is_checked(item: Any) -> None:
    """The agent trusts no worker: an event of the wrong shape, type or range is refused."""
    assert workwire.decode_event(_GOOD)[0].varbinds[0].value == 2**64 - 1
    with pytest.raises(ValueError, match="event"):
        workwire.decode_event(item)


def test_a_batch_is_a_list_of_at_most_max_events() -> None:
    assert worker_module._BATCH <= workwire.MAX_EVENTS  # what a worker sends is taken
    assert len(workwire.check_events([_GOOD] * workwire.MAX_EVENTS)) == workwire.MAX_EVENTS
    for body in ([_GOOD] * (workwire.MAX_EVENTS + 1), (_GOOD,), None):
        with pytest.raises(ValueError, match="events"):
            workwire.check_events(body)


def test_a_worker_s_counters_pass_and_anything_else_is_refused() -> None:
    stats = TrapStats(datagrams=5, errors=1, storm_keys=2)
    stats.received.update({"1": 1, "2c": 2, "3": 3})
    stats.rejected.update({reason.value: 1 for reason in RejectReason})
    stats.malformed_detail.update({"no_trap_oid": 1, "v3:bad header": 2})
    good = workwire.stats_snapshot(stats)
    assert workwire.check_stats(good) == good
    bad: list[Any] = [
        [good],
        {**good, "workers": 1},  # the agent's own counter
        {**good, "worker_restarts": 1},
        {**good, "datagrams": -1},
        {**good, "datagrams": 2**63},
        {**good, "datagrams": 1.0},
        {**good, "dropped": True},
        {**good, "received": {"4": 1}},
        {**good, "rejected": {'x"} 1\n': 1}},
        {**good, "rejected": []},
        {**good, "malformed_detail": {"x" * 129: 1}},
        {**good, "malformed_detail": {str(n): 1 for n in range(257)}},
        {**good, "malformed_detail": {1: 1}},
        {**good, "malformed_detail": {"x": -1}},
    ]
    for body in bad:
        with pytest.raises(ValueError, match="stats"):
            workwire.check_stats(body)


def test_recorded_datagrams_are_checked() -> None:
    good = [
        (b"\x30\x00", ("127.0.0.1", 5000), ("127.0.0.1", 162), 1.5),
        (b"", ("::1", 5000, 0, 0), ("::1", 162, 0, 0), 2),
    ]
    assert workwire.check_recorded(good) == good
    for item in [
        ("x", ("127.0.0.1", 5000), ("127.0.0.1", 162), 1.5),
        (b"x" * 65536, ("127.0.0.1", 5000), ("127.0.0.1", 162), 1.5),
        (b"x", ("127.0.0.1",), ("127.0.0.1", 162), 1.5),
        (b"x", ("127.0.0.1", -1), ("127.0.0.1", 162), 1.5),
        (b"x", ("127.0.0.1", 1), ("127.0.0.1", 162), float("inf")),
        (b"x", ("127.0.0.1", 1), ("127.0.0.1", 162)),
    ]:
        with pytest.raises(ValueError, match="recorded"):
            workwire.check_recorded([item])


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x02\xff\xff",  # not marshal
        b"\x00\x00\x00\x04" + marshal.dumps(("E", "xyz"))[:4],  # cut short
        b"\x00\x00\x00\x05" + marshal.dumps(12345),  # not a pair
        workwire.frame(1, None),  # type: ignore[arg-type]  # a kind not text
        workwire.frame("E", None)[:4] + marshal.dumps(("E", None, None)),
    ],
)
def test_a_frame_not_a_kind_and_body_is_refused(data: bytes) -> None:
    data = len(data[4:]).to_bytes(4, "big") + data[4:]
    with pytest.raises(ValueError, match="frame"):
        list(workwire.FrameReader().feed(data))


async def test_a_worker_s_channel_holds_bounded_frames_while_the_agent_does_not_read() -> None:
    """The agent stopped reading (SIGSTOP, a blocked loop): whatever the worker has to say
    (events, counters every tenth of a second, recorded datagrams) it holds within bounds."""
    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    here.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    here.setblocking(False)
    stats = TrapStats()
    limit = 100
    channel = worker_module._Channel(here, limit, stats)
    try:
        datagram = (b"x" * 1000, ("127.0.0.1", 5000), ("127.0.0.1", 162), 1.0)
        for _ in range(50):  # fifty tenths of a second of a flood
            for _ in range(40):
                stats.datagrams += 1
                channel.add(_GOOD)
                channel.record(datagram)
            await asyncio.sleep(0)  # the flush
            channel.report()
        frames = list(channel._out)
        assert stats.dropped >= 50 * 40 - 2 * limit  # the events past the queue: counted
        events = sum(count for _, count in frames)
        assert events <= limit
        # the counters: one frame waiting (the latest), not one per report
        # the first frame may be begun; counters due are b"" until their turn
        kinds = [marshal.loads(data[4:])[0] if data else "S" for data, _ in frames[1:]]
        assert kinds.count(workwire.STATS) <= 1, kinds
        # recorded datagrams: at most `limit` of them waiting, the rest counted
        assert sum(len(data) for data, _ in frames) < limit * 2 * 1200, len(frames)
        assert stats.record_shed > 0
        # the agent reads again: everything held arrives, the latest counters last
        got = await _read_everything(channel, there)
        events = sum(len(body) for kind, body in got if kind == workwire.EVENTS)
        records = sum(len(body) for kind, body in got if kind == workwire.RECORDED)
        assert events + stats.dropped == 50 * 40
        assert records + stats.record_shed == 50 * 40
        last = [body for kind, body in got if kind == workwire.STATS][-1]
        last.pop("trap_cache_evicted", None)  # the worker's trap caches, beside its TrapStats
        assert last == workwire.stats_snapshot(stats)
    finally:
        here.close()
        there.close()


_MATCH = ("LinkDown", "o", "k1", {"ifIndex": "3"}, "f00d", "linkDown", None)


def test_a_worker_s_matches_pass_checked_and_anything_else_is_refused() -> None:
    """A worker that matched the trap rules sends (token, (found, cut)) after the event:
    the agent takes it only in that shape (rule names are then looked up by the agent)."""
    good = (*_GOOD, "t1", ((_MATCH, ("LinkUp", "c", "k2", None, None, "linkUp", None)), 0))
    _, _, matched = workwire.decode_event(good)
    assert matched == ("t1", ((_MATCH, ("LinkUp", "c", "k2", None, None, "linkUp", None)), 0))
    bad = [
        (*_GOOD, "t1"),  # 16 fields
        (*_GOOD, 1, ((_MATCH,), 0)),  # token not a string
        (*_GOOD, "t" * 500, ((_MATCH,), 0)),  # token too long
        (*_GOOD, "t1", ((_MATCH,), -1)),  # negative cut
        (*_GOOD, "t1", ((_MATCH[:6],), 0)),  # a match of 6 fields
        (*_GOOD, "t1", (((*_MATCH[:1], "x", *_MATCH[2:]),), 0)),  # unknown kind
        (*_GOOD, "t1", (((*_MATCH[:3], {"a": 1}, *_MATCH[4:]),), 0)),  # a label not a string
        (*_GOOD, "t1", ((_MATCH,) * (workwire.MAX_EVENTS + 1), 0)),  # too many
        # a label not a string, after a match whose labels passed
        (*_GOOD, "t1", ((_MATCH, (*_MATCH[:3], {"ifIndex": b"3"}, *_MATCH[4:])), 0)),
    ]
    for item in bad:
        with pytest.raises(ValueError, match="event"):
            workwire.decode_event(item)
    # in one frame, each label set is checked once, however often it comes: another is not
    # taken for it
    shared = (*_GOOD, "t1", ((_MATCH, _MATCH), 0))
    other = (*_GOOD, "t1", (((*_MATCH[:3], {"ifIndex": 3}, *_MATCH[4:]),), 0))
    assert len(workwire.check_events([shared, shared])) == 2
    with pytest.raises(ValueError, match="event"):
        workwire.check_events([shared, other])


# A value of each type a frame can carry (marshal's builtins), put in every field in turn.
_ANY_TYPE = ("x", 1, True, 1.5, None, b"x", (), [], {}, frozenset(), 1j)


@pytest.mark.parametrize("matched", [False, True])
def test_an_event_field_of_a_shape_no_worker_sends_is_refused(matched: bool) -> None:
    """The agent checks an event's fields one by one (not by looking the tuple of their
    types up in ``_EVENT_SHAPES``): every field of any other type is still refused."""
    good = (*_GOOD, "t1", ((_MATCH,), 0)) if matched else _GOOD
    workwire.decode_event(good)
    refused = 0
    for position in range(len(good)):
        for value in _ANY_TYPE:
            item = (*good[:position], value, *good[position + 1 :])
            if tuple(map(type, item)) in workwire._EVENT_SHAPES:
                continue  # a shape a worker sends: its ranges are another test's
            refused += 1
            with pytest.raises(ValueError, match="event"):
                workwire.decode_event(item)
    assert refused >= len(good) * (len(_ANY_TYPE) - 3)


def test_a_match_field_of_a_shape_no_worker_sends_is_refused() -> None:
    """So are a match's fields (not looked up in ``_MATCH_SHAPES`` either)."""
    refused = 0
    for position in range(len(_MATCH)):
        for value in _ANY_TYPE:
            match = (*_MATCH[:position], value, *_MATCH[position + 1 :])
            item = (*_GOOD, "t1", ((_MATCH, match), 0))
            if tuple(map(type, match)) in workwire._MATCH_SHAPES and position != 1:
                continue  # a shape a worker sends (a kind other than "c" or "o": refused)
            refused += 1
            with pytest.raises(ValueError, match="event"):
                workwire.decode_event(item)
    assert refused >= len(_MATCH) * (len(_ANY_TYPE) - 3)


def test_a_worker_s_trap_cache_evictions_pass_and_unknown_caches_are_refused() -> None:
    good = workwire.stats_snapshot(TrapStats()) | {"trap_cache_evicted": {"matches": 2}}
    assert workwire.check_stats(good) == good
    with pytest.raises(ValueError, match="stats"):
        workwire.check_stats(good | {"trap_cache_evicted": {"nosuchcache": 1}})


async def test_a_worker_gathers_events_for_worker_flush_interval_into_one_frame() -> None:
    """[traps] worker_flush_interval: the events of many turns of the worker's loop go to the
    agent as one frame once the interval has passed (or at once, a full batch of 256); 0
    sends at the end of each turn, as before."""
    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    here.setblocking(False)
    there.setblocking(False)
    stats = TrapStats()

    def frames() -> list[tuple[str, Any]]:
        got: list[tuple[str, Any]] = []
        with contextlib.suppress(BlockingIOError):
            for _ in range(1000):
                got += reader.feed(there.recv(65536))
        return [(kind, body) for kind, body in got if kind == workwire.EVENTS]

    reader = workwire.FrameReader()
    try:
        # an interval no test run reaches: nothing goes but a full batch
        channel = worker_module._Channel(here, 10_000, stats, flush_after=3600.0)
        for _ in range(10):
            channel.add(_GOOD)
            await asyncio.sleep(0)
        assert frames() == []
        for _ in range(256 - 10):
            channel.add(_GOOD)
        assert [len(body) for _, body in frames()] == [256]
        channel.add(_GOOD)
        channel.flush()  # as at the stop
        assert [len(body) for _, body in frames()] == [1]
        # a short interval: ten turns' events in one frame when it has passed
        channel = worker_module._Channel(here, 10_000, stats, flush_after=0.02)
        for _ in range(10):
            channel.add(_GOOD)
            await asyncio.sleep(0)
        got: list[tuple[str, Any]] = []
        for _ in range(200):  # bounded: 2 s
            got += frames()
            if got:
                break
            await asyncio.sleep(0.01)
        assert [len(body) for _, body in got] == [10]
        # 0: one frame per turn of the loop
        channel = worker_module._Channel(here, 10_000, stats, flush_after=0.0)
        for _ in range(3):
            channel.add(_GOOD)
            channel.add(_GOOD)
            await asyncio.sleep(0)
        assert [len(body) for _, body in frames()] == [2, 2, 2]
    finally:
        here.close()
        there.close()


def test_worker_flush_interval_is_bounded() -> None:
    assert TrapsConfig.model_validate({}).worker_flush_interval.total_seconds() == 0.002
    assert TrapsConfig.model_validate({"worker_flush_interval": "0"}).worker_flush_interval == (
        TrapsConfig.model_validate({"worker_flush_interval": "0s"}).worker_flush_interval
    )
    with pytest.raises(ValueError, match="0 to 100ms"):
        TrapsConfig.model_validate({"worker_flush_interval": "150ms"})
