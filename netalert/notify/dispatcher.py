"""Notify composed: alerts in, :class:`Notification` values out.

The stages, in Alertmanager's order, each its own unit:

1. route (:mod:`~netalert.notify.routes`): the routes of the tree that take the alert;
2. group (:mod:`~netalert.notify.group`): one aggregation group per route and
   ``group_by`` values, due after ``group_wait``, then every ``group_interval``;
3. at each group's flush, the :class:`~netalert.notify.stage.Stage` chain:
   inhibit, silence, maintenance and flapping (each a
   :class:`~netalert.notify.stage.MuteStage`), dedup against the notification log
   (:mod:`~netalert.notify.dedup`; no repeat of acknowledged alerts), deliver
   (:mod:`~netalert.notify.deliver`).

Muting follows Alertmanager: a muted alert sends nothing, its resolution
included, unless a mail already told it firing; then it stays told while
muted, and its resolution is mailed.

Nothing here opens a socket: the caller turns each Notification into an
outbox entry and calls :meth:`Dispatcher.sent` in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from netalert.alerts.model import Alert, AlertState
from netalert.config.models import Inhibit, Maintenance, Route
from netalert.notify.dedup import Dedup
from netalert.notify.deliver import Deliver
from netalert.notify.flapping import FlappingMuter
from netalert.notify.group import Groups
from netalert.notify.inhibit import Inhibitor
from netalert.notify.maintenance import MaintenanceMuter
from netalert.notify.model import Notification
from netalert.notify.nflog import NotifyLog
from netalert.notify.routes import compile_routes
from netalert.notify.silences import Silence, Silencer
from netalert.notify.stage import Batch, Muter, MuteStage, Stage, first_mute, run_stages

__all__ = ["Dispatcher"]


class Dispatcher:
    """Routes alerts into groups and says which groups to mail when.

    Args:
        routes: ``[[routes]]`` of the config.
        nflog: The notification log (dedup reads it, :meth:`sent` writes it).
        maintenance: ``[[maintenance]]`` of the config.
        silences: Returns the silences not yet ended; read once per flush.
        inhibit: ``[[inhibit]]`` of the config.
        acked: True when every one of these firing alerts is acknowledged
            (``[ack]``): the dedup stage then sends no repeat.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        nflog: NotifyLog,
        maintenance: Sequence[Maintenance] = (),
        silences: Callable[[float], Sequence[Silence]] = lambda now: (),
        inhibit: Sequence[Inhibit] = (),
        acked: Callable[[Sequence[Alert]], bool] = lambda alerts: False,
    ) -> None:
        self._tree = compile_routes(routes)
        self._nflog = nflog
        self._silences = silences
        self._inhibitor = Inhibitor(inhibit)
        self._maintenance = MaintenanceMuter(maintenance)
        self._acked = acked
        self._groups = Groups(lambda route, key: nflog.get(route, key) is not None)
        self.unrouted = 0

    def update(self, alert: Alert, now: float) -> None:
        """Takes a new or changed alert into the groups of the routes that take it."""
        self._inhibitor.observe(alert)
        if alert.state is AlertState.PENDING:
            return
        routes = self._tree.match(alert.labels)
        if not routes:
            self.unrouted += 1
            return
        for route in routes:
            self._groups.add(route, alert, now)

    def next_flush(self) -> float | None:
        """When the earliest group is due, None when there is no group."""
        return self._groups.next_flush()

    def flush(self, now: float, *, force: bool = False) -> list[Notification]:
        """Returns the notifications due at ``now``; advances the groups' timers.

        ``force`` flushes every group whatever its timer (the drain on stop: a
        group still in its ``group_wait`` is told now rather than forgotten).
        The caller must persist each returned notification (outbox) and call
        :meth:`sent` for it in the same transaction.
        """
        deliver = Deliver()
        stages: list[Stage] = [MuteStage(m) for m in self._muters()]
        stages += [Dedup(self._nflog, self._acked), deliver]

        def handle(batch: Batch) -> bool:
            return run_stages(stages, batch) is not None

        self._groups.flush(now, force, handle)
        return deliver.take()

    def _muters(self) -> list[Muter]:
        """The mute stages' muters in order, the silences to be read afresh."""
        return [
            self._inhibitor,
            Silencer(self._silences),
            self._maintenance,
            FlappingMuter(),
        ]

    def sent(self, conn: Any, notification: Notification) -> None:
        """Records ``notification`` in the notification log, inside ``conn``'s transaction.

        Alerts it holds back (told before, muted now) stay recorded as told.
        """
        firing = frozenset(a.fingerprint for a in notification.firing) | notification.held
        resolved = frozenset(a.fingerprint for a in notification.resolved)
        self._nflog.record(
            conn, notification.route, notification.group_key, firing, resolved, notification.created
        )

    def forget(self, alerts: Collection[Alert]) -> None:
        """Drops ``alerts`` from every group, unsaid (a cluster node lost their shard: their
        new owner tells them); a group left empty goes, and they inhibit nothing more."""
        for alert in alerts:
            if alert.state is AlertState.FIRING:
                self._inhibitor.observe(replace(alert, state=AlertState.RESOLVED))
        self._groups.forget({alert.fingerprint for alert in alerts})

    def muted(self, alerts: Sequence[Alert], now: float) -> Mapping[str, str]:
        """For the status page: fingerprint → why it is muted, for the muted ones."""
        muters = self._muters()
        out = {}
        for alert in alerts:
            why = first_mute(muters, alert, now)
            if why is not None:
                out[alert.fingerprint] = why
        return out
