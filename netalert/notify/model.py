"""Values the notify stages produce."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from netalert.alerts.model import Alert

__all__ = ["Notification", "Reason"]


class Reason(StrEnum):
    """Why a group is mailed now."""

    NEW = "new"
    CHANGED = "changed"
    REPEAT = "repeat"
    RESOLVED = "resolved"
    FLAPPING = "flapping"


@dataclass(frozen=True, slots=True)
class Notification:
    """One e-mail's worth: a group of alerts for one route's recipients.

    ``held`` are the fingerprints of alerts of the group that an earlier mail
    told as firing, that still fire, and that are muted now (a silence, a
    maintenance window): not listed in this mail, but still told, so their
    resolution is mailed when it comes.
    """

    route: str
    recipients: tuple[str, ...]
    group_key: str
    group_labels: Mapping[str, str]
    alerts: tuple[Alert, ...]
    reason: Reason
    created: float
    held: frozenset[str] = frozenset()

    @property
    def firing(self) -> tuple[Alert, ...]:
        """The alerts of the group still firing."""
        return tuple(a for a in self.alerts if a.ends_at is None)

    @property
    def resolved(self) -> tuple[Alert, ...]:
        """The alerts of the group that resolved since the last mail."""
        return tuple(a for a in self.alerts if a.ends_at is not None)
