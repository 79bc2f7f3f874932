"""``rate()``, ``delta()``, ``changed()``, ``prev()``: values against the previous poll.

The engine keeps, per device, the previous raw value and time of every object
a rule reads through these functions, plus the previous ``sysUpTime`` to tell
an agent reboot. The arithmetic is pure (:func:`counter_delta`,
:func:`rebooted`) and tested by table. When no answer can be given (first
poll, a reboot, a Counter64 going backwards) the function raises
:class:`Unknown`, which makes the whole expression unknown: the alert keeps its
state rather than firing or resolving on a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netalert.rules.values import Converter
from netalert.snmp.counters import agent_restarted
from netalert.snmp.types import Value

__all__ = [
    "NO_HISTORY",
    "DeviceHistory",
    "NoHistory",
    "RowHistory",
    "Unknown",
    "counter_delta",
    "rebooted",
]

_WRAP32 = 1 << 32


class Unknown(Exception):  # it is a value ("unknown"), not a failure
    """The expression cannot be decided from this poll."""


def counter_delta(prev: int, cur: int, *, bits: int | None, reboot: bool) -> int | None:
    """The increase of a value between two polls, or None when it cannot be known.

    Args:
        prev: The previous raw value.
        cur: The current raw value.
        bits: 32 or 64 for Counter32/Counter64; None for any other type (a
            gauge's delta may be negative).
        reboot: The agent restarted in between: counters started again from 0.

    A Counter32 that went down wrapped once past 2^32 (at 10 Gb/s it does every
    3.4 s of traffic, so the poll interval must stay shorter than a wrap). A
    Counter64 cannot wrap in practice, so going down means a reset: unknown.
    """
    if bits is None:
        return cur - prev
    if reboot:
        return None
    if cur >= prev:
        return cur - prev
    if bits == 32:
        return cur + _WRAP32 - prev
    return None


def rebooted(prev_uptime: int | None, cur_uptime: int | None, elapsed: float) -> bool:
    """Whether the agent restarted between two polls, from ``sysUpTime`` (centiseconds).

    The poller's rule (:func:`netalert.snmp.counters.agent_restarted`), so rates
    computed here and in the poller never disagree about a restart.
    """
    return agent_restarted(prev_uptime, cur_uptime, elapsed)


@dataclass(slots=True)
class DeviceHistory:
    """The previous poll of one device, as far as history functions need it."""

    time: float = 0.0
    uptime: int | None = None
    values: dict[tuple[str, str], Value] = field(default_factory=dict)


@dataclass(slots=True)
class RowHistory:
    """The history functions of one row of one poll (what ``_c`` is in compiled code)."""

    index: str
    raw: Mapping[str, Value]
    scalars: Mapping[str, Value]
    last: DeviceHistory
    now: float
    reboot: bool
    bits: Mapping[str, int | None]
    converters: Mapping[str, Converter]
    rates: Mapping[str, float] | None = None
    deltas: Mapping[str, int] | None = None

    def _old(self, name: str) -> Value:
        # Scalars are remembered under the index "" whatever row reads them.
        return self.last.values.get(("" if name in self.scalars else self.index, name))

    def _pair(self, name: str) -> tuple[int, int]:
        cur = self.raw.get(name)
        old = self._old(name)
        if not isinstance(cur, int) or not isinstance(old, int):
            raise Unknown(name)
        return old, cur

    def _given(self, given: Mapping[str, Any] | None, name: str) -> Any:
        """The poller's own figure for a counter, None when it gave none for any."""
        if given is None or self.bits.get(name) is None:
            return None
        value = given.get(name)
        if value is None:
            raise Unknown(name)  # the poller judged it unknowable (restart, discontinuity)
        return value

    def delta(self, name: str) -> int:
        """Increase since the previous poll (counter wraps handled)."""
        given = self._given(self.deltas, name)
        if given is not None:
            return int(given)
        old, cur = self._pair(name)
        value = counter_delta(old, cur, bits=self.bits.get(name), reboot=self.reboot)
        if value is None:
            raise Unknown(name)
        return value

    def rate(self, name: str) -> float:
        """Increase per second since the previous poll."""
        given = self._given(self.rates, name)
        if given is not None:
            return float(given)
        elapsed = self.now - self.last.time
        if elapsed <= 0:
            raise Unknown(name)
        return self.delta(name) / elapsed

    def changed(self, name: str) -> bool:
        """True when the value differs from the previous poll's."""
        old = self._old(name)
        if old is None or name not in self.raw:
            raise Unknown(name)
        return old != self.raw[name]

    def prev(self, name: str) -> Any:
        """The previous poll's value, converted like the current one."""
        old = self._old(name)
        if old is None:
            raise Unknown(name)
        convert = self.converters.get(name)
        return convert(old, "") if convert is not None else old


class NoHistory:
    """History functions where there is none (trap ``where``, ``confirm``): always unknown."""

    def rate(self, name: str) -> Any:
        """Unknown."""
        raise Unknown(name)

    delta = changed = prev = rate


NO_HISTORY = NoHistory()
