"""SNMPv3 state the nodes of a cluster share: the senders' clocks and the learned engine IDs.

A trap can reach any node, so what makes a v3 trap acceptable must not depend on
which node got it:

* **The senders' clocks** (:class:`~netalert.snmp.wire.timeliness.EngineClocks`, the
  USM time window that refuses a replayed trap): every reference an authenticated
  trap moved forward on this node is written to ``usm_clocks``, and the references
  the other nodes wrote are taken into this node's table when they are ahead of its
  own. A row only moves forward (``boots``, ``engine_time``), whoever writes it.
* **The engine IDs the poller learned** (:class:`~netalert.snmp.wire.engines.EngineIdRegistry`):
  a node polls only its shards' devices, but a device's traps may come to any node,
  which needs the engine ID to check them and to credit them to the device. Each
  record the poller learns is written to ``usm_engines`` and added to the other
  nodes' registries.

The trap path never waits for PostgreSQL: a change is noted in memory (one entry
per engine ID or device, the latest) and one task, every ``[cluster] usm_sync``,
writes what changed and reads what the others changed since its last read (by the
database's clock, reaching back over the longest a write may take to commit). At
open the node reads everything, so a node that starts or restarts knows at once
what the others learned. So a reference one node learned reaches the others within
about two ``usm_sync`` (its write, their read); until then they judge a trap by what
they knew before (docs/cluster.md, "SNMPv3 on a cluster").

Times cross nodes as ages on the database's clock: a reference's ``learned`` is
stored as the database's now less its age on the writing node's monotonic clock,
and read back as an age, so the nodes' clocks need not agree.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection

from netalert.cluster.leases import bounded, close_quietly
from netalert.lifecycle import Spawn
from netalert.logs import RateLimiter, event
from netalert.metrics import MetricSample, Sample
from netalert.snmp.wire.engines import EngineIdRegistry, EngineRecord
from netalert.snmp.wire.timeliness import EngineClock, EngineClocks

__all__ = ["UsmShare", "UsmStats"]

log = logging.getLogger(__name__)

STATEMENT_TIMEOUT = 2.0  # seconds: a write commits within this of its `changed` stamp
LOOKBACK = 2 * STATEMENT_TIMEOUT + 1.0  # seconds a read reaches back before the last one
OPEN_WITHIN = 15.0  # seconds the first read may take at open

_NOW = "SELECT extract(epoch FROM clock_timestamp())"
_WRITE_CLOCK = """
INSERT INTO usm_clocks AS c (engine_id, boots, engine_time, learned, digest, node, changed)
VALUES (%(engine_id)s, %(boots)s, %(time)s, extract(epoch FROM clock_timestamp()) - %(age)s,
    %(digest)s, %(node)s, extract(epoch FROM clock_timestamp()))
ON CONFLICT (engine_id) DO UPDATE SET boots = EXCLUDED.boots,
    engine_time = EXCLUDED.engine_time, learned = EXCLUDED.learned, digest = EXCLUDED.digest,
    node = EXCLUDED.node, changed = EXCLUDED.changed
WHERE (c.boots, c.engine_time) < (EXCLUDED.boots, EXCLUDED.engine_time)
"""
_READ_CLOCKS = """
SELECT engine_id, boots, engine_time, extract(epoch FROM clock_timestamp()) - learned, digest,
    changed
FROM usm_clocks WHERE changed > %(since)s AND (%(all)s OR node <> %(node)s)
ORDER BY changed LIMIT %(limit)s
"""
_WRITE_ENGINE = """
INSERT INTO usm_engines (device, engine_id, host, port, user_name, learned, node, changed)
VALUES (%(device)s, %(engine_id)s, %(host)s, %(port)s, %(user)s, %(learned)s, %(node)s,
    extract(epoch FROM clock_timestamp()))
ON CONFLICT (device) DO UPDATE SET engine_id = EXCLUDED.engine_id, host = EXCLUDED.host,
    port = EXCLUDED.port, user_name = EXCLUDED.user_name, learned = EXCLUDED.learned,
    node = EXCLUDED.node, changed = EXCLUDED.changed
"""
_READ_ENGINES = """
SELECT device, engine_id, host, port, user_name, learned, changed
FROM usm_engines WHERE changed > %(since)s AND (%(all)s OR node <> %(node)s)
ORDER BY changed LIMIT %(limit)s
"""


@dataclass(slots=True)
class UsmStats:
    """What the sharing counts (``/metrics``)."""

    written: int = 0  # references and engine IDs written for the other nodes
    adopted: int = 0  # references and engine IDs taken from the other nodes
    failures: int = 0  # syncs that failed (PostgreSQL away): tried again at the next


class UsmShare:
    """This node's side of the shared SNMPv3 state (see the module docstring).

    Args:
        dsn: The cluster database.
        node: This node's name.
        every: Seconds between two syncs (``[cluster] usm_sync``).
        clocks: The senders' clock table the trap receiver uses (kept across reloads).
        engines: The poller's engine-ID registry, which the receiver follows.
        devices: The names of the devices in this node's config now: another node's
            engine ID of a device not among them (removed here) is not taken.
    """

    def __init__(
        self,
        dsn: str,
        *,
        node: str,
        every: float,
        clocks: EngineClocks,
        engines: EngineIdRegistry,
        devices: Callable[[], Iterable[str]],
    ) -> None:
        self.dsn = dsn
        self.node = node
        self.every = every
        self.clocks = clocks
        self.engines = engines
        self._devices = devices
        self.stats = UsmStats()
        self._clocks_due: dict[bytes, EngineClock] = {}  # bounded: one per engine ID
        self._engines_due: dict[str, EngineRecord] = {}  # bounded: one per device
        self._since: dict[str, float] = {"clocks": float("-inf"), "engines": float("-inf")}
        self._applying = False
        self._conn: AsyncConnection[Any] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._log_limit = RateLimiter(60.0)

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Reads what every node learned so far, then follows this node's changes.

        A database that cannot be read now is logged: the sync tries again.
        """
        self.clocks.on_newer = self._clock_moved
        self._unsubscribe = self.engines.subscribe(self._engine_learned)
        await self.sync(within=OPEN_WITHIN)
        log.info(
            event(
                "cluster_usm_loaded",
                engines=len(self.clocks),
                engine_ids=len(self.engines),
                adopted=self.stats.adopted,
            )
        )

    def start(self, spawn: Spawn) -> None:
        """Syncs every ``every`` seconds from now on, in a supervised task."""
        self._task = spawn(self._run, "cluster-usm", True)

    async def stop(self) -> None:
        """Writes what is due (bounded), stops following, closes the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.clocks.on_newer = None
        if self._clocks_due or self._engines_due:
            await self.sync(within=self.every + STATEMENT_TIMEOUT)
        await self._close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self.sync(within=max(self.every, 2 * STATEMENT_TIMEOUT))

    # --- what changes here --------------------------------------------------------------

    def _clock_moved(self, engine_id: bytes, reference: EngineClock) -> None:
        self._clocks_due[engine_id] = reference

    def _engine_learned(self, record: EngineRecord) -> None:
        if not self._applying:  # not what another node told
            self._engines_due[record.device] = record

    # --- one sync -----------------------------------------------------------------------

    async def sync(self, *, within: float) -> None:
        """Writes what changed here, reads what the others changed; a failure is
        logged (once a minute), counted, and what was due stays due."""
        try:
            await bounded(self._sync(), within, f"usm-sync-{self.node}")
        except (psycopg.Error, OSError, TimeoutError) as exc:
            self.stats.failures += 1
            if self._log_limit.allow("sync", time.monotonic()):
                log.warning(
                    event("cluster_usm_sync_failed", error=exc, failures=self.stats.failures)
                )
            await self._close()

    async def _sync(self) -> None:
        conn = await self._connection()
        await self._write(conn)
        await self._read(conn)

    async def _write(self, conn: AsyncConnection[Any]) -> None:
        clocks, self._clocks_due = self._clocks_due, {}
        engines, self._engines_due = self._engines_due, {}
        if not clocks and not engines:
            return
        now = self.clocks.clock()
        try:
            async with conn.cursor() as cur:
                if clocks:
                    await cur.executemany(
                        _WRITE_CLOCK,
                        [
                            {
                                "engine_id": engine_id,
                                "boots": ref.boots,
                                "time": ref.time,
                                "age": max(0.0, now - ref.learned),
                                "digest": ref.digest,
                                "node": self.node,
                            }
                            for engine_id, ref in clocks.items()
                        ],
                    )
                if engines:
                    await cur.executemany(
                        _WRITE_ENGINE,
                        [
                            {
                                "device": record.device,
                                "engine_id": record.engine_id,
                                "host": record.host,
                                "port": record.port,
                                "user": record.user,
                                "learned": record.learned,
                                "node": self.node,
                            }
                            for record in engines.values()
                        ],
                    )
        except BaseException:
            # Due again, unless something newer came meanwhile.
            for engine_id, ref in clocks.items():
                newer = self._clocks_due.get(engine_id)
                if newer is None or (newer.boots, newer.time) < (ref.boots, ref.time):
                    self._clocks_due[engine_id] = ref
            for device, record in engines.items():
                self._engines_due.setdefault(device, record)
            raise
        self.stats.written += len(clocks) + len(engines)

    async def _read(self, conn: AsyncConnection[Any]) -> None:
        cur = await conn.execute(_NOW)
        row = await cur.fetchone()
        assert row is not None
        started = float(row[0])
        limit = self.clocks.max_engines
        rows = await self._rows(conn, "clocks", _READ_CLOCKS, started, limit)
        now = self.clocks.clock()
        for engine_id, boots, engine_time, age, digest, _ in rows:
            reference = EngineClock(int(boots), int(engine_time), now - float(age), bytes(digest))
            if self.clocks.adopt(bytes(engine_id), reference):
                self.stats.adopted += 1
        rows = await self._rows(conn, "engines", _READ_ENGINES, started, limit)
        configured = set(self._devices()) if rows else set()
        self._applying = True
        try:
            for device, engine_id, host, port, user, learned, _ in rows:
                if device not in configured:
                    continue
                added = self.engines.add(
                    str(device), str(host), int(port), bytes(engine_id), str(user), float(learned)
                )
                self.stats.adopted += added
        finally:
            self._applying = False

    async def _rows(
        self, conn: AsyncConnection[Any], table: str, sql: str, started: float, limit: int
    ) -> list[tuple[Any, ...]]:
        """The rows of ``table`` changed since the last read (all of them at the first),
        and moves the mark: back by :data:`LOOKBACK` from this read's start, for writes
        stamped before it and committed after; or to the last row read, when the limit
        cut the answer short."""
        since = self._since[table]
        params = {"since": since, "all": since == float("-inf"), "node": self.node}
        cur = await conn.execute(sql, {**params, "limit": limit})
        rows = list(await cur.fetchall())
        full = len(rows) >= limit
        self._since[table] = float(rows[-1][-1]) if full else started - LOOKBACK
        return rows

    # --- the connection -----------------------------------------------------------------

    async def _connection(self) -> AsyncConnection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = await AsyncConnection.connect(
            self.dsn,
            autocommit=True,
            connect_timeout=max(2, int(self.every)),  # libpq's minimum is 2 s
            application_name=f"{self.node}-usm",
            options=f"-c statement_timeout={int(STATEMENT_TIMEOUT * 1000)}",
        )
        return self._conn

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        await close_quietly(conn)

    # --- /metrics -----------------------------------------------------------------------

    def source(self) -> Callable[[], list[Sample]]:
        """The ``/metrics`` source of the sharing."""

        def read() -> list[Sample]:
            stats = self.stats
            return [
                MetricSample("netalert_cluster_usm_engines", len(self.clocks)),
                MetricSample("netalert_cluster_usm_written_total", stats.written),
                MetricSample("netalert_cluster_usm_adopted_total", stats.adopted),
                MetricSample("netalert_cluster_usm_sync_failures_total", stats.failures),
            ]

        return read
