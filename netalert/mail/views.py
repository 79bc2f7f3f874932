"""Alerts as mail templates print them, each within a budget of characters.

Every value here comes from a device or a rule template over device data: it
passes :func:`~netalert.mail.headers.header_text` (one line) or
:func:`~netalert.mail.headers.body_text` (controls removed), and is cut to its
share of the alert's budget with :func:`~netalert.mail.bounds.clip` *before*
the character-by-character cleaning, so a 60 KB varbind costs what is shown,
not what was sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from netalert.mail.bounds import CUT_MARK, clip
from netalert.mail.headers import body_text, header_text
from netalert.mail.model import AlertLike, VarBindLike
from netalert.present import octets_text, value_text
from netalert.units import duration

__all__ = ["AlertView", "VarBindView", "alert_view", "format_varbind_value", "line", "when"]

# labels every alert has; shown in their own lines, not among "Labels"
_OWN_LABELS = frozenset({"rule", "alertname", "severity", "device"})
_LINE = 1000  # a one-line field never prints more, whatever the budget
_VARBIND_COST = 8  # what a listed varbind costs besides its name and value (separators)


@dataclass(frozen=True, slots=True)
class VarBindView:
    """A varbind as templates print it: ``IF-MIB::ifOperStatus.3`` = ``down(2)``."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class AlertView:
    """One alert prepared for templates (times formatted, labels ordered)."""

    state: str
    rule: str
    severity: str
    device: str
    summary: str
    description: str
    value: str
    since: str
    duration: str
    ended: str
    count: int
    flapping: bool
    source: str
    labels: tuple[tuple[str, str], ...]
    varbinds: tuple[VarBindView, ...]
    alert: Any
    trap_source: str = ""  # a trap alert's sender: "192.0.2.9:50162 (SNMPv2c)"


def format_varbind_value(vb: VarBindLike, limit: int | None = None) -> str:
    """A varbind's value for humans, as :func:`netalert.present.value_text` writes it.

    With ``limit``, only about the value's first ``limit`` bytes are looked at
    and the text has at most ``max(limit, len(CUT_MARK))`` characters; a value
    that was cut ends in :data:`~netalert.mail.bounds.CUT_MARK`.
    """
    return value_text(vb.type, vb.value, vb.label, limit=limit, mark=CUT_MARK)


def _varbind_name(vb: VarBindLike) -> str:
    if vb.name:
        return f"{vb.name}.{vb.index}" if vb.index else vb.name
    return vb.oid


def when(ts: float) -> str:
    """``2026-09-21 14:13:20 UTC``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def line(value: object, limit: int = _LINE) -> str:
    """One line of at most ``limit`` characters (a forged CR/LF does not start a new one)."""
    if type(value) is str and len(value) <= limit and value.isprintable() and "  " not in value:
        return value.strip()  # nothing to clean, collapse or cut (see header_text)
    # cut before cleaning (cleaning looks at every character); the slack covers
    # the white space cleaning collapses
    room = 4 * limit + 64
    text = octets_text(value, limit=room) if isinstance(value, bytes) else str(value)
    cleaned = header_text(text[:room], limit=room)
    return clip(cleaned, limit, cut=len(text) > room)


class _Clipper:
    """Cuts the fields of one alert to shares of ``budget`` and remembers whether it cut."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.cut = False

    def one_line(self, value: object, share: int, floor: int) -> str:
        limit = min(_LINE, max(self.budget // share, floor))
        text = line(value, limit)
        self.cut |= text.endswith(CUT_MARK)
        return text

    def text(self, value: str, share: int, floor: int) -> str:
        limit = max(self.budget // share, floor)
        out = clip(body_text(value[:limit]).strip(), limit, cut=len(value) > limit)
        self.cut |= out.endswith(CUT_MARK)
        return out

    def varbinds(self, varbinds: Sequence[VarBindLike]) -> tuple[VarBindView, ...]:
        left = self.budget // 2
        name_limit = min(_LINE, max(self.budget // 8, 80))
        value_limit = min(_LINE, max(self.budget // 8, 40))
        out: list[VarBindView] = []
        for number, vb in enumerate(varbinds):
            if left <= 0:
                rest = len(varbinds) - number
                out.append(VarBindView("…", f"{rest:,} more varbinds [truncated]"))
                self.cut = True
                break
            name = line(_varbind_name(vb), name_limit)
            value = line(format_varbind_value(vb, value_limit), value_limit)
            self.cut |= value.endswith(CUT_MARK) or name.endswith(CUT_MARK)
            out.append(VarBindView(name, value))
            left -= len(name) + len(value) + _VARBIND_COST
        return tuple(out)


def alert_view(alert: AlertLike, now: float, budget: int) -> tuple[AlertView, bool]:
    """The view of ``alert`` with about ``budget`` characters of device data at most.

    Shares of the budget: varbinds half of it (those that do not fit are
    counted in a last ``… N more varbinds [truncated]`` row), the description
    a quarter, the summary a quarter, the value and each label an eighth
    (every one-line field also stops at 1,000 characters). Returns the view
    and whether anything was cut.
    """
    ended = alert.ends_at
    clipper = _Clipper(budget)
    extra = sorted(
        (clipper.one_line(k, 16, 40), clipper.one_line(v, 8, 40))
        for k, v in alert.labels.items()
        if k not in _OWN_LABELS
    )
    view = AlertView(
        state="RESOLVED" if ended is not None else "FIRING",
        rule=line(alert.rule),
        severity=line(alert.severity),
        device=line(alert.device),
        summary=clipper.one_line(alert.annotations.get("summary", ""), 4, 80),
        description=clipper.text(alert.annotations.get("description", ""), 4, 80),
        value=clipper.one_line(alert.value, 8, 40),
        since=when(alert.starts_at),
        duration=duration((ended if ended is not None else now) - alert.starts_at),
        ended=when(ended) if ended is not None else "",
        count=alert.count,
        flapping=alert.flapping,
        source=alert.source,
        trap_source=line(alert.annotations.get("trap_source", "")),
        labels=tuple(extra),
        varbinds=clipper.varbinds(alert.varbinds),
        alert=alert,
    )
    return view, clipper.cut
