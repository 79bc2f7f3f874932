"""Flap detection in the way of Nagios and Icinga, as pure functions.

Every evaluation of a poll alert's row (every trap or clearing trap, and for
quiet trap alerts one sample per minute) records whether the alert was firing:
one character ``"1"`` or ``"0"``, the last :data:`WINDOW` kept. The flap score
is the weighted share of consecutive results that differ, in percent: a change
between the two newest results weighs 1.2, one between the two oldest 0.8, the
ones in between linearly, so recent instability counts more and an old burst
fades. The alert starts flapping when the score rises above the start
threshold and stops when it falls below the (lower) stop threshold, so it does
not flap in and out of flapping.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WINDOW", "FlapSettings", "flap_score", "flapping_next", "record"]

# 21 results give 20 possible changes: the window Nagios and Icinga use.
WINDOW = 21
_CHANGES = WINDOW - 1
_NEWEST_WEIGHT = 1.2
_OLDEST_WEIGHT = 0.8


@dataclass(frozen=True, slots=True)
class FlapSettings:
    """A rule's flap detection: on/off and the start/stop thresholds in percent."""

    enabled: bool = True
    start: float = 30.0
    stop: float = 25.0


def record(history: str, firing: bool) -> str:
    """Returns ``history`` with one more result, trimmed to the window."""
    return (history + ("1" if firing else "0"))[-WINDOW:]


def flap_score(history: str) -> float:
    """The weighted percent state change over ``history`` (0.0 to 100.0).

    A history shorter than the window counts as if padded with unchanged
    results on the old side, so a brand-new alert that fired once scores about
    5, not 100.
    """
    total = 0.0
    step = (_NEWEST_WEIGHT - _OLDEST_WEIGHT) / (_CHANGES - 1)
    last = len(history) - 1
    for age in range(min(last, _CHANGES)):
        # age 0 is the change between the two newest results
        if history[last - age] != history[last - age - 1]:
            total += _NEWEST_WEIGHT - step * age
    return round(100.0 * total / _CHANGES, 6)


def flapping_next(flapping: bool, score: float, *, start: float, stop: float) -> bool:
    """Whether the alert flaps after this score, with hysteresis between the thresholds."""
    if not flapping:
        return score > start
    return score >= stop
