"""The state side of a cluster node, as the agent wires it (``service.py`` holds one).

With ``[cluster]`` the agent's alerts, notification log and mail queue live in the shared
PostgreSQL: :class:`ClusterSide` builds them (:class:`~netalert.cluster.state.ClusterState`,
:class:`~netalert.cluster.mail.PgNotificationLog`, :class:`~netalert.cluster.mail.PgMailOutbox`)
and follows the node's shards:

* a shard gained: its notification-log rows and its alerts are loaded from PostgreSQL
  (before its traps and polls are handled: the node awaits this listener first), and its
  alerts join notify's groups; what its old owner told is in the log, so nothing is
  mailed twice, and what it had not told yet is mailed now;
* a shard lost, or a write refused for a stale lease: its alerts, their queued writes,
  their groups' news and its log rows are forgotten (no resolve mail: the new owner
  holds them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from functools import partial

from netalert.alerting import Alerting
from netalert.cluster.mail import PgMailOutbox, PgNotificationLog, read_nflog, read_threads
from netalert.cluster.node import ClusterNode
from netalert.cluster.outbox import PgOutbox
from netalert.cluster.pgstore import PgAlertStore
from netalert.cluster.shards import shard_of
from netalert.cluster.shared import Cleanup, PgSilenceStore, SharedSilences
from netalert.cluster.state import ClusterState
from netalert.config.models import LimitsConfig
from netalert.errors import StateError
from netalert.logs import event
from netalert.notify.dispatcher import Dispatcher
from netalert.prepare import Prepared

__all__ = ["ClusterSide"]

log = logging.getLogger(__name__)


class ClusterSide:
    """The alert store, notification log and mail queue of a cluster node.

    Args:
        prepared: The config (``[cluster]`` set).
        node: The node's leases and their changes.
    """

    def __init__(self, prepared: Prepared, node: ClusterNode) -> None:
        config = prepared.config
        cluster = config.cluster
        assert cluster is not None
        dsn = cluster.postgres.get_secret_value()
        self.node = node
        self.shards = cluster.shards
        self.store = PgAlertStore(
            dsn, node=cluster.node, shards=cluster.shards, lease_of=node.lease_of
        )
        self.state = ClusterState(
            self.store,
            lease_of=node.lease_of,
            on_stale=self._forget,
            retry_max=config.agent.state_retry_max.total_seconds(),
        )
        self.nflog = PgNotificationLog(self._shard_of_fingerprint)
        self.outbox = PgMailOutbox(
            PgOutbox(
                dsn,
                node=cluster.node,
                lease_of=node.lease_of,
                claim_for=cluster.mail_claim.total_seconds(),
            ),
            self.state,
            max_age=config.smtp.max_age.total_seconds(),
            batch=config.smtp.batch_size,
        )
        # schema 6: the silences every node shares, and the clean-up of old rows
        self.silences = SharedSilences(
            PgSilenceStore(dsn), refresh=cluster.silence_refresh.total_seconds()
        )
        self.limits: Callable[[], LimitsConfig] = lambda: config.limits  # the config in force
        # the devices of the config in force (reloads): their engine IDs are kept
        self.devices: Callable[[], list[str]] = lambda: [d.name for d in config.devices]
        self.cleanup = Cleanup(
            dsn,
            retention=lambda: cluster.retention.total_seconds(),
            batch=lambda: self.limits().prune_batch,
            usm_retention=lambda: cluster.usm_retention.total_seconds(),
            devices=lambda: self.devices(),
        )
        self._cleaning: asyncio.Task[None] | None = None
        self._loaded: set[int] = set()  # shards whose alerts are in memory
        self._engine: Alerting | None = None
        self._dispatcher: Callable[[], Dispatcher | None] = lambda: None

    def shard_of(self, device: str) -> int:
        """The shard of a device."""
        return shard_of(device, self.shards)

    def _shard_of_fingerprint(self, fingerprint: str) -> int | None:
        record = self._engine.table.get(fingerprint) if self._engine is not None else None
        return None if record is None else self.shard_of(record.alert.device)

    # --- the stage "cluster-state" (after "cluster": drained before the leases go) -------------

    async def open(self) -> None:
        """Starts the state writer, the mail claims, the silence reads and the clean-up;
        the silences are read once first (a failure is logged: the reads go on)."""
        self.state.start()
        self.outbox.start()
        try:
            await self.silences.refresher.read()
        except StateError as exc:
            log.warning(event("cluster_silences_unread", error=exc))
        self.silences.refresher.start()
        self._cleaning = asyncio.get_running_loop().create_task(
            self.cleanup.run(lambda: self.limits().prune_interval.total_seconds()),
            name="cluster-cleanup",
        )

    async def drain(self, deadline: float) -> None:
        """Writes what is queued, by ``deadline``."""
        await self.state.drain(deadline)

    async def stop(self) -> None:
        """Gives back the mails claimed and not sent, closes the connections."""
        task, self._cleaning = self._cleaning, None
        if task is not None:
            task.cancel()
            self.cleanup.interrupt()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self.cleanup.close)
        await self.silences.stop()
        await self.outbox.stop()
        await self.state.stop()

    # --- following the shards ------------------------------------------------------------------

    async def attach(self, engine: Alerting, dispatcher: Callable[[], Dispatcher | None]) -> None:
        """Follows the node's shards for ``engine`` and the dispatcher in force: the shards
        held now are loaded at once, later ones as they come.

        Raises:
            StateWriteError: PostgreSQL cannot be read.
        """
        self._engine, self._dispatcher = engine, dispatcher
        self.node.on_change(self.changed)
        await self.changed(self.node.owned(), frozenset())

    async def changed(self, gained: frozenset[int], lost: frozenset[int]) -> None:
        """The node's listener: forgets the shards lost, loads the shards gained."""
        if lost:
            self._forget(lost)
        if gained:
            await self._load(gained)

    async def _load(self, gained: frozenset[int]) -> None:
        engine = self._engine
        assert engine is not None
        shards = gained - self._loaded  # the watcher and attach may both name a shard
        if not shards:
            return
        self._loaded |= shards
        try:
            records = await self.state.load_shards(shards)
            rows = await self.state.run(
                self.store.read, "nflog", partial(read_nflog, shards=shards)
            )
            threads = await self.state.run(self.store.read, "mail threads", read_threads)
        except BaseException:
            self._loaded -= shards  # the node calls again: loaded then
            raise
        self.nflog.adopt(rows)  # first: what was told decides what the groups mail
        self.outbox.adopt_threads(threads)  # follow-ups reply to the episodes' first mails
        alerts = engine.adopt(records)
        dispatcher = self._dispatcher()
        if dispatcher is not None:
            now = time.time()
            for alert in alerts:
                dispatcher.update(alert, now)
        log.info(
            event("cluster_shards_loaded", shards=len(shards), alerts=len(alerts), told=len(rows))
        )

    def _forget(self, shards: Collection[int]) -> None:
        lost = frozenset(shards)
        held = bool(self._loaded & lost)  # else: shards never held (a foreign device's alerts)
        self._loaded -= lost
        dropped = self.state.drop_shards(lost)
        self.nflog.forget(lost)
        alerts: list[object] = []
        if self._engine is not None:
            forgotten = self._engine.forget(lambda a: self.shard_of(a.device) not in lost)
            dispatcher = self._dispatcher()
            if dispatcher is not None:
                dispatcher.forget(forgotten)
            alerts = list(forgotten)
        log.log(
            logging.INFO if held else logging.DEBUG,
            event(
                "cluster_shards_forgotten",
                shards=",".join(map(str, sorted(lost))),
                alerts=len(alerts),
                unsaved=dropped,
            ),
        )
