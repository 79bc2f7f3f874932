"""``netalert ack`` / ``netalert unack``: the same acknowledgement as a reply, from a shell."""

from __future__ import annotations

import time
from typing import Any

from netalert.ack.store import Ack, AckStore, audit, is_acked
from netalert.alerts.model import Alert, AlertState
from netalert.alerts.store import load_alerts
from netalert.errors import NetalertError
from netalert.state.db import Database

__all__ = ["ack_alert", "ack_json", "current_acks", "find_alert", "unack_alert"]

_PREFIX_MIN = 6


def find_alert(alerts: list[Alert], alert_id: str) -> Alert:
    """The firing alert whose fingerprint is ``alert_id`` (or starts with it, 6+ characters).

    Raises:
        NetalertError: None, or more than one, matches.
    """
    wanted = alert_id.strip().lower()
    firing = [a for a in alerts if a.state is AlertState.FIRING]
    exact = [a for a in firing if a.fingerprint == wanted]
    found = exact or (
        [a for a in firing if a.fingerprint.startswith(wanted)]
        if len(wanted) >= _PREFIX_MIN
        else []
    )
    if not found:
        raise NetalertError(f"no firing alert with id {alert_id!r} (netalert alerts lists them)")
    if len(found) > 1:
        raise NetalertError(f"alert id {alert_id!r} is ambiguous: give more of it")
    return found[0]


def ack_alert(db: Database, alert_id: str, *, by: str, comment: str) -> Alert:
    """Acknowledges a firing alert (via ``cli``); returns it.

    Raises:
        NetalertError: No such firing alert.
    """
    store = AckStore(db)
    alert = find_alert(load_alerts(db), alert_id)
    with db.transaction() as conn:
        store.put_ack(
            conn, Ack(alert.fingerprint, alert.starts_at, by, time.time(), comment, "cli")
        )
    audit(
        "ack",
        alert=alert.fingerprint,
        rule=alert.rule,
        device=alert.device,
        by=by,
        via="cli",
        comment=comment,
    )
    return alert


def unack_alert(db: Database, alert_id: str, *, by: str) -> Alert:
    """Removes a firing alert's acknowledgement; returns it.

    Raises:
        NetalertError: No such firing alert, or it was not acknowledged.
    """
    store = AckStore(db)
    alert = find_alert(load_alerts(db), alert_id)
    with db.transaction() as conn:
        removed = store.delete_ack(conn, alert.fingerprint)
    if not removed:
        raise NetalertError(f"alert {alert.fingerprint} is not acknowledged")
    audit("unack", alert=alert.fingerprint, rule=alert.rule, device=alert.device, by=by, via="cli")
    return alert


def current_acks(db: Database, alerts: list[Alert]) -> dict[str, Ack]:
    """The acknowledgements in force for ``alerts``, by fingerprint."""
    acks = AckStore(db).acks()
    return {a.fingerprint: acks[a.fingerprint] for a in alerts if is_acked(a, acks)}


def ack_json(ack: Ack | None) -> dict[str, Any] | None:
    """An ack as ``netalert alerts --json`` shows it (None: not acknowledged)."""
    if ack is None:
        return None
    return {"by": ack.by, "at": ack.at, "comment": ack.comment, "via": ack.via}
