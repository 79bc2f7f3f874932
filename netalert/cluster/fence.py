"""Fenced writes: a write under a shard lease commits only while that lease is current.

The proof against split brain is in the database, not in the nodes' clocks: the
write's transaction first reads the shard's lease row ``FOR SHARE`` and checks
owner, epoch and expiry. The row lock holds until the commit, so no other node
can take the shard between the check and the commit; a writer whose lease moved
on (it was partitioned, paused, or too slow) gets :class:`StaleLeaseError` and
nothing of its transaction is written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection

from netalert.cluster.errors import StaleLeaseError
from netalert.cluster.leases import Lease

__all__ = ["fenced"]

_CHECK = """
SELECT node, epoch, expires > now() FROM shard_leases WHERE shard = %s FOR SHARE
"""


@asynccontextmanager
async def fenced(conn: AsyncConnection[Any], lease: Lease) -> AsyncIterator[AsyncConnection[Any]]:
    """A transaction on ``conn`` that commits only under ``lease``.

    Example::

        async with fenced(conn, manager.lease_of(shard)) as tx:
            await tx.execute("INSERT INTO ...")

    Raises:
        StaleLeaseError: The shard's lease is not ``lease`` any more (another node
            or epoch holds it, or it expired); the transaction is rolled back.
    """
    async with conn.transaction():
        cur = await conn.execute(_CHECK, (lease.shard,))
        row = await cur.fetchone()
        current_node, current_epoch, valid = row if row is not None else (None, 0, False)
        if current_node != lease.node or current_epoch != lease.epoch or not valid:
            raise StaleLeaseError(
                lease.shard,
                lease.node,
                lease.epoch,
                current_node if valid else None,
                int(current_epoch),
            )
        yield conn
