"""What every node of a cluster shares beyond its shards: the silences, and the clean-up of
old rows (schema 6).

* :class:`PgSilenceStore`: the silence store protocol (:class:`~netalert.notify.silences.Silences`)
  on the table ``silences``; ``netalert silence add/list/expire`` use it when the config has
  ``[cluster]``, and so does a node for the silences a reply by mail makes.
* :class:`SharedSilences`: a node's silence stage reads the silences at each flush, on the
  event loop; it gets the copy read last, and a task reads the table afresh every
  ``[cluster] silence_refresh`` in a worker thread: a silence made on any node counts on
  every node within that bound (a refresh that fails keeps the last copy, logged, counted).
  What a node writes (the silence a reply by mail makes) is written in a worker thread too.
* :class:`Cleanup`: every ``[limits] prune_interval`` a node deletes, ``[limits]
  prune_batch`` rows per transaction, what is older than ``[cluster] retention``: sent
  mails (with their notification row), the notification-log rows of groups told resolved
  whose alerts are gone, and the thread roots of ended episodes; and what is unchanged
  for ``[cluster] usm_retention``: the SNMPv3 senders' clocks, and the engine IDs of
  devices no longer in the config. Each transaction first
  takes a transaction-level advisory lock without waiting: whichever node holds it cleans,
  the others skip that round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import psycopg
from psycopg import Connection

from netalert.cluster.pgstore import break_connection
from netalert.errors import StateError
from netalert.logs import event
from netalert.matchers import Matcher
from netalert.metrics import MetricSample, Source
from netalert.notify.silences import Silence, Silences, new_silence, silence_of, silence_row

__all__ = [
    "CLEANUP_TABLES",
    "Cleanup",
    "PgConnection",
    "PgSilenceStore",
    "Refresher",
    "SharedSilences",
    "close_in_thread",
    "in_thread",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

# pg_try_advisory_xact_lock key of the clean-up: "na-clean" in ASCII.
_CLEANUP_KEY = 0x6E612D636C65616E
CLEANUP_TABLES = ("outbox", "nflog", "mail_threads", "usm_clocks", "usm_engines")
_USM_TABLES = frozenset({"usm_clocks", "usm_engines"})  # past `usm_retention`, not `retention`

_SILENCE_COLUMNS = "id, matchers, starts_at, ends_at, comment, author, created_at"

# Sent mails with their notification row (outbox rows go with it: ON DELETE CASCADE).
_DELETE_SENT = (
    "DELETE FROM notification_log WHERE id IN (SELECT o.id FROM outbox o"
    " WHERE o.sent IS NOT NULL AND o.sent < to_timestamp(%(cutoff)s) ORDER BY o.id"
    " LIMIT %(limit)s)"
)
# A group's row on a shard once it told nothing firing there, long enough ago, and no
# alert it names is still stored (its resolution would be told again without the row).
_DELETE_NFLOG = (
    "DELETE FROM nflog WHERE ctid IN (SELECT n.ctid FROM nflog n"
    " WHERE n.firing = '[]' AND n.sent_at < %(cutoff)s AND NOT EXISTS ("
    "SELECT 1 FROM alerts a WHERE a.shard = n.shard AND n.resolved::jsonb ? a.fingerprint)"
    " LIMIT %(limit)s)"
)
# A thread root once its episode began long enough ago and no shard's row of the group
# tells an alert firing (the episode ended: its next mail starts a new thread anyway).
_DELETE_THREADS = (
    "DELETE FROM mail_threads WHERE ctid IN (SELECT t.ctid FROM mail_threads t"
    " WHERE t.updated < %(cutoff)s AND NOT EXISTS ("
    "SELECT 1 FROM nflog n WHERE n.group_key = t.group_key AND n.firing <> '[]')"
    " LIMIT %(limit)s)"
)
# A sender's clock reference no authenticated trap moved for that long (its next trap is
# believed, as after a restart).
_DELETE_CLOCKS = (
    "DELETE FROM usm_clocks WHERE engine_id IN (SELECT engine_id FROM usm_clocks"
    " WHERE changed < %(cutoff)s LIMIT %(limit)s)"
)
# An engine ID is written only when it changes: a device still configured keeps its row
# however old; one no longer in the cleaning node's config goes once unchanged that long.
_DELETE_ENGINES = (
    "DELETE FROM usm_engines WHERE device IN (SELECT device FROM usm_engines"
    " WHERE changed < %(cutoff)s AND device <> ALL(%(devices)s) LIMIT %(limit)s)"
)
_DELETES = dict(
    zip(
        CLEANUP_TABLES,
        (_DELETE_SENT, _DELETE_NFLOG, _DELETE_THREADS, _DELETE_CLOCKS, _DELETE_ENGINES),
        strict=True,
    )
)


async def in_thread(
    pool: ThreadPoolExecutor,
    call: Callable[[], T],
    interrupt_after: float,
    interrupt: Callable[[], None],
) -> T:
    """``call()`` in ``pool`` (its one thread owns the connection), off the event loop;
    every ``interrupt_after`` seconds it still runs, ``interrupt()`` breaks its connection (a
    silent network: the call fails instead of hanging).

    Raises:
        Whatever ``call`` raises.
    """
    future = asyncio.get_running_loop().run_in_executor(pool, call)
    while True:
        done, _ = await asyncio.wait({future}, timeout=interrupt_after)
        if done:
            return future.result()
        interrupt()


async def close_in_thread(
    pool: ThreadPoolExecutor,
    close: Callable[[], None],
    interrupt: Callable[[], None],
    wait: float,
) -> None:
    """Breaks a call still running in ``pool``, closes the connection there (its thread
    owns it; given up after ``wait`` seconds), and lets the pool's thread end."""
    interrupt()
    closing = asyncio.get_running_loop().run_in_executor(pool, close)
    await asyncio.wait({closing}, timeout=wait)
    pool.shutdown(wait=False)


class PgConnection:
    """One autocommit connection, made again after a failure; used by one thread at a time."""

    def __init__(self, dsn: str, *, timeout: float = 5.0) -> None:
        self.dsn = dsn
        self.timeout = timeout
        self._conn: Connection[Any] | None = None

    def call(self, what: str, fn: Callable[[Connection[Any]], T]) -> T:
        """``fn`` on the connection, once more on a fresh one if the connection failed.

        Raises:
            StateError: PostgreSQL refused or cannot be reached.
        """
        for attempt in (1, 2):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(
                        self.dsn,
                        autocommit=True,
                        connect_timeout=max(1, round(self.timeout)),
                        options=f"-c statement_timeout={round(self.timeout * 1000)}",
                    )
                return fn(self._conn)
            except psycopg.OperationalError as exc:
                self.close()
                if attempt == 2:
                    raise StateError(f"{what} in PostgreSQL failed: {exc}") from exc
            except psycopg.Error as exc:
                raise StateError(f"{what} in PostgreSQL refused: {exc}") from exc
        raise AssertionError("unreachable")

    def interrupt(self) -> None:
        """Makes a call hanging on the connection fail now (from another thread)."""
        break_connection(self._conn)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                conn.close()


class Refresher(Generic[T]):
    """A copy of what ``read()`` returns, read again every ``period`` seconds (or at once
    after :meth:`changed`) in a worker thread of its own; a read that fails keeps the copy
    read last (logged once as ``<name>_unread``, counted in :attr:`failures`).

    Args:
        name: For the log and the task (``cluster_silences``).
        read: Reads the table (in the worker thread).
        keep: Takes each good read (on the loop).
        period: Seconds between two reads.
        timeout: Seconds a read may hang before ``interrupt()`` breaks its connection.
        interrupt: Makes a read hanging on its connection fail (from another thread).
        close: Closes the reader's connection (in the worker thread, at the stop).
    """

    def __init__(
        self,
        name: str,
        read: Callable[[], T],
        keep: Callable[[T], None],
        *,
        period: float,
        timeout: float,
        interrupt: Callable[[], None],
        close: Callable[[], None],
    ) -> None:
        self.name = name
        self._read = read
        self._keep = keep
        self.period = period
        self.timeout = timeout
        self._interrupt = interrupt
        self._close = close
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name.replace("_", "-"))
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self.reads = 0
        self.failures = 0

    async def read(self) -> None:
        """Reads now (in the worker thread).

        Raises:
            StateError: PostgreSQL refused or cannot be reached.
        """
        self._keep(await in_thread(self._pool, self._read, self.timeout, self._interrupt))
        self.reads += 1

    def changed(self) -> None:
        """Read again now."""
        self._kick.set()

    async def run(self) -> None:
        """Reads every ``period`` seconds (or when :meth:`changed`) until cancelled."""
        while True:
            try:
                await self.read()
                if self._failing:
                    log.info(event(f"{self.name}_read"))
                self._failing = False
            except StateError as exc:
                self.failures += 1
                if not self._failing:
                    log.warning(event(f"{self.name}_unread", error=exc))
                self._failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout=self.period)
            self._kick.clear()

    def start(self) -> None:
        """Starts reading in the background."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        """Stops reading and closes the reader's connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await close_in_thread(self._pool, self._close, self._interrupt, self.timeout)


class PgSilenceStore(Silences):
    """The silence store protocol on PostgreSQL's ``silences`` (synchronous: the CLI, and a
    node's worker thread).

    Args:
        dsn: The cluster's database.
        timeout: Seconds to connect, and for one statement.
    """

    def __init__(self, dsn: str, *, timeout: float = 5.0) -> None:
        self.dsn = dsn
        self._db = PgConnection(dsn, timeout=timeout)

    def add_matchers(
        self,
        parsed: Sequence[Matcher],
        *,
        starts_at: float,
        ends_at: float,
        comment: str,
        author: str,
    ) -> Silence:
        """As :meth:`SilenceStore.add_matchers
        <netalert.notify.silences.SilenceStore.add_matchers>`."""
        silence = new_silence(
            parsed, starts_at=starts_at, ends_at=ends_at, comment=comment, author=author
        )
        row = silence_row(silence)
        self._db.call(
            "adding a silence",
            lambda conn: conn.execute(
                f"INSERT INTO silences ({_SILENCE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                row,
            ),
        )
        return silence

    def list(self, now: float, *, include_expired: bool = False) -> list[Silence]:
        """Silences not yet ended (all with ``include_expired``), newest first."""
        where = "" if include_expired else " WHERE ends_at > %s"
        sql = f"SELECT {_SILENCE_COLUMNS} FROM silences{where} ORDER BY created_at DESC"
        rows = self._db.call(
            "reading the silences",
            lambda conn: conn.execute(sql, () if include_expired else (now,)).fetchall(),
        )
        return [silence_of(row) for row in rows]

    def expire(self, silence_id: str, now: float) -> bool:
        """Ends a silence now; False when no active silence has that id."""
        cur = self._db.call(
            "expiring a silence",
            lambda conn: conn.execute(
                "UPDATE silences SET ends_at = %s WHERE id = %s AND ends_at > %s",
                (now, silence_id, now),
            ),
        )
        return cur.rowcount > 0

    def interrupt(self) -> None:
        """Makes a call hanging on the connection fail now (from another thread)."""
        self._db.interrupt()

    def close(self) -> None:
        """Closes the connection (the next call connects again)."""
        self._db.close()


class SharedSilences(Silences):
    """A node's view of the shared silences (see the module docstring). A node writes them
    from its event loop only, through the coroutines (a reply by mail): each statement runs
    in a worker thread of its own on a connection of its own, so a slow one holds up the
    reply, never the loop (it has no blocking :meth:`add_matchers` and :meth:`expire`).

    Args:
        store: The table (read in the refresher's worker thread).
        refresh: Seconds between two reads of the table.
        timeout: Seconds a read or write may hang before its connection is broken.
        clock: Wall-clock seconds.
    """

    def __init__(
        self,
        store: PgSilenceStore,
        *,
        refresh: float,
        timeout: float = 8.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clock = clock
        self.timeout = timeout
        self._silences: list[Silence] = []
        self._writes = PgSilenceStore(store.dsn)  # the writer's, in self._pool
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="cluster-silence-write")
        self.refresher = Refresher(
            "cluster_silences",
            lambda: store.list(clock()),
            self._keep,
            period=refresh,
            timeout=timeout,
            interrupt=store.interrupt,
            close=store.close,
        )

    def _keep(self, silences: list[Silence]) -> None:
        self._silences = silences

    async def _write(self, call: Callable[[PgSilenceStore], T]) -> T:
        """``call`` on the writer's connection, in its worker thread.

        Raises:
            StateError: PostgreSQL refused or cannot be reached.
        """
        return await in_thread(
            self._pool, lambda: call(self._writes), self.timeout, self._writes.interrupt
        )

    async def add_matchers_async(
        self,
        parsed: Sequence[Matcher],
        *,
        starts_at: float,
        ends_at: float,
        comment: str,
        author: str,
    ) -> Silence:
        """Adds to the table (a reply by mail), counted here at once, read again soon.

        Raises:
            NetalertError: An empty comment, or an end before the start.
            StateError: PostgreSQL refused or cannot be reached.
        """
        silence = await self._write(
            lambda store: store.add_matchers(
                parsed, starts_at=starts_at, ends_at=ends_at, comment=comment, author=author
            )
        )
        self._silences = [silence, *self._silences]
        self.refresher.changed()
        return silence

    async def expire_async(self, silence_id: str, now: float) -> bool:
        """Ends a silence in the table, then reads it again soon.

        Raises:
            StateError: PostgreSQL refused or cannot be reached.
        """
        done = await self._write(lambda store: store.expire(silence_id, now))
        self.refresher.changed()
        return done

    async def stop(self) -> None:
        """Stops reading, closes the reader's and the writer's connections."""
        await self.refresher.stop()
        await close_in_thread(self._pool, self._writes.close, self._writes.interrupt, self.timeout)

    def list(self, now: float, *, include_expired: bool = False) -> list[Silence]:
        """The silences as last read that have not ended at ``now`` (the read holds only
        silences not ended then: ``include_expired`` adds nothing)."""
        return [s for s in self._silences if s.ends_at > now]

    def source(self) -> Source:
        """A metrics source: the reads of the table and the failed ones."""

        def read() -> list[MetricSample]:
            return [
                MetricSample("netalert_cluster_silence_reads_total", self.refresher.reads),
                MetricSample(
                    "netalert_cluster_silence_read_failures_total", self.refresher.failures
                ),
            ]

        return read


class Cleanup:
    """Deletes old rows of the shared tables (see the module docstring).

    Args:
        dsn: The cluster's database.
        retention: Returns ``[cluster] retention`` in seconds.
        batch: Returns ``[limits] prune_batch``.
        usm_retention: Returns ``[cluster] usm_retention`` in seconds.
        devices: Returns the names of the devices in the config in force.
        clock: Wall-clock seconds.
    """

    def __init__(
        self,
        dsn: str,
        *,
        retention: Callable[[], float],
        batch: Callable[[], int],
        usm_retention: Callable[[], float],
        devices: Callable[[], Iterable[str]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = PgConnection(dsn)
        self.retention = retention
        self.batch = batch
        self.usm_retention = usm_retention
        self.devices = devices
        self.clock = clock
        self.rows = dict.fromkeys(CLEANUP_TABLES, 0)  # deleted since the start, by table
        self.rounds = 0  # rounds this node cleaned (held the lock)

    def prune_batch(
        self, table: str, cutoff: float, limit: int, devices: Sequence[str] = ()
    ) -> int | None:
        """One transaction: deletes up to ``limit`` rows of ``table`` older than ``cutoff``
        (``usm_engines``: of devices not among ``devices``); None when another node holds
        the clean-up lock (nothing deleted).

        Raises:
            StateError: PostgreSQL refused or cannot be reached.
        """

        def delete(conn: Connection[Any]) -> int | None:
            with conn.transaction():
                cur = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_CLEANUP_KEY,))
                row = cur.fetchone()
                if row is None or not row[0]:
                    return None
                params = {"cutoff": cutoff, "limit": limit, "devices": list(devices)}
                cur = conn.execute(_DELETES[table], params)
                return max(cur.rowcount, 0)

        return self._db.call(f"cleaning {table}", delete)

    def prune(self) -> dict[str, int] | None:
        """One round over the tables (in a worker thread); the rows deleted by table, or None
        when another node cleans.

        Raises:
            StateError: PostgreSQL refused or cannot be reached (what was deleted stays so).
        """
        now = self.clock()
        cutoff, usm_cutoff = now - self.retention(), now - self.usm_retention()
        limit = self.batch()
        devices = sorted(set(self.devices()))
        done = dict.fromkeys(CLEANUP_TABLES, 0)
        for table in CLEANUP_TABLES:
            before = usm_cutoff if table in _USM_TABLES else cutoff
            while True:
                deleted = self.prune_batch(table, before, limit, devices)
                if deleted is None:
                    return None
                done[table] += deleted
                self.rows[table] += deleted
                if deleted < limit:
                    break
        self.rounds += 1
        return done

    async def run(self, interval: Callable[[], float]) -> None:
        """A round every ``interval()`` seconds until cancelled; a failed round is logged."""
        while True:
            await asyncio.sleep(interval())
            try:
                done = await asyncio.to_thread(self.prune)
            except StateError as exc:
                log.warning(event("cluster_cleanup_failed", error=exc))
                continue
            if done is not None and any(done.values()):
                log.info(event("cluster_cleaned", **done))

    def interrupt(self) -> None:
        """Makes a call hanging on the connection fail now (from another thread)."""
        self._db.interrupt()

    def close(self) -> None:
        """Closes the connection."""
        self._db.close()

    def source(self) -> Source:
        """A metrics source: rows deleted by table."""

        def read() -> list[MetricSample]:
            return [
                MetricSample("netalert_cluster_pruned_rows_total", n, {"table": table})
                for table, n in self.rows.items()
            ]

        return read
