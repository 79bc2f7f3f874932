"""Counter arithmetic: deltas and rates that survive wraps, reboots and resets.

Pure functions, no I/O, tested with tables (``tests/test_snmp_counters.py``).

Rules, in the order :func:`rate` applies them:

1. Only Counter32 and Counter64 have rates (a Gauge's change is not a rate).
2. No previous value → no rate (``first``).
3. The agent restarted between the two polls → no rate (``restarted``), never a
   spike. A restart is: snmpEngineBoots changed, or the agent's uptime
   (sysUpTime, or snmpEngineTime) advanced clearly less than the wall clock did
   (it went backwards, or it was reset and climbed again). A TimeTicks wrap
   (after 497 days) whose arithmetic matches the elapsed time is not a restart.
4. ifCounterDiscontinuityTime changed → no rate (``discontinuity``).
5. Time did not advance → no rate (``no_interval``).
6. A counter that went down wrapped once: delta = cur + 2^32 (or 2^64) - prev.
7. A rate above what the interface can carry (octets: speed / 8, packets: one
   minimum Ethernet frame per 84 byte-times, both x :data:`RATE_SLACK`) is
   dropped (``implausible``) and counted by the poller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from netalert.snmp.types import SnmpType, VarBind, maker

__all__ = [
    "COUNTER32_MODULUS",
    "COUNTER64_MODULUS",
    "RATE_SLACK",
    "TIMETICKS_MODULUS",
    "Point",
    "RateResult",
    "Verdict",
    "agent_restarted",
    "counter_delta",
    "counter_went_back",
    "max_rate_for",
    "rate",
]

COUNTER32_MODULUS = 1 << 32
COUNTER64_MODULUS = 1 << 64
TIMETICKS_MODULUS = 1 << 32
# Polls are timed when their answers arrive, so a measured interval can be a little
# short; a real counter can then look up to this factor faster than the link.
RATE_SLACK = 1.25
# Uptime may lag the wall clock by this much (seconds plus a fraction of the
# interval) before we call it a restart: network delay, retries, clock drift.
UPTIME_SLACK_S = 5.0
UPTIME_SLACK_FRACTION = 0.01
# An uptime shorter than the time since the previous poll means the agent started
# after that poll, whatever the previous uptime was. Only the delay between the
# agent reading its clock and our answer timestamp blurs this, hence a short slack.
UPTIME_SINCE_SLACK_S = 1.0
# Bytes on the wire per minimum Ethernet frame: 64 + preamble 8 + gap 12.
MIN_FRAME_BYTES = 84


class Verdict(StrEnum):
    """Why a rate is or is not available."""

    OK = "ok"
    FIRST = "first"
    RESTARTED = "restarted"
    DISCONTINUITY = "discontinuity"
    NO_INTERVAL = "no_interval"
    IMPLAUSIBLE = "implausible"
    NOT_COUNTER = "not_counter"


@dataclass(frozen=True, slots=True)
class Point:
    """One reading of a counter and of the agent's clock at that poll.

    ``time`` is the local wall-clock time of the answer (seconds); ``uptime`` is
    sysUpTime in hundredths of a second (snmpEngineTime x 100 works too);
    ``boots`` is snmpEngineBoots; ``discontinuity`` the row's
    ifCounterDiscontinuityTime. Unknown ones are None and their checks skipped.
    """

    value: int
    time: float
    uptime: int | None = None
    boots: int | None = None
    discontinuity: int | None = None


@dataclass(frozen=True, slots=True)
class RateResult:
    """The delta and per-second rate between two points, or why there are none."""

    verdict: Verdict
    delta: int | None = None
    rate: float | None = None


# The verdicts without figures are the same value every time: made once. An OK
# result and a Point are made through their slots (maker: every field, in order).
_NOT_COUNTER = RateResult(Verdict.NOT_COUNTER)
_FIRST = RateResult(Verdict.FIRST)
_RESTARTED = RateResult(Verdict.RESTARTED)
_DISCONTINUITY = RateResult(Verdict.DISCONTINUITY)
_NO_INTERVAL = RateResult(Verdict.NO_INTERVAL)
_IMPLAUSIBLE = RateResult(Verdict.IMPLAUSIBLE)
_rate_result = maker(RateResult)
make_point = maker(Point)
"""``Point(value, time, uptime, boots, discontinuity)``, every field given, in order."""


def counter_delta(prev: int, cur: int, kind: SnmpType) -> int:
    """The increase from ``prev`` to ``cur``, assuming at most one wrap.

    Raises:
        ValueError: ``kind`` is not Counter32 or Counter64.
    """
    if kind is SnmpType.COUNTER32:
        modulus = COUNTER32_MODULUS
    elif kind is SnmpType.COUNTER64:
        modulus = COUNTER64_MODULUS
    else:
        raise ValueError(f"{kind} is not a counter")
    return (cur - prev) % modulus


def agent_restarted(
    prev_uptime: int | None,
    cur_uptime: int | None,
    elapsed: float,
    prev_boots: int | None = None,
    cur_boots: int | None = None,
) -> bool:
    """True when the agent restarted between two polls ``elapsed`` seconds apart.

    Uptimes are in hundredths of a second (TimeTicks).
    """
    if prev_boots is not None and cur_boots is not None and prev_boots != cur_boots:
        return True
    if prev_uptime is None or cur_uptime is None:
        return False
    slack = (UPTIME_SLACK_S + UPTIME_SLACK_FRACTION * max(elapsed, 0.0)) * 100
    expected = prev_uptime + max(elapsed, 0.0) * 100
    if cur_uptime >= prev_uptime:
        # Advanced, but clearly less than the wall clock: reset and climbed again.
        # The second test catches an agent whose previous poll came within the
        # slack of its start (a crash loop, a quick snmpd restart): the fixed slack
        # would hide that restart and its counters would make a huge false rate.
        since = (max(elapsed, 0.0) * (1 - UPTIME_SLACK_FRACTION) - UPTIME_SINCE_SLACK_S) * 100
        return cur_uptime < expected - slack or cur_uptime < since
    # Went backwards: a restart, unless the 32-bit TimeTicks wrapped on time.
    if expected >= TIMETICKS_MODULUS:
        return abs(cur_uptime + TIMETICKS_MODULUS - expected) > slack
    return True


def max_rate_for(name: str, if_speed: int | None, if_high_speed: int | None) -> float | None:
    """The highest plausible per-second rate of counter ``name`` on an interface.

    ``name`` is the object's short name; octet counters (``...Octets``) and packet
    counters (``...Pkts``) are bounded, others are not (None). Speeds: ifSpeed in
    bit/s (4294967295 means "more": then ifHighSpeed, in Mbit/s, is needed).
    """
    bits: float | None = None
    if if_high_speed:
        bits = if_high_speed * 1_000_000.0
    elif if_speed and if_speed < 4_294_967_295:
        bits = float(if_speed)
    if bits is None:
        return None
    if name.endswith("Octets"):
        return bits / 8 * RATE_SLACK
    if name.endswith("Pkts"):
        return bits / (8 * MIN_FRAME_BYTES) * RATE_SLACK
    return None


def rate(
    prev: Point | None,
    cur: Point,
    kind: SnmpType,
    *,
    max_rate: float | None = None,
) -> RateResult:
    """The delta and per-second rate from ``prev`` to ``cur`` (see module rules)."""
    if kind not in (SnmpType.COUNTER32, SnmpType.COUNTER64):
        return _NOT_COUNTER
    if prev is None:
        return _FIRST
    elapsed = cur.time - prev.time
    if agent_restarted(prev.uptime, cur.uptime, elapsed, prev.boots, cur.boots):
        return _RESTARTED
    if (
        prev.discontinuity is not None
        and cur.discontinuity is not None
        and prev.discontinuity != cur.discontinuity
    ):
        return _DISCONTINUITY
    if elapsed <= 0:
        return _NO_INTERVAL
    delta = counter_delta(prev.value, cur.value, kind)
    per_second = delta / elapsed
    if max_rate is not None and per_second > max_rate:
        return _IMPLAUSIBLE
    return _rate_result(Verdict.OK, delta, per_second)


_WIRE_COUNTERS = frozenset({SnmpType.COUNTER32, SnmpType.COUNTER64, SnmpType.INTEGER})


def counter_went_back(previous: Mapping[str, Point], varbinds: Iterable[VarBind]) -> bool:
    """True when a counter reads lower than at the previous poll (wrap, reset or restart).

    Args:
        previous: The previous poll's counter readings by OID.
        varbinds: This poll's answers.
    """
    for vb in varbinds:
        # ``previous`` holds counters only (the MIB says which); gufo-snmp hands integers
        # over untyped, so its counters arrive as INTEGER
        if vb.type in _WIRE_COUNTERS and isinstance(vb.value, int):
            prev = previous.get(vb.oid)
            if prev is not None and vb.value < prev.value:
                return True
    return False
