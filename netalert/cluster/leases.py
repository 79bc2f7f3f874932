"""Shard leases in PostgreSQL: each node registers, renews and rebalances its shards.

Every ``lease / 3`` a node runs one :meth:`LeaseManager.tick`:

1. heartbeat: its row in ``cluster_nodes`` lives for another ``lease``;
2. renew: every shard it still holds (its name, not yet expired) for another
   ``lease``; a shard it held that did not renew was lost (counted);
3. rebalance: its fair share among the live nodes (:func:`fair_share`); above it,
   it releases shards (forgetting them locally *first*); below it, it takes free
   or expired shards, each with ``epoch + 1``.

Times are the database's clock (``now()``), so the nodes' clocks need not agree.
A node believes it owns a shard until ``lease`` (less 5 %) after it *sent* the
renewal, measured on its own monotonic clock: the row expires no earlier than
that, and another node can take a shard only once its row has expired or been
released. So no two nodes ever both believe they own a shard, and a node that
cannot reach the database stops acting on its shards within ``lease``. The
fencing epoch (:mod:`netalert.cluster.fence`) makes a late write of the old
owner fail in the database itself.

A database error closes the connection; the next tick connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection

from netalert.cluster.errors import SchemaError
from netalert.cluster.schema import migrate
from netalert.cluster.shards import fair_share
from netalert.logs import event

__all__ = ["ClusterStats", "Lease", "LeaseManager", "bounded", "close_quietly"]

log = logging.getLogger(__name__)

# The part of the lease a node gives up locally, against clock rate differences.
_SAFETY = 0.05


@dataclass(frozen=True, slots=True)
class Lease:
    """A node's lease of one shard: writes under it carry ``epoch``."""

    shard: int
    node: str
    epoch: int


@dataclass(slots=True)
class ClusterStats:
    """What the lease manager and the transport count (read by ``/metrics``)."""

    nodes: int = 0  # live nodes at the last tick
    shards_owned: int = 0
    lease_lost: int = 0  # shards lost without releasing them (expired or taken)
    stream_lag: int = 0  # trap messages waiting on this node's shards
    reconnects: int = 0
    connected: bool = False
    # trap messages consumed and given up (terminated), by reason (see transport.py)
    rejected: Counter[str] = field(default_factory=Counter)


_HEARTBEAT = """
INSERT INTO cluster_nodes (node, expires) VALUES (%(node)s, now() + %(lease)s)
ON CONFLICT (node) DO UPDATE SET heartbeat = now(), expires = EXCLUDED.expires
"""
_RENEW = """
UPDATE shard_leases SET expires = now() + %(lease)s, renewed = now()
WHERE node = %(node)s AND expires > now()
RETURNING shard, epoch
"""
_LIVE = "SELECT node FROM cluster_nodes WHERE expires > now() ORDER BY node"
_RELEASE = """
UPDATE shard_leases SET node = NULL, expires = '-infinity'
WHERE node = %(node)s AND shard = ANY(%(shards)s)
"""
# SKIP LOCKED: two nodes taking shards at once take different ones; the outer WHERE
# checks again what the inner SELECT saw.
_ACQUIRE = """
UPDATE shard_leases SET node = %(node)s, epoch = epoch + 1, expires = now() + %(lease)s,
    acquired = now(), renewed = now()
WHERE shard IN (
    SELECT shard FROM shard_leases WHERE node IS NULL OR expires <= now()
    ORDER BY shard LIMIT %(count)s FOR UPDATE SKIP LOCKED
) AND (node IS NULL OR expires <= now())
RETURNING shard, epoch
"""


async def bounded(step: Coroutine[Any, Any, None], within: float, name: str) -> None:
    """Runs ``step`` (database calls) for at most ``within`` seconds.

    psycopg answers a first cancellation by asking the server to cancel the query,
    over the same (maybe dead) network; a second one makes it drop the connection
    at once: so a hung connection (a partition: no error, no answer) never stalls
    the caller past ``within`` and a little.

    Raises:
        TimeoutError: ``step`` did not finish within ``within``.
        Exception: what ``step`` raised.
    """
    task = asyncio.create_task(step, name=name)
    try:
        await asyncio.wait({task}, timeout=within)
    finally:
        if not task.done():
            for _ in range(3):
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=0.1)
                if done:
                    break
    if task.cancelled():
        raise TimeoutError(f"no answer within {within:g}s")
    task.result()


async def close_quietly(conn: AsyncConnection[Any] | None) -> None:
    """Closes ``conn`` (if any); a connection already broken closes without a word."""
    if conn is not None:
        with contextlib.suppress(psycopg.Error, OSError):
            await conn.close()


class LeaseManager:
    """One node's shard leases.

    Args:
        dsn: The shared database (a ``postgresql://`` URI).
        node: This node's unique name.
        shards: The cluster's shard count (every node the same; checked).
        lease: Seconds a lease lasts without renewal; renewed every third of it.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        dsn: str,
        *,
        node: str,
        shards: int,
        lease: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease <= 0 or shards < 1:
            raise ValueError("lease must be positive and shards at least 1")
        self.dsn = dsn
        self.node = node
        self.shards = shards
        self.lease = lease
        self.renew_every = lease / 3
        self.stats = ClusterStats()
        self._clock = clock
        self._conn: AsyncConnection[Any] | None = None
        self._held: dict[int, tuple[int, float]] = {}  # shard -> (epoch, local deadline)
        self._task: asyncio.Task[None] | None = None
        self._ever_connected = False

    # --- what the node may do now -------------------------------------------------

    def owned(self) -> frozenset[int]:
        """The shards this node may act on now (its lease not yet expired locally)."""
        now = self._clock()
        return frozenset(s for s, (_, deadline) in self._held.items() if deadline > now)

    def lease_of(self, shard: int) -> Lease | None:
        """This node's current lease of ``shard``, or None."""
        held = self._held.get(shard)
        if held is None or held[1] <= self._clock():
            return None
        return Lease(shard, self.node, held[0])

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Connects, migrates the schema, registers and takes a first share; then
        renews in the background.

        Raises:
            SchemaError: The database's shard count differs, or its schema is newer.
            psycopg.Error: The database cannot be reached.
        """
        conn = await self._connection()
        await migrate(conn)
        await self._seed(conn)
        await conn.execute("UPDATE cluster_nodes SET started = now() WHERE node = %s", (self.node,))
        await self.tick()
        self.resume()

    def resume(self) -> None:
        """Starts (again) renewing in the background."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name=f"leases-{self.node}")

    async def suspend(self) -> None:
        """Stops renewing without releasing anything: as a node that hangs or is cut
        off. Its shards expire and move to the others."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stop(self, *, release: bool = True) -> None:
        """Stops renewing; with ``release``, hands every shard back at once and leaves
        the node list, so the others take over without waiting for expiry."""
        await self.suspend()
        held, self._held = sorted(self._held), {}
        self.stats.shards_owned = 0
        if release and self._conn is not None and not self._conn.closed:
            try:
                async with asyncio.timeout(self.renew_every):
                    await self._conn.execute(_RELEASE, {"node": self.node, "shards": held})
                    await self._conn.execute(
                        "DELETE FROM cluster_nodes WHERE node = %s", (self.node,)
                    )
            except (psycopg.Error, TimeoutError) as exc:
                log.warning(event("cluster_release_failed", node=self.node, error=exc))
        await self._close()

    # --- one step -----------------------------------------------------------------

    async def tick(self) -> None:
        """Heartbeat, renewal and rebalance, once; a database error is logged and the
        connection closed (the next tick connects again)."""
        try:
            await self._bounded_tick()
        except (psycopg.Error, OSError, TimeoutError) as exc:
            if self.stats.connected:
                log.warning(event("cluster_db_lost", node=self.node, error=exc))
            self.stats.connected = False
            await self._close()
        self.stats.shards_owned = len(self.owned())

    async def _bounded_tick(self) -> None:
        """:meth:`_tick` within ``lease / 2``, else the connection is dropped.

        Safety does not depend on this bound (a renewal counts from when it was sent);
        it keeps a hung connection (a partition: no error, no answer) from stalling
        the node (:func:`bounded`).
        """
        await bounded(self._tick(), self.lease / 2, f"lease-tick-{self.node}")

    async def _tick(self) -> None:
        conn = await self._connection()
        lease = timedelta(seconds=self.lease)
        await conn.execute(_HEARTBEAT, {"node": self.node, "lease": lease})
        sent = self._clock()
        cur = await conn.execute(_RENEW, {"node": self.node, "lease": lease})
        renewed = {int(shard): int(epoch) for shard, epoch in await cur.fetchall()}
        self._keep(renewed, sent)
        cur = await conn.execute(_LIVE)
        live = [str(node) for (node,) in await cur.fetchall()]
        self.stats.nodes = len(live)
        target = fair_share(live, self.shards, self.node)
        mine = sorted(self._held)
        if len(mine) > target:
            excess = mine[target:]
            for shard in excess:  # forget first: from here on this node does not act on it
                del self._held[shard]
            await conn.execute(_RELEASE, {"node": self.node, "shards": excess})
            log.info(event("shards_released", node=self.node, count=len(excess), target=target))
        elif len(mine) < target:
            sent = self._clock()
            params = {"node": self.node, "lease": lease, "count": target - len(mine)}
            cur = await conn.execute(_ACQUIRE, params)
            taken = {int(shard): int(epoch) for shard, epoch in await cur.fetchall()}
            deadline = sent + self.lease * (1 - _SAFETY)
            for shard, epoch in taken.items():
                self._held[shard] = (epoch, deadline)
            if taken:
                log.info(event("shards_acquired", node=self.node, count=len(taken), target=target))

    def _keep(self, renewed: dict[int, int], sent: float) -> None:
        lost = sorted(set(self._held) - set(renewed))
        if lost:
            self.stats.lease_lost += len(lost)
            log.warning(event("lease_lost", node=self.node, shards=",".join(map(str, lost))))
        deadline = sent + self.lease * (1 - _SAFETY)
        self._held = {shard: (epoch, deadline) for shard, epoch in renewed.items()}

    async def _loop(self) -> None:
        while True:
            started = self._clock()
            await self.tick()
            await asyncio.sleep(max(0.0, self.renew_every - (self._clock() - started)))

    # --- the connection -----------------------------------------------------------

    async def _connection(self) -> AsyncConnection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        timeout = max(2, int(self.renew_every))  # libpq's minimum is 2 s
        self._conn = await AsyncConnection.connect(
            self.dsn, autocommit=True, connect_timeout=timeout, application_name=self.node
        )
        if self._ever_connected:
            self.stats.reconnects += 1
            log.info(event("cluster_db_reconnected", node=self.node))
        self._ever_connected = True
        self.stats.connected = True
        return self._conn

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        await close_quietly(conn)

    async def _seed(self, conn: AsyncConnection[Any]) -> None:
        """Creates the shard rows once; refuses a database made for another count."""
        async with conn.transaction():
            await conn.execute("LOCK TABLE cluster_settings IN EXCLUSIVE MODE")
            cur = await conn.execute("SELECT value FROM cluster_settings WHERE key = 'shards'")
            row = await cur.fetchone()
            if row is not None and int(row[0]) != self.shards:
                raise SchemaError(
                    f"[cluster] shards = {self.shards}, but the cluster database was made "
                    f"with {row[0]} shards: every node must use the same number"
                )
            if row is None:
                await conn.execute(
                    "INSERT INTO cluster_settings (key, value) VALUES ('shards', %s)",
                    (str(self.shards),),
                )
                await conn.execute(
                    "INSERT INTO shard_leases (shard) SELECT generate_series(0, %s - 1)",
                    (self.shards,),
                )
