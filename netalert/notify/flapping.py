"""The flapping stage's muter: an alert that keeps changing state is not mailed each time.

The rule engine decides flapping (:mod:`netalert.alerts.flap`); a flapping
alert is told once it settles, at its group's next flush.
"""

from __future__ import annotations

from netalert.alerts.model import Alert

__all__ = ["FlappingMuter"]


class FlappingMuter:
    """Mutes flapping alerts."""

    def mutes(self, alert: Alert, now: float) -> str | None:
        """``"flapping"`` while ``alert`` flaps."""
        return "flapping" if alert.flapping else None
