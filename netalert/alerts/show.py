"""Alerts as ``netalert alerts`` prints them: an aligned table, or JSON objects."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from netalert.alerts.model import Alert
from netalert.present import clip, varbind_json
from netalert.tables import format_table

__all__ = ["alert_json", "alert_table", "short_ids"]

_FIXED = ("rule", "severity", "device")
_VALUE_WIDTH = 40  # characters of VALUE in the table; a longer value ends in "…"
_ID_WIDTH = 8  # characters of a fingerprint in ID; more where two listed alerts share them


def short_ids(fingerprints: Collection[str]) -> dict[str, str]:
    """Each fingerprint's ID: its first 8 characters, or as many as tell it from the others.

    ``netalert ack`` takes a fingerprint or its first 6+ characters and refuses an
    ambiguous one, so the table never shows two IDs where one starts the other.
    """
    width = _ID_WIDTH
    unique = set(fingerprints)
    while width < max(map(len, unique), default=0) and len({f[:width] for f in unique}) < len(
        unique
    ):
        width += 1
    return {f: f[:width] for f in unique}


def _when(t: float | None) -> str:
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def alert_table(
    alerts: list[Alert], *, acked: Collection[str] = (), silenced: Collection[str] = ()
) -> str:
    """One line per alert under a header; labels other than rule/severity/device last.

    ID is the start of the fingerprint, as ``netalert ack`` takes it. ``acked`` and
    ``silenced`` are fingerprints, shown in STATE. A VALUE longer than 40 characters
    is cut and ends in "…" (``--json`` has it whole).
    """
    ids = short_ids([a.fingerprint for a in alerts])
    header = ("ID", "STATE", "SEVERITY", "RULE", "DEVICE", "SINCE", "VALUE", "COUNT", "LABELS")
    rows: list[tuple[str, ...]] = []
    for a in alerts:
        state = a.state.value
        if a.flapping:
            state += ",flapping"
        if a.silenced:
            state += ",inhibited"
        if a.fingerprint in silenced:  # an active silence covers it (issue 19)
            state += ",silenced"
        if a.fingerprint in acked:  # [ack] (issue 17)
            state += ",acked"
        labels = " ".join(f"{k}={v}" for k, v in sorted(a.labels.items()) if k not in _FIXED)
        rows.append(
            (
                ids[a.fingerprint],
                state,
                a.severity,
                a.rule,
                a.device,
                _when(a.starts_at),
                clip(a.value, _VALUE_WIDTH),
                str(a.count),
                labels,
            )
        )
    return format_table(header, rows)


def alert_json(alert: Alert) -> dict[str, Any]:
    """An alert as a JSON-ready dict (times as unix seconds and ISO 8601 UTC)."""
    return {
        "fingerprint": alert.fingerprint,
        "rule": alert.rule,
        "severity": alert.severity,
        "device": alert.device,
        "state": alert.state.value,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": alert.starts_at,
        "starts_at_iso": _when(alert.starts_at),
        "ends_at": alert.ends_at,
        "updated_at": alert.updated_at,
        "value": alert.value,
        "count": alert.count,
        "flapping": alert.flapping,
        "silenced": alert.silenced,
        "source": alert.source,
        "varbinds": [varbind_json(vb) for vb in alert.varbinds],
    }
