"""How much of a group one mail carries: which alerts in full, the rest as counts,
and how long a value may be. Pure functions, no I/O.

A group can hold thousands of alerts (one trap OID each in a storm) and an
alert hundreds of varbinds of device text. A mail lists at most
``max_alerts`` alerts, the most important first (firing before resolved, then
by severity, then the oldest), and says how many more there are; the values it
prints are cut to a budget of characters per alert, marked ``[truncated]``.
:func:`netalert.mail.render.render_mail` picks the budget so the whole message
stays within ``max_bytes``.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from netalert import present
from netalert.mail.model import AlertLike

__all__ = [
    "CUT_MARK",
    "MailLimits",
    "Selection",
    "clip",
    "importance",
    "select_alerts",
    "severity_rank",
]

CUT_MARK = " … [truncated]"
_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}

A = TypeVar("A", bound=AlertLike)


@dataclass(frozen=True, slots=True)
class MailLimits:
    """``[limits]`` for mails: alerts listed in full, and bytes of the whole message."""

    max_alerts: int = 50
    max_bytes: int = 262_144


def severity_rank(severity: str) -> int:
    """0 for critical, 1 warning, 2 info, 9 for anything else (sorts last)."""
    return _SEVERITY_RANK.get(severity, 9)


def importance(alert: AlertLike) -> tuple[bool, int, float]:
    """Sort key, most important first: firing before resolved, by severity, then the
    newest change (firing: since it fired; resolved: since it resolved), so the subject
    and the top of the mail name what the reader must look at first."""
    changed = alert.ends_at if alert.ends_at is not None else alert.starts_at
    return (alert.ends_at is not None, severity_rank(alert.severity), -changed)


@dataclass(frozen=True, slots=True)
class Selection(Generic[A]):
    """The alerts a mail lists in full, and the counts of the whole group.

    Attributes:
        shown: At most ``max_alerts`` alerts, most important first.
        firing: Firing alerts in the whole group.
        resolved: Resolved alerts in the whole group.
        more_firing: Firing alerts not in ``shown``.
        more_resolved: Resolved alerts not in ``shown``.
    """

    shown: tuple[A, ...]
    firing: int
    resolved: int
    more_firing: int
    more_resolved: int

    @property
    def more(self) -> int:
        """Alerts of the group not listed in full."""
        return self.more_firing + self.more_resolved

    def first(self, count: int) -> Selection[A]:
        """The same group with only the first ``count`` of :attr:`shown` listed."""
        if count >= len(self.shown):
            return self
        dropped = self.shown[max(0, count) :]
        dropped_resolved = sum(1 for a in dropped if a.ends_at is not None)
        return Selection(
            shown=self.shown[: max(0, count)],
            firing=self.firing,
            resolved=self.resolved,
            more_firing=self.more_firing + len(dropped) - dropped_resolved,
            more_resolved=self.more_resolved + dropped_resolved,
        )

    def more_line(self) -> str:
        """``and 1,150 more: 1,100 firing, 50 resolved``; "" when every alert is listed."""
        if not self.more:
            return ""
        return (
            f"and {self.more:,} more: {self.more_firing:,} firing, {self.more_resolved:,} resolved"
        )


def select_alerts(alerts: Sequence[A], max_alerts: int) -> Selection[A]:
    """Picks the ``max_alerts`` most important alerts of a group and counts the others.

    Order: firing before resolved, then critical, warning, info, then the
    oldest first. Costs O(n log max_alerts), so a group of thousands is cheap.
    """
    resolved = sum(1 for a in alerts if a.ends_at is not None)
    firing = len(alerts) - resolved
    if len(alerts) <= max_alerts:
        shown = tuple(sorted(alerts, key=importance))
    else:
        shown = tuple(heapq.nsmallest(max(0, max_alerts), alerts, key=importance))
    shown_resolved = sum(1 for a in shown if a.ends_at is not None)
    return Selection(
        shown=shown,
        firing=firing,
        resolved=resolved,
        more_firing=firing - (len(shown) - shown_resolved),
        more_resolved=resolved - shown_resolved,
    )


def clip(text: str, limit: int, *, cut: bool = False) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and :data:`CUT_MARK`.

    ``cut`` says the text was already cut from something longer: it is marked
    whatever its length. The result has at most ``max(limit, len(CUT_MARK))``
    characters (:func:`netalert.present.clip` with the mail's mark).
    """
    return present.clip(text, limit, cut=cut, mark=CUT_MARK)
