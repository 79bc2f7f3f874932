"""Recurring maintenance windows from config: weekdays, a time span, a time zone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from netalert.alerts.model import Alert
from netalert.config.models import Maintenance
from netalert.matchers import Matcher, matches_all

__all__ = ["MaintenanceMuter", "in_maintenance", "window_active"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def window_active(window: Maintenance, now: float) -> bool:
    """True when ``now`` (unix seconds) falls inside the recurring window.

    A window whose end is not after its start crosses midnight: it starts on a
    listed day and ends on the next day. ``start == end`` means the whole day.
    """
    zone = ZoneInfo(window.timezone)
    local = datetime.fromtimestamp(now, zone)
    start = time.fromisoformat(window.start)
    end = time.fromisoformat(window.end)
    days = {DAYS.index(d) for d in window.days} if window.days else set(range(7))
    clock = local.time().replace(tzinfo=None)
    if start == end:
        return local.weekday() in days
    if start < end:
        return local.weekday() in days and start <= clock < end
    # Crosses midnight: the part after start belongs to today, the part before end to yesterday.
    if clock >= start:
        return local.weekday() in days
    if clock < end:
        return (local - timedelta(days=1)).weekday() in days
    return False


def in_maintenance(
    windows: Sequence[Maintenance], labels: Mapping[str, str], now: float
) -> str | None:
    """Returns the name of an active window covering ``labels``, or None."""
    for window in windows:
        if matches_all(window.matchers, labels) and window_active(window, now):
            return window.name
    return None


class MaintenanceMuter:
    """The maintenance stage's muter: the config's recurring windows.

    Which windows are open is worked out once per ``now`` (a flush asks for
    every alert of every due group at one time).
    """

    def __init__(self, windows: Sequence[Maintenance]) -> None:
        self.windows = tuple((w.name, w.matchers, w) for w in windows)
        self._open: tuple[float, list[tuple[str, tuple[Matcher, ...]]]] = (float("nan"), [])

    def mutes(self, alert: Alert, now: float) -> str | None:
        """``"maintenance <name>"`` while a window covering ``alert`` is open."""
        at, open_now = self._open
        if at != now:
            open_now = [(n, m) for n, m, w in self.windows if window_active(w, now)]
            self._open = (now, open_now)
        for name, matchers in open_now:
            if matches_all(matchers, alert.labels):
                return f"maintenance {name}"
        return None
