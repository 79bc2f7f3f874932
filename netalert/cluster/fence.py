"""Fenced writes: a write under a shard lease commits only while that lease is current.

The proof against split brain is in the database, not in the nodes' clocks: the
write's transaction first reads the shard's lease row ``FOR SHARE`` and checks
owner, epoch and expiry. The row lock holds until the commit, so no other node
can take the shard between the check and the commit; a writer whose lease moved
on (it was partitioned, paused, or too slow) gets :class:`StaleLeaseError` and
nothing of its transaction is written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from psycopg import AsyncConnection, Connection

from netalert.cluster.errors import StaleLeaseError
from netalert.cluster.leases import Lease

__all__ = ["fenced", "fenced_sync"]

_CHECK = """
SELECT node, epoch, expires > now() FROM shard_leases WHERE shard = %s FOR SHARE
"""
_CHECK_MANY = """
SELECT shard, node, epoch, expires > now() FROM shard_leases WHERE shard = ANY(%s)
ORDER BY shard FOR SHARE
"""


def _check(lease: Lease, row: tuple[Any, ...] | None) -> None:
    """Raises :class:`StaleLeaseError` unless ``row`` (node, epoch, valid) is ``lease``'s."""
    current_node, current_epoch, valid = row if row is not None else (None, 0, False)
    if current_node != lease.node or current_epoch != lease.epoch or not valid:
        raise StaleLeaseError(
            lease.shard,
            lease.node,
            lease.epoch,
            current_node if valid else None,
            int(current_epoch),
        )


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
        _check(lease, await cur.fetchone())
        yield conn


@contextmanager
def fenced_sync(conn: Connection[Any], leases: Iterable[Lease]) -> Iterator[Connection[Any]]:
    """:func:`fenced` on a blocking connection, for several shards at once.

    The lease rows are locked in shard order (two writers never wait on each
    other in a cycle); the transaction commits only if every lease is current.

    Raises:
        StaleLeaseError: One of ``leases`` is not current (the lowest such shard is
            named); the transaction is rolled back.
    """
    wanted = sorted(leases, key=lambda lease: lease.shard)
    with conn.transaction():
        if wanted:
            cur = conn.execute(_CHECK_MANY, ([lease.shard for lease in wanted],))
            rows = {int(row[0]): tuple(row[1:]) for row in cur.fetchall()}
            for lease in wanted:
                _check(lease, rows.get(lease.shard))
        yield conn
