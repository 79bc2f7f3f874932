"""Grouping and flushing: alerts in, :class:`Notification` values out.

The dispatcher keeps one aggregation group per (route, group_by values). A new
group is flushed ``group_wait`` after its first alert, then every
``group_interval``; at each flush the mute stage (silences, maintenance,
flapping, pending) and the dedup stage (:func:`netalert.notify.nflog.decide`)
decide whether a mail goes out.

Muting follows Alertmanager: a muted alert sends nothing, its resolution
included, unless a mail already told it firing; then it stays told while
muted, and its resolution is mailed.

Nothing here opens a socket: the caller turns each Notification into an
outbox entry and calls :meth:`Dispatcher.sent` in the same transaction.
"""

from __future__ import annotations

import heapq
import itertools
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from netalert.alerts.model import Alert, AlertState
from netalert.config.models import Maintenance, Route
from netalert.notify.maintenance import in_maintenance
from netalert.notify.model import Notification, Reason
from netalert.notify.nflog import NotificationLog, decide
from netalert.notify.routes import group_key, match_route, route_name
from netalert.notify.silences import Silence, is_silenced

__all__ = ["Dispatcher", "mute_reason"]


def mute_reason(
    alert: Alert,
    silences: Sequence[Silence],
    windows: Sequence[Maintenance],
    now: float,
) -> str | None:
    """Why a firing alert must not be mailed now (None: it may be).

    Returns ``"inhibited"`` (a firing DeviceUnreachable of the same device),
    ``"silence <id>"``, ``"maintenance <name>"`` or ``"flapping"``.
    """
    if alert.silenced:
        return "inhibited by DeviceUnreachable"
    labels = alert.labels
    silence = is_silenced(silences, labels, now)
    if silence is not None:
        return f"silence {silence}"
    window = in_maintenance(windows, labels, now)
    if window is not None:
        return f"maintenance {window}"
    if alert.flapping:
        return "flapping"
    return None


@dataclass(slots=True)
class _Group:
    route_index: int
    route: str
    key: str
    labels: dict[str, str]
    next_flush: float
    order: int  # creation order: due groups are told in the order they were made
    alerts: dict[str, Alert] = field(default_factory=dict)


class Dispatcher:
    """Routes alerts into groups and says which groups to mail when."""

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        nflog: NotificationLog,
        maintenance: Sequence[Maintenance] = (),
        silences: Callable[[float], Sequence[Silence]] = lambda now: (),
        acked: Callable[[Sequence[Alert]], bool] = lambda alerts: False,
    ) -> None:
        self._routes = list(routes)
        # [ack] (issue 17): True when every one of these firing alerts is acknowledged
        self._acked = acked
        self._maintenance = list(maintenance)
        self._silences = silences
        self._nflog = nflog
        self._groups: dict[tuple[int, str], _Group] = {}
        # (next_flush, order, group id) of every timer set; an entry whose time is no
        # longer its group's is stale and skipped. A flush then costs what is due,
        # not a walk over every group (thousands in a storm of distinct alerts).
        self._timers: list[tuple[float, int, tuple[int, str]]] = []
        self._orders = itertools.count()
        self.unrouted = 0

    def update(self, alert: Alert, now: float) -> None:
        """Takes a new or changed alert into its group."""
        if alert.state is AlertState.PENDING:
            return
        index = match_route(self._routes, alert.labels)
        if index is None:
            self.unrouted += 1
            return
        route = self._routes[index]
        name = route_name(index, route)
        key = group_key(name, route.group_by, alert.labels)
        group = self._groups.get((index, key))
        if group is None:
            if alert.state is AlertState.RESOLVED and self._nflog.get(name, key) is None:
                return  # resolved before anyone was told: nothing to say
            labels = {n: alert.labels.get(n, "") for n in route.group_by if n != "..."}
            due = now + route.group_wait.total_seconds()
            group = _Group(index, name, key, labels, due, next(self._orders))
            self._groups[(index, key)] = group
            heapq.heappush(self._timers, (due, group.order, (index, key)))
        group.alerts[alert.fingerprint] = alert

    def next_flush(self) -> float | None:
        """When the earliest group is due, None when there is no group."""
        return min((g.next_flush for g in self._groups.values()), default=None)

    def flush(self, now: float, *, force: bool = False) -> list[Notification]:
        """Returns the notifications due at ``now``; advances the groups' timers.

        ``force`` flushes every group whatever its timer (the drain on stop: a
        group still in its ``group_wait`` is told now rather than forgotten).
        The caller must persist each returned notification (outbox) and call
        :meth:`sent` for it in the same transaction.
        """
        out: list[Notification] = []
        due = self._due(now, force)
        done = 0  # due groups given their next timer so far
        try:
            silences = self._silences(now) if due else ()
            for gid, group in due:
                route = self._routes[group.route_index]
                group.next_flush = now + route.group_interval.total_seconds()
                heapq.heappush(self._timers, (group.next_flush, group.order, gid))
                done += 1
                prev = self._nflog.get(group.route, group.key)
                told = prev.firing if prev else frozenset()
                firing: dict[str, Alert] = {}
                held: set[str] = set()
                for fp, a in group.alerts.items():
                    if a.state is not AlertState.FIRING:
                        continue
                    if mute_reason(a, silences, self._maintenance, now) is None:
                        firing[fp] = a
                    elif fp in told:
                        held.add(fp)  # told before it was muted: its resolution is still due
                resolved = {
                    fp: a for fp, a in group.alerts.items() if a.state is AlertState.RESOLVED
                }
                reason = decide(
                    prev,
                    frozenset(firing),
                    frozenset(resolved),
                    send_resolved=route.send_resolved,
                    repeat_interval=route.repeat_interval.total_seconds(),
                    now=now,
                )
                if reason is Reason.REPEAT and self._acked(list(firing.values())):
                    reason = None  # [ack] (issue 17): acknowledged alerts do not repeat
                if reason is not None:
                    shown = list(firing.values())
                    if route.send_resolved:
                        shown += [a for fp, a in resolved.items() if fp in told]
                    out.append(
                        Notification(
                            route=group.route,
                            recipients=tuple(route.to),
                            group_key=group.key,
                            group_labels=dict(group.labels),
                            alerts=tuple(sorted(shown, key=_order)),
                            reason=reason,
                            created=now,
                            held=frozenset(held),
                        )
                    )
                # Resolved alerts are said once (or never, without send_resolved): drop them.
                for fp in resolved:
                    del group.alerts[fp]
                if not group.alerts and reason is None:
                    del self._groups[gid]
        except BaseException:
            # the due groups not reached keep their timers: they are due again next flush
            for gid, group in due[done:]:
                heapq.heappush(self._timers, (group.next_flush, group.order, gid))
            raise
        return out

    def _due(self, now: float, force: bool) -> list[tuple[tuple[int, str], _Group]]:
        """The groups to flush at ``now`` (every group with ``force``), in creation order."""
        if force:
            self._timers.clear()  # each group gets its new timer in flush
            return list(self._groups.items())
        due: list[tuple[int, tuple[int, str], _Group]] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, order, gid = heapq.heappop(timers)
            group = self._groups.get(gid)
            if group is not None and group.order == order and group.next_flush == at:
                due.append((order, gid, group))
        due.sort(key=lambda item: item[0])
        return [(gid, group) for _, gid, group in due]

    def sent(self, conn: sqlite3.Connection, notification: Notification) -> None:
        """Records ``notification`` in the notification log, inside ``conn``'s transaction.

        Alerts it holds back (told before, muted now) stay recorded as told.
        """
        firing = frozenset(a.fingerprint for a in notification.firing) | notification.held
        resolved = frozenset(a.fingerprint for a in notification.resolved)
        NotificationLog.record(
            conn, notification.route, notification.group_key, firing, resolved, notification.created
        )

    def muted(self, alerts: Sequence[Alert], now: float) -> Mapping[str, str]:
        """For the status page: fingerprint → why it is muted, for the muted ones."""
        silences = self._silences(now)
        out = {}
        for alert in alerts:
            why = mute_reason(alert, silences, self._maintenance, now)
            if why is not None:
                out[alert.fingerprint] = why
        return out


def _order(alert: Alert) -> tuple[int, str, str]:
    rank = {"critical": 0, "warning": 1, "info": 2}.get(alert.severity, 3)
    return (rank, alert.device, alert.rule)
