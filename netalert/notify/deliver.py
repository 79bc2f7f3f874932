"""The deliver stage: a batch the dedup stage let through becomes a :class:`Notification`.

Nothing here opens a socket: the service hands each notification to the mail
stage, which commits it to the outbox together with its notification log entry
(:meth:`netalert.notify.dispatcher.Dispatcher.sent`).
"""

from __future__ import annotations

from netalert.alerts.model import Alert
from netalert.notify.model import Notification
from netalert.notify.stage import Batch

__all__ = ["Deliver"]

_RANK = {"critical": 0, "warning": 1, "info": 2}


class Deliver:
    """Collects the notifications of a flush; :meth:`take` hands them over."""

    def __init__(self) -> None:
        self._out: list[Notification] = []

    def exec(self, batch: Batch) -> Batch | None:
        """Makes the batch's notification: the unmuted firing alerts, and the resolved ones
        a mail told firing (with ``send_resolved``), the most severe first."""
        if batch.reason is None:
            return None
        route = batch.route
        shown = list(batch.firing.values())
        if route.send_resolved:
            shown += [a for fp, a in batch.resolved.items() if fp in batch.told]
        self._out.append(
            Notification(
                route=route.name,
                recipients=route.to,
                group_key=batch.key,
                group_labels=dict(batch.labels),
                alerts=tuple(sorted(shown, key=_order)),
                reason=batch.reason,
                created=batch.now,
                held=batch.held,
            )
        )
        return batch

    def take(self) -> list[Notification]:
        """The notifications made since the last call, in the order they were made."""
        out, self._out = self._out, []
        return out


def _order(alert: Alert) -> tuple[int, str, str]:
    return (_RANK.get(alert.severity, 3), alert.device, alert.rule)
