"""The dedup stage: mail a group only when its news differ from what its last mail told.

The decision is :func:`netalert.notify.nflog.decide`, against the group's
entry in the notification log (new or changed firing alerts, resolutions of
alerts that were told, or ``repeat_interval`` gone by).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from netalert.alerts.model import Alert
from netalert.notify.model import Reason
from netalert.notify.nflog import NotifyLog, decide
from netalert.notify.stage import Batch

__all__ = ["Dedup"]


class Dedup:
    """Ends a batch whose group has nothing new to say; says why otherwise.

    Args:
        nflog: The notification log.
        acked: True when every one of these firing alerts is acknowledged
            (``[ack]``, :mod:`netalert.ack`): then the group is not repeated.
    """

    def __init__(
        self,
        nflog: NotifyLog,
        acked: Callable[[Sequence[Alert]], bool] = lambda alerts: False,
    ) -> None:
        self.nflog = nflog
        self.acked = acked

    def exec(self, batch: Batch) -> Batch | None:
        """``batch`` with ``told`` and ``reason`` set, or None: nothing to mail now.

        Raises:
            sqlite3.Error: The notification log cannot be read.
        """
        route = batch.route
        prev = self.nflog.get(route.name, batch.key)
        firing = batch.firing
        reason = decide(
            prev,
            frozenset(firing),
            frozenset(batch.resolved),
            send_resolved=route.send_resolved,
            repeat_interval=route.repeat_interval.total_seconds(),
            now=batch.now,
        )
        if reason is None or (reason is Reason.REPEAT and self.acked(list(firing.values()))):
            return None
        told = prev.firing if prev else frozenset()
        # the constructor, not dataclasses.replace: this runs for every due group
        b = batch
        return Batch(b.route, b.key, b.labels, firing, b.resolved, b.now, b.muted, told, reason)
