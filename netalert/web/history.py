"""Cheap recorders the live stages feed, read by the status page at snapshot time.

* :class:`History` keeps traps per minute, the alert counts per minute and the
  last 100 traps. Recording a trap is a deque append and an int increment.
* :class:`DeviceBoard` keeps the last poll outcome of every device.

Both take timestamps from their callers (``now``, ``event.received``), so
tests drive them without a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from netalert.web.model import DeviceStatus, Series

if TYPE_CHECKING:
    from netalert.poll.poller import Reachability
    from netalert.poll.rows import PollResult
    from netalert.snmp.types import TrapEvent

__all__ = ["SEVERITIES", "DeviceBoard", "History"]

SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")
_STEP = 60.0


class History:
    """Per-minute counts over the last ``minutes`` minutes and the recent traps.

    Args:
        minutes: Length of the charts' window.
        recent: How many traps :attr:`recent_traps` keeps.
    """

    def __init__(self, *, minutes: int = 60, recent: int = 100) -> None:
        self.minutes = minutes
        self.recent_traps: deque[TrapEvent] = deque(maxlen=recent)
        self._traps: dict[int, int] = {}
        # minute -> severity -> (peak, last) active count recorded in that minute
        self._alerts: dict[int, dict[str, tuple[int, int]]] = {}
        self._carry: dict[str, int] = {}  # last counts before the window

    def record_trap(self, event: TrapEvent) -> None:
        """Counts ``event`` (``storm_count`` traps) in its minute and keeps it as recent."""
        minute = int(event.received // _STEP)
        self._traps[minute] = self._traps.get(minute, 0) + event.storm_count
        self.recent_traps.append(event)
        if len(self._traps) > self.minutes + 1:
            self._trim(minute)

    def record_alerts(self, counts: Mapping[str, int], now: float) -> None:
        """Records the number of active alerts per severity at ``now``.

        Call it whenever the counts may have changed (a transition) and
        periodically; minutes without a record repeat the last known counts.
        """
        minute = int(now // _STEP)
        slot = self._alerts.setdefault(minute, {})
        for severity in {*SEVERITIES, *counts}:
            n = counts.get(severity, 0)
            peak = slot[severity][0] if severity in slot else n
            slot[severity] = (max(peak, n), n)
        if len(self._alerts) > self.minutes + 1:
            self._trim(minute)

    def _trim(self, minute: int) -> None:
        first = minute - self.minutes
        for old in sorted(m for m in self._alerts if m <= first):
            self._carry = {sev: last for sev, (_, last) in self._alerts.pop(old).items()}
        for old in [m for m in self._traps if m <= first]:
            del self._traps[old]

    def traps_per_minute(self, now: float) -> Series:
        """Traps received in each of the last ``minutes`` minutes (the last one running)."""
        first = int(now // _STEP) - self.minutes + 1
        values = tuple(float(self._traps.get(first + i, 0)) for i in range(self.minutes))
        return Series("traps", first * _STEP, _STEP, values)

    def alerts_by_severity(self, now: float) -> tuple[Series, ...]:
        """Peak active alerts per minute and severity over the last ``minutes`` minutes."""
        first = int(now // _STEP) - self.minutes + 1
        last = dict(self._carry)
        for m in sorted(m for m in self._alerts if m < first):
            last = {sev: lst for sev, (_, lst) in self._alerts[m].items()}
        columns: dict[str, list[float]] = {sev: [] for sev in SEVERITIES}
        for i in range(self.minutes):
            slot = self._alerts.get(first + i)
            for sev, column in columns.items():
                if slot is not None and sev in slot:
                    column.append(float(slot[sev][0]))
                    last[sev] = slot[sev][1]
                else:
                    column.append(float(last.get(sev, 0)))
        return tuple(
            Series(sev, first * _STEP, _STEP, tuple(vals)) for sev, vals in columns.items()
        )


class DeviceBoard:
    """The last poll outcome of every device, for the status page."""

    def __init__(self) -> None:
        self._state: dict[str, DeviceStatus] = {}

    def record_poll(self, result: PollResult) -> None:
        """Takes one poll result (ok, partial, timeout, auth, error)."""
        old = self._state.get(result.device) or DeviceStatus(result.device, result.address)
        answered = result.status in ("ok", "partial", "auth")
        reachable = True if answered else False if result.status == "timeout" else old.reachable
        # The last answer's time says nothing about a device that stopped answering.
        response_ms = round(result.duration * 1000, 1) if answered else old.response_ms
        if reachable is False:
            response_ms = None
        failed = result.status != "ok" and bool(result.error)
        self._state[result.device] = DeviceStatus(
            name=result.device,
            address=result.address,
            reachable=reachable,
            last_poll=result.started + result.duration,
            response_ms=response_ms,
            result=result.status,
            last_error=result.error if failed else old.last_error,
            last_error_at=result.started + result.duration if failed else old.last_error_at,
        )

    def record_reachability(self, change: Reachability) -> None:
        """Takes a reachability change the poller reported."""
        old = self._state.get(change.device) or DeviceStatus(change.device, change.address)
        self._state[change.device] = DeviceStatus(
            name=old.name,
            address=change.address or old.address,
            reachable=change.reachable,
            last_poll=old.last_poll,
            response_ms=old.response_ms if change.reachable else None,
            result=old.result,
            last_error=old.last_error if change.reachable else change.reason,
            last_error_at=old.last_error_at if change.reachable else change.time,
        )

    def forget(self, name: str) -> None:
        """Drops a device removed from the config."""
        self._state.pop(name, None)

    def devices(self, configured: Iterable[tuple[str, str]]) -> tuple[DeviceStatus, ...]:
        """The status of each configured ``(name, address)``, in config order."""
        return tuple(
            self._state.get(name) or DeviceStatus(name, address) for name, address in configured
        )
