"""Counter arithmetic: wraps, restarts, discontinuities, implausible rates (tables)."""

from __future__ import annotations

import pytest

from netalert.poll.counters import (
    COUNTER32_MODULUS,
    COUNTER64_MODULUS,
    TIMETICKS_MODULUS,
    Point,
    Verdict,
    agent_restarted,
    counter_delta,
    max_rate_for,
    rate,
)
from netalert.snmp.types import SnmpType

C32, C64 = SnmpType.COUNTER32, SnmpType.COUNTER64


@pytest.mark.parametrize(
    ("prev", "cur", "kind", "expected"),
    [
        (100, 250, C32, 150),
        (0, 0, C32, 0),
        (COUNTER32_MODULUS - 10, 5, C32, 15),  # one wrap
        (COUNTER32_MODULUS - 1, 0, C32, 1),
        (5, 4, C32, COUNTER32_MODULUS - 1),  # "went down by one" is a near-full wrap
        (COUNTER64_MODULUS - 100, 50, C64, 150),
        (2**40, 2**40 + 7, C64, 7),
        (COUNTER32_MODULUS - 10, 5, C64, 15 - COUNTER32_MODULUS + COUNTER64_MODULUS),
    ],
)
def test_counter_delta(prev: int, cur: int, kind: SnmpType, expected: int) -> None:
    assert counter_delta(prev, cur, kind) == expected


def test_counter_delta_rejects_gauges() -> None:
    with pytest.raises(ValueError, match="not a counter"):
        counter_delta(1, 2, SnmpType.GAUGE32)


@pytest.mark.parametrize(
    ("prev_up", "cur_up", "elapsed", "prev_boots", "cur_boots", "expected"),
    [
        (10_000, 16_000, 60.0, None, None, False),  # advanced with the clock
        (10_000, 15_800, 60.0, None, None, False),  # 2 s late: network delay, within slack
        (10_000, 500, 60.0, None, None, True),  # went backwards
        (10_000, 9_999, 0.5, None, None, True),  # backwards by one tick
        (100, 3_000, 60.0, None, None, True),  # reset then climbed: 30 s < 60 s elapsed
        (50_000, 380_000, 3_600.0, None, None, True),  # climbed 3300 s in 3600 s: restarted
        (TIMETICKS_MODULUS - 1_000, 5_000, 60.0, None, None, False),  # 497-day wrap on time
        (TIMETICKS_MODULUS - 1_000, 100, 600.0, None, None, True),  # wrap does not add up
        (10_000, 16_000, 60.0, 3, 4, True),  # snmpEngineBoots changed
        (10_000, 16_000, 60.0, 3, 3, False),
        (None, 16_000, 60.0, None, None, False),  # nothing to compare
        (10_000, None, 60.0, 3, 3, False),
    ],
)
def test_agent_restarted(
    prev_up: int | None,
    cur_up: int | None,
    elapsed: float,
    prev_boots: int | None,
    cur_boots: int | None,
    expected: bool,
) -> None:
    assert agent_restarted(prev_up, cur_up, elapsed, prev_boots, cur_boots) is expected


GBIT = 1_000_000_000


@pytest.mark.parametrize(
    ("prev", "cur", "kind", "max_rate", "verdict", "delta", "per_second"),
    [
        (None, Point(10, 60.0, 6_000), C32, None, Verdict.FIRST, None, None),
        (Point(1_000, 0.0, 0), Point(7_000, 60.0, 6_000), C32, None, Verdict.OK, 6_000, 100.0),
        (  # Counter32 wrap
            Point(COUNTER32_MODULUS - 600, 0.0, 0),
            Point(600, 60.0, 6_000),
            C32,
            None,
            Verdict.OK,
            1_200,
            20.0,
        ),
        (  # Counter64 wrap
            Point(COUNTER64_MODULUS - 30, 100.0, 10_000),
            Point(30, 110.0, 11_000),
            C64,
            None,
            Verdict.OK,
            60,
            6.0,
        ),
        (  # reboot: counter restarted from 0, uptime went back: no spike
            Point(9_000_000, 0.0, 500_000),
            Point(1_200, 60.0, 3_000),
            C32,
            None,
            Verdict.RESTARTED,
            None,
            None,
        ),
        (  # reboot with the counter already past its old value: still no rate
            Point(100, 0.0, 500_000),
            Point(4_000_000, 60.0, 3_000),
            C64,
            None,
            Verdict.RESTARTED,
            None,
            None,
        ),
        (  # v3 boots changed, uptime unknown
            Point(100, 0.0, None, 7),
            Point(200, 60.0, None, 8),
            C32,
            None,
            Verdict.RESTARTED,
            None,
            None,
        ),
        (  # ifCounterDiscontinuityTime changed
            Point(100, 0.0, 0, None, 0),
            Point(200, 60.0, 6_000, None, 4_200),
            C32,
            None,
            Verdict.DISCONTINUITY,
            None,
            None,
        ),
        (  # discontinuity unchanged
            Point(100, 0.0, 0, None, 4_200),
            Point(400, 60.0, 6_000, None, 4_200),
            C32,
            None,
            Verdict.OK,
            300,
            5.0,
        ),
        (
            Point(100, 60.0, 6_000),
            Point(200, 60.0, 6_000),
            C32,
            None,
            Verdict.NO_INTERVAL,
            None,
            None,
        ),
        (  # 1 Gbit/s link, 10 GB in 10 s: implausible (a bogus wrap, a reset counter)
            Point(0, 0.0, 0),
            Point(10 * GBIT, 10.0, 1_000),
            C64,
            GBIT / 8 * 1.25,
            Verdict.IMPLAUSIBLE,
            None,
            None,
        ),
        (  # 1 Gbit/s link at line rate: plausible
            Point(0, 0.0, 0),
            Point(GBIT // 8 * 10, 10.0, 1_000),
            C64,
            GBIT / 8 * 1.25,
            Verdict.OK,
            GBIT // 8 * 10,
            GBIT / 8,
        ),
        (Point(1, 0.0), Point(2, 1.0), SnmpType.GAUGE32, None, Verdict.NOT_COUNTER, None, None),
    ],
)
def test_rate_table(
    prev: Point | None,
    cur: Point,
    kind: SnmpType,
    max_rate: float | None,
    verdict: Verdict,
    delta: int | None,
    per_second: float | None,
) -> None:
    result = rate(prev, cur, kind, max_rate=max_rate)
    assert (result.verdict, result.delta, result.rate) == (verdict, delta, per_second)


@pytest.mark.parametrize(
    ("name", "speed", "high", "expected"),
    [
        ("ifHCInOctets", None, 1_000, 1e9 / 8 * 1.25),
        ("ifInOctets", 100_000_000, None, 1e8 / 8 * 1.25),
        ("ifInOctets", 4_294_967_295, None, None),  # saturated ifSpeed, no ifHighSpeed
        ("ifInOctets", 4_294_967_295, 10_000, 1e10 / 8 * 1.25),
        ("ifHCInUcastPkts", None, 1_000, 1e9 / (8 * 84) * 1.25),
        ("ifInErrors", None, 1_000, None),  # not bounded by speed
        ("ifInOctets", 0, 0, None),  # unknown speed
    ],
)
def test_max_rate_for(
    name: str, speed: int | None, high: int | None, expected: float | None
) -> None:
    assert max_rate_for(name, speed, high) == expected
