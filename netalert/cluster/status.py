"""``netalert cluster status``: the nodes, their shards, lease ages, stream lag and outbox depth.

Read-only: it reads the shared PostgreSQL and the trap stream's counts, and
changes neither.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

import nats
from psycopg import AsyncConnection

from netalert.cluster.schema import applied_versions
from netalert.cluster.transport import read_pending
from netalert.tables import format_table

__all__ = ["ClusterStatus", "NodeStatus", "format_status", "gather"]


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node as the database sees it."""

    node: str
    live: bool
    heartbeat_age: float  # seconds since its last heartbeat
    shards: int  # shards it holds an unexpired lease on
    lease_age: float | None  # seconds since the least recently renewed of them
    lag: int | None  # traps waiting on its shards (None: NATS not read)


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """The whole cluster; ``nats_error`` says why the lag is missing."""

    schema: int
    shards: int
    free: int  # shards nobody holds now
    nodes: tuple[NodeStatus, ...]
    lag: int | None  # traps waiting on every shard
    nats_error: str = ""
    outbox: int | None = None  # mails queued and not yet sent by any node (None: no table)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_NODES = """
SELECT n.node, n.expires > now(), extract(epoch FROM now() - n.heartbeat)::float8,
       count(s.shard), extract(epoch FROM max(now() - s.renewed))::float8,
       coalesce(array_agg(s.shard) FILTER (WHERE s.shard IS NOT NULL), '{}')
FROM cluster_nodes n
LEFT JOIN shard_leases s ON s.node = n.node AND s.expires > now()
GROUP BY n.node ORDER BY n.node
"""


async def gather(
    dsn: str, nats_servers: list[str], *, prefix: str = "netalert", within: float = 5.0
) -> ClusterStatus:
    """Reads the cluster's state.

    Raises:
        psycopg.Error: PostgreSQL cannot be read (NATS failing only leaves the lag out).
    """
    async with await AsyncConnection.connect(
        dsn, autocommit=True, connect_timeout=max(2, int(within))
    ) as conn:
        versions = await applied_versions(conn)
        if not versions:
            return ClusterStatus(schema=0, shards=0, free=0, nodes=(), lag=None)
        rows = await (await conn.execute(_NODES)).fetchall()
        cur = await conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE node IS NULL OR expires <= now()) "
            "FROM shard_leases"
        )
        total, free = await cur.fetchone() or (0, 0)
        outbox = None
        if versions[-1] >= 3:  # the outbox table
            cur = await conn.execute("SELECT count(*) FROM outbox WHERE sent IS NULL")
            row = await cur.fetchone()
            outbox = int(row[0]) if row is not None else 0
    pending: dict[int, int] | None = None
    error = ""
    try:
        async with asyncio.timeout(within):
            pending = await read_pending(nats_servers, prefix=prefix, within=within)
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        error = (str(exc) or type(exc).__name__).removeprefix("nats: ")
    nodes = tuple(
        NodeStatus(
            node=str(node),
            live=bool(live),
            heartbeat_age=float(age),
            shards=int(count),
            lease_age=None if lease_age is None else float(lease_age),
            lag=None if pending is None else sum(pending.get(s, 0) for s in shards),
        )
        for node, live, age, count, lease_age, shards in rows
    )
    return ClusterStatus(
        schema=versions[-1],
        shards=int(total),
        free=int(free),
        nodes=nodes,
        lag=None if pending is None else sum(pending.values()),
        nats_error=error,
        outbox=outbox,
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def format_status(status: ClusterStatus) -> str:
    """The status as the command prints it: a summary line, then one row per node."""
    if status.schema == 0:
        return "no cluster yet: no node has started against this database"
    live = sum(1 for n in status.nodes if n.live)
    lag = "unknown" if status.lag is None else str(status.lag)
    outbox = "" if status.outbox is None else f", outbox {status.outbox}"
    head = (
        f"cluster: {live} of {len(status.nodes)} nodes live, {status.shards} shards "
        f"({status.free} free), stream lag {lag}{outbox}, schema {status.schema}"
    )
    rows = [
        (
            n.node,
            "live" if n.live else "gone",
            _seconds(n.heartbeat_age),
            str(n.shards),
            _seconds(n.lease_age),
            "-" if n.lag is None else str(n.lag),
        )
        for n in status.nodes
    ]
    table = format_table(("NODE", "STATE", "HEARTBEAT", "SHARDS", "LEASE AGE", "LAG"), rows)
    lines = [head, table]
    if status.nats_error:
        lines.append(f"nats: {status.nats_error}")
    return "\n".join(lines)
