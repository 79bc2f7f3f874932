"""The inhibit stage's muter: an alert is not mailed while a more basic one explains it.

Today's one inhibition is built in: while ``DeviceUnreachable`` fires for a
device, the rule engine marks that device's poll alerts ``silenced`` (their
values are stale, not news), and this muter holds them back.
"""

from __future__ import annotations

from netalert.alerts.model import Alert

__all__ = ["Inhibitor"]


class Inhibitor:
    """Mutes the alerts a firing ``DeviceUnreachable`` of their device inhibits."""

    def mutes(self, alert: Alert, now: float) -> str | None:
        """``"inhibited by DeviceUnreachable"`` for an inhibited alert."""
        return "inhibited by DeviceUnreachable" if alert.silenced else None
