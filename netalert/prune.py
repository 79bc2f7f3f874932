"""Retention: the notification log and mail threads are pruned in small batches.

Every ``[limits] prune_interval`` the :class:`Pruner` walks the ``nflog`` and
``mail_threads`` tables, ``prune_batch`` rows per transaction, yielding to the
event loop between batches, and deletes the rows older than ``[limits]
retention`` that no live group needs: a group holding an alert that is active
or recently resolved keeps its dedup entry and its thread root, however old.
Resolved alerts are dropped by the alert stage's clean-up (see
:meth:`netalert.alerts.stage.AlertStage.tick`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet

from netalert.alerts.model import Alert
from netalert.config.models import LimitsConfig, Route
from netalert.errors import NetalertError
from netalert.logs import event
from netalert.mail.queue import MailQueue
from netalert.notify.nflog import NotificationLog
from netalert.notify.routes import compile_routes, group_key

__all__ = ["Pruner", "live_groups"]

log = logging.getLogger("netalert.prune")


def live_groups(routes: Sequence[Route], alerts: Iterable[Alert]) -> set[tuple[str, str]]:
    """The ``(route, group_key)`` of the notification groups of each alert in ``alerts``."""
    tree = compile_routes(routes)
    out: set[tuple[str, str]] = set()
    for alert in alerts:
        for route in tree.match(alert.labels):
            out.add((route.name, group_key(route.name, route.group_by, alert.labels)))
    return out


class Pruner:
    """Deletes old rows of ``nflog`` and ``mail_threads``; counts them in :attr:`rows`.

    Args:
        nflog: The notification log.
        outbox: Returns the outbox in force (rebuilt when ``[smtp]`` changes).
        limits: Returns ``[limits]`` of the config in force.
        live: Returns the ``(route, group_key)`` of the groups that must keep their rows.
        clock: Current time, unix seconds.
    """

    def __init__(
        self,
        *,
        nflog: NotificationLog,
        outbox: Callable[[], MailQueue],
        limits: Callable[[], LimitsConfig],
        live: Callable[[], AbstractSet[tuple[str, str]]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.nflog = nflog
        self.outbox = outbox
        self.limits = limits
        self.live = live
        self.clock = clock
        # Rows deleted since the start, by table (netalert_pruned_rows_total).
        self.rows: dict[str, int] = {"nflog": 0, "mail_threads": 0}

    async def run(self, stop: asyncio.Event) -> None:
        """Prunes every ``prune_interval`` until ``stop`` is set; a failed round is logged."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                interval = self.limits().prune_interval.total_seconds()
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                return
            try:
                await self.prune()
            except (sqlite3.Error, NetalertError) as exc:
                log.error(event("prune_failed", error=exc))

    async def prune(self) -> dict[str, int]:
        """One round over both tables; returns the rows deleted by table.

        Raises:
            sqlite3.Error: The database cannot be read or written (the rows
                deleted before stay deleted; the next round goes on).
        """
        limits = self.limits()
        cutoff = self.clock() - limits.retention.total_seconds()
        live = self.live()
        keys = {key for _, key in live}
        outbox = self.outbox()
        done = {
            "nflog": await _walk(
                lambda after: self.nflog.prune(
                    cutoff, live=live, after=after, limit=limits.prune_batch
                )
            ),
            "mail_threads": await _walk(
                lambda after: outbox.prune_threads(
                    cutoff, live=keys, after=after, limit=limits.prune_batch
                )
            ),
        }
        for table, n in done.items():
            self.rows[table] += n
        if any(done.values()):
            log.info(event("pruned", **done))
        return done


async def _walk(batch: Callable[[int], tuple[int, int | None]]) -> int:
    """Runs ``batch`` from rowid 0 until the end of the table, yielding between batches."""
    total = 0
    after: int | None = 0
    while after is not None:
        deleted, after = batch(after)
        total += deleted
        await asyncio.sleep(0)
    return total
