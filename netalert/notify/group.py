"""The group stage: aggregation groups and their timers.

An alert a route takes joins the group of its ``group_by`` values under that
route. A new group is due ``group_wait`` after its first alert, then every
``group_interval``; :meth:`Groups.flush` hands each due group, as a
:class:`~netalert.notify.stage.Batch`, to the stages after it. Resolved
alerts are said once: they leave the group after its flush, and a group left
empty with nothing to say is dropped.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from netalert.alerts.model import Alert, AlertState
from netalert.notify.routes import RouteNode, group_key
from netalert.notify.stage import Batch

__all__ = ["Groups"]

GroupId = tuple[str, str]  # (route path, group key)


@dataclass(slots=True)
class _Group:
    route: RouteNode
    key: str
    labels: dict[str, str]
    next_flush: float
    order: int  # creation order: due groups are told in the order they were made
    alerts: dict[str, Alert] = field(default_factory=dict)


class Groups:
    """The aggregation groups of one routing tree.

    Args:
        told: Whether a group (route name, group key) was ever mailed: an alert
            resolved before its group exists opens one only then.
    """

    def __init__(self, told: Callable[[str, str], bool]) -> None:
        self._told = told
        self._groups: dict[GroupId, _Group] = {}
        # (next_flush, order, group id) of every timer set; an entry whose time is no
        # longer its group's is stale and skipped. A flush then costs what is due,
        # not a walk over every group (thousands in a storm of distinct alerts).
        self._timers: list[tuple[float, int, GroupId]] = []
        self._orders = itertools.count()

    def add(self, route: RouteNode, alert: Alert, now: float) -> None:
        """Puts ``alert`` (firing or resolved) in its group under ``route``."""
        key = group_key(route.name, route.group_by, alert.labels)
        gid = (route.path, key)
        group = self._groups.get(gid)
        if group is None:
            if alert.state is AlertState.RESOLVED and not self._told(route.name, key):
                return  # resolved before anyone was told: nothing to say
            labels = {n: alert.labels.get(n, "") for n in route.group_by if n != "..."}
            due = now + route.group_wait.total_seconds()
            group = _Group(route, key, labels, due, next(self._orders))
            self._groups[gid] = group
            heapq.heappush(self._timers, (due, group.order, gid))
        group.alerts[alert.fingerprint] = alert

    def forget(self, fingerprints: Collection[str]) -> None:
        """Drops these alerts from every group, unsaid; a group left empty goes too."""
        gone = set(fingerprints)
        for gid, group in list(self._groups.items()):
            mine = gone & group.alerts.keys()
            for fp in mine:
                del group.alerts[fp]
            if mine and not group.alerts:
                del self._groups[gid]  # its timer is skipped as stale

    def next_flush(self) -> float | None:
        """When the earliest group is due, None when there is no group."""
        return min((g.next_flush for g in self._groups.values()), default=None)

    def flush(self, now: float, force: bool, handle: Callable[[Batch], bool]) -> None:
        """Hands every group due at ``now`` (every group with ``force``) to ``handle``,
        oldest group first, after giving it its next timer.

        ``handle`` returns whether the group was mailed. When it raises, the due
        groups not reached keep their timers (they are due again next flush) and
        the error propagates.
        """
        due = self._due(now, force)
        done = 0  # due groups given their next timer so far
        try:
            for gid, group in due:
                group.next_flush = now + group.route.group_interval.total_seconds()
                heapq.heappush(self._timers, (group.next_flush, group.order, gid))
                done += 1
                firing, resolved = _split(group.alerts)
                mailed = handle(Batch(group.route, group.key, group.labels, firing, resolved, now))
                for fp in resolved:
                    del group.alerts[fp]
                if not group.alerts and not mailed:
                    del self._groups[gid]
        except BaseException:
            for gid, group in due[done:]:
                heapq.heappush(self._timers, (group.next_flush, group.order, gid))
            raise

    def _due(self, now: float, force: bool) -> list[tuple[GroupId, _Group]]:
        if force:
            self._timers.clear()  # each group gets its new timer in flush
            return list(self._groups.items())
        due: list[tuple[int, GroupId, _Group]] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, order, gid = heapq.heappop(timers)
            group = self._groups.get(gid)
            if group is not None and group.order == order and group.next_flush == at:
                due.append((order, gid, group))
        due.sort(key=lambda item: item[0])
        return [(gid, group) for _, gid, group in due]


def _split(alerts: dict[str, Alert]) -> tuple[dict[str, Alert], dict[str, Alert]]:
    """A group's firing and resolved alerts, in one pass."""
    firing: dict[str, Alert] = {}
    resolved: dict[str, Alert] = {}
    for fp, alert in alerts.items():
        if alert.state is AlertState.FIRING:
            firing[fp] = alert
        elif alert.state is AlertState.RESOLVED:
            resolved[fp] = alert
    return firing, resolved
