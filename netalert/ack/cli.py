"""``netalert ack`` / ``netalert unack``: the same acknowledgement as a reply, from a shell."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from netalert.ack.store import Ack, AckTables, audit, is_acked
from netalert.alerts.model import Alert, AlertState
from netalert.errors import NetalertError

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
    if not found and not exact and len(wanted) < _PREFIX_MIN:
        raise NetalertError(
            f"alert id {alert_id!r} is too short: give {_PREFIX_MIN} or more characters"
            " of its fingerprint (the ID column of `netalert alerts`)"
        )
    if not found:
        raise NetalertError(
            f"no firing alert with id {alert_id!r} (the ID column of `netalert alerts`, or the"
            f" fingerprint of `netalert alerts --json`, or {_PREFIX_MIN} or more of its first"
            " characters)"
        )
    if len(found) > 1:
        raise NetalertError(f"alert id {alert_id!r} is ambiguous: give more of it")
    return found[0]


def ack_alert(
    tables: AckTables, alerts: list[Alert], alert_id: str, *, by: str, comment: str
) -> Alert:
    """Acknowledges a firing alert of ``alerts`` (via ``cli``); returns it.

    Raises:
        NetalertError: No such firing alert.
    """
    alert = find_alert(alerts, alert_id)
    now = time.time()
    ack = Ack(alert.fingerprint, alert.starts_at, by, now, comment, "cli")
    asyncio.run(tables.apply(None, "ack", now, put=[ack], delete=[]))
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


def unack_alert(tables: AckTables, alerts: list[Alert], alert_id: str, *, by: str) -> Alert:
    """Removes a firing alert's acknowledgement; returns it.

    Raises:
        NetalertError: No such firing alert, or it was not acknowledged.
    """
    alert = find_alert(alerts, alert_id)
    if not asyncio.run(
        tables.apply(None, "unack", time.time(), put=[], delete=[alert.fingerprint])
    ):
        raise NetalertError(f"alert {alert.fingerprint} is not acknowledged")
    audit("unack", alert=alert.fingerprint, rule=alert.rule, device=alert.device, by=by, via="cli")
    return alert


def current_acks(acks: Mapping[str, Ack], alerts: list[Alert]) -> dict[str, Ack]:
    """The acknowledgements of ``acks`` in force for ``alerts``, by fingerprint."""
    return {a.fingerprint: acks[a.fingerprint] for a in alerts if is_acked(a, acks)}


def ack_json(ack: Ack | None) -> dict[str, Any] | None:
    """An ack as ``netalert alerts --json`` shows it (None: not acknowledged)."""
    if ack is None:
        return None
    return {"by": ack.by, "at": ack.at, "comment": ack.comment, "via": ack.via}
