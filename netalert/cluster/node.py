"""The agent's cluster stage: its shard leases, and who is told when they change.

MINIMAL VERSION (cluster-state helper): the leases and the change listeners of the
cluster-node contract, enough for the state side (alert store, notification log and
mail queue on PostgreSQL). Without a trap transport: :meth:`ClusterNode.publish`
hands a trap to the handler on this node. The intake side's ClusterNode (leases,
sharded polling, traps over JetStream) replaces this file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from netalert.cluster.leases import Lease, LeaseManager
from netalert.cluster.shards import shard_of
from netalert.cluster.transport import TrapTransport
from netalert.lifecycle import BaseStage, Spawn
from netalert.logs import event
from netalert.prepare import Prepared
from netalert.snmp.types import TrapEvent

__all__ = ["ClusterNode"]

log = logging.getLogger(__name__)

Listener = Callable[[frozenset[int], frozenset[int]], Awaitable[None]]

_WATCH = 0.1  # seconds between two looks at the owned shards (they also expire locally)


class ClusterNode(BaseStage):
    """This node's part of the cluster (``[cluster]``)."""

    name = "cluster"

    def __init__(self, prepared: Prepared, *, spawn: Spawn) -> None:
        cluster = prepared.config.cluster
        if cluster is None:
            raise ValueError("ClusterNode needs [cluster]")
        self.shards = cluster.shards
        self.leases = LeaseManager(
            cluster.postgres.get_secret_value(),
            node=cluster.node,
            shards=cluster.shards,
            lease=cluster.lease.total_seconds(),
        )
        self.transport: TrapTransport | None = None
        self._spawn = spawn
        self._listeners: list[Listener] = []
        self._handler: Callable[[TrapEvent], Awaitable[None]] | None = None
        self._known: frozenset[int] = frozenset()
        self._task: asyncio.Task[None] | None = None

    def owned(self) -> frozenset[int]:
        """The shards this node may act on now."""
        return self.leases.owned()

    def lease_of(self, shard: int) -> Lease | None:
        """This node's current lease of ``shard``, or None."""
        return self.leases.lease_of(shard)

    def shard_of_device(self, device: str) -> int:
        """The shard of a device (by name)."""
        return shard_of(device, self.shards)

    def on_change(self, listener: Listener) -> None:
        """``listener(gained, lost)`` is awaited at every change of the owned shards."""
        self._listeners.append(listener)

    def set_trap_handler(self, handler: Callable[[TrapEvent], Awaitable[None]]) -> None:
        """Who processes a trap (returns once its state is committed)."""
        self._handler = handler

    async def publish(self, trap: TrapEvent) -> None:
        """Without a transport: the trap is processed on this node."""
        if self._handler is not None:
            await self._handler(trap)

    def problems(self) -> list[str]:
        """Why the node is degraded (for /healthz)."""
        if not self.leases.stats.connected:
            return [f"cluster node {self.leases.node}: PostgreSQL unreachable"]
        return []

    async def open(self) -> None:
        """Registers the node and takes its first share of the shards.

        Raises:
            SchemaError: The database is newer, or made for another shard count.
            psycopg.Error: PostgreSQL cannot be reached.
        """
        await self.leases.start()

    async def start(self) -> None:
        """Watches the owned shards and tells the listeners of each change."""
        self._task = self._spawn(self._watch, "cluster-watch", True)

    async def _watch(self) -> None:
        while True:
            await self._changed()
            await asyncio.sleep(_WATCH)

    async def _changed(self) -> None:
        owned = self.owned()
        if owned == self._known:
            return
        gained, lost = owned - self._known, self._known - owned
        log.info(
            event(
                "cluster_shards_changed",
                node=self.leases.node,
                owned=len(owned),
                gained=len(gained),
                lost=len(lost),
            )
        )
        for listener in self._listeners:
            await listener(frozenset(gained), frozenset(lost))
        self._known = owned  # a listener that failed is called again at the next look

    async def drain(self, deadline: float) -> None:
        """Stops watching; the leases are released at :meth:`stop` (after the state is
        written)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stop(self) -> None:
        """Hands every shard back at once and leaves the node list."""
        await self.drain(0.0)
        await self.leases.stop(release=True)
