"""Trap workers' pure parts: the frames and events they hand over, their counters, the count."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netalert.config.models import TrapsConfig
from netalert.snmp.types import SnmpType, TrapEvent
from netalert.snmp.wire.timeliness import EngineClocks
from netalert.traps import workwire
from netalert.traps.stats import TrapStats
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
        st.integers(0, 2**31),
        st.integers(0, 2**31),
        st.binary(max_size=48),
    ),
)


@given(event=_events, claim=_claims)
def test_an_event_crosses_the_channel_unchanged(event: TrapEvent, claim: Any) -> None:
    data = workwire.frame(workwire.EVENTS, [workwire.encode_event(event, claim)])
    ((kind, body),) = list(workwire.FrameReader().feed(data))
    assert kind == workwire.EVENTS
    back, back_claim = workwire.decode_event(body[0])
    assert back == event and back.message_id == event.message_id
    assert back_claim == claim
    assert all(type(vb.type) is SnmpType for vb in back.varbinds)


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
