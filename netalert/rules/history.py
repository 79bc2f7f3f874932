"""``rate()``, ``delta()``, ``changed()``, ``prev()``: values against the previous poll.

Counters are the poller's: it computes their increase and rate between two
polls (wraps, agent restarts, discontinuities; :mod:`netalert.snmp.counters`)
and hands them with the poll (:class:`netalert.snmp.rows.Row`); a counter it
gave no figure for is unknown. For anything else (a gauge's ``delta()``,
``changed()``, ``prev()``) the engine keeps, per device, the previous raw value
and time of every object a rule reads through these functions. When no answer
can be given the function raises :class:`Unknown`, which makes the whole
expression unknown: the alert keeps its state rather than firing or resolving
on a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netalert.rules.values import Converter
from netalert.snmp.types import Value

__all__ = [
    "NO_HISTORY",
    "DeviceHistory",
    "NoHistory",
    "RowHistory",
    "Unknown",
]


class Unknown(Exception):  # it is a value ("unknown"), not a failure
    """The expression cannot be decided from this poll."""


@dataclass(slots=True)
class DeviceHistory:
    """The previous poll of one device, as far as history functions need it."""

    time: float = 0.0
    values: dict[tuple[str, str], Value] = field(default_factory=dict)


@dataclass(slots=True)
class RowHistory:
    """The history functions of one row of one poll (what ``_c`` is in compiled code)."""

    index: str
    raw: Mapping[str, Value]
    scalars: Mapping[str, Value]
    last: DeviceHistory
    now: float
    bits: Mapping[str, int | None]
    converters: Mapping[str, Converter]
    rates: Mapping[str, float]
    deltas: Mapping[str, int]

    def _old(self, name: str) -> Value:
        # Scalars are remembered under the index "" whatever row reads them.
        return self.last.values.get(("" if name in self.scalars else self.index, name))

    def _pair(self, name: str) -> tuple[int, int]:
        cur = self.raw.get(name)
        old = self._old(name)
        if not isinstance(cur, int) or not isinstance(old, int):
            raise Unknown(name)
        return old, cur

    def _given(self, given: Mapping[str, Any], name: str) -> Any:
        """The poller's figure for a counter; None for anything else."""
        if self.bits.get(name) is None:
            return None
        value = given.get(name)
        if value is None:
            raise Unknown(name)  # the poller judged it unknowable (first, restart, discontinuity)
        return value

    def delta(self, name: str) -> int:
        """Increase since the previous poll (a counter's from the poller: wraps handled)."""
        given = self._given(self.deltas, name)
        if given is not None:
            return int(given)
        old, cur = self._pair(name)
        return cur - old

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
