"""``[ack]`` on cluster nodes: one mailbox reader for the cluster, the ack tables shared.

* :class:`PgAckTables`: the ack stage's tables (:class:`~netalert.ack.store.AckTables`) in
  PostgreSQL (schema 6). A token is written in the transaction of its mail (a write of the
  node's state writer, like the mail itself); the reader's look-ups and writes are short
  statements on a connection of their own, run in a worker thread of their own (a slow
  statement holds up the reply, not the event loop); the acknowledgements every node's dispatcher
  asks about at each flush are a copy read every ``[cluster] silence_refresh`` in a worker
  thread (a node sees an ack given through any node within that bound).
* :class:`MailboxLock`: the reader runs only on the node holding a PostgreSQL session
  advisory lock. The holder checks its session every ``lease / 3`` and stops reading when
  the check fails; a node that dies loses its session, and so the lock, at once (a session
  gone silent ends after ``idle_session_timeout``, three checks); the others try to take
  it every ``lease / 3``.
* :func:`shared_key`: the HMAC key of the reply tokens, the same on every node: ``[ack]
  secret_file`` when set (the same file on every node), else made once and kept in
  PostgreSQL (``cluster_secrets``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection, Connection

from netalert.ack.store import Ack, IssuedToken, TokenAlert
from netalert.alerts.model import Alert
from netalert.alerts.table import AlertRecord
from netalert.cluster.leases import Lease
from netalert.cluster.mail import PgWrite
from netalert.cluster.pgstore import read_active, read_alert
from netalert.cluster.shared import PgConnection, Refresher, close_in_thread, in_thread
from netalert.logs import event
from netalert.metrics import MetricSample, Source

__all__ = ["MailboxLock", "PgAckTables", "shared_key"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# pg_try_advisory_lock key of the mailbox reader: "na-imap!" in ASCII.
_MAILBOX_KEY = 0x6E612D696D617021

_ACKS = "SELECT fingerprint, starts_at, author, at, comment, via FROM acks"


async def shared_key(dsn: str) -> bytes:
    """The cluster's token key from PostgreSQL, made by the first node that asks; read in a
    worker thread (a reload that adds ``[ack]`` reads it on a running node).

    Raises:
        StateError: PostgreSQL refused or cannot be reached.
    """
    made = secrets.token_hex(32)

    def get(conn: Connection[Any]) -> str:
        conn.execute(
            "INSERT INTO cluster_secrets (name, value) VALUES ('ack_key', %s)"
            " ON CONFLICT (name) DO NOTHING",
            (made,),
        )
        row = conn.execute("SELECT value FROM cluster_secrets WHERE name = 'ack_key'").fetchone()
        assert row is not None
        return str(row[0])

    db = PgConnection(dsn)
    pool = ThreadPoolExecutor(1, thread_name_prefix="cluster-ack-key")

    def read() -> str:
        try:
            return db.call("reading the ack key", get)
        finally:
            db.close()

    try:
        return (await in_thread(pool, read, db.timeout * 2 + 1, db.interrupt)).encode("ascii")
    finally:
        pool.shutdown(wait=False)


class PgAckTables:
    """The ack tables of a cluster node (see the module docstring).

    Args:
        dsn: The cluster's database.
        refresh: Seconds between two reads of the acknowledgements.
        timeout: Seconds to connect, and for one statement.
    """

    def __init__(self, dsn: str, *, refresh: float, timeout: float = 2.0) -> None:
        self._db = PgConnection(dsn, timeout=timeout)  # the reply path's, in self._pool
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="cluster-ack")
        self._timeout = timeout * 2 + 1  # a call still running after it: connection broken
        self._reads = PgConnection(dsn, timeout=timeout)  # the refresher's
        self._acks: dict[str, Ack] = {}
        self.refresher = Refresher(
            "cluster_acks",
            self.read_acks,
            self._keep,
            period=refresh,
            timeout=timeout * 2 + 1,
            interrupt=self._reads.interrupt,
            close=self._reads.close,
        )

    # --- written with the mail ----------------------------------------------------------

    def record_token(
        self,
        conn: Any,
        *,
        nid: str,
        message_id: str,
        subject: str,
        alerts: Sequence[TokenAlert],
        expires: float,
        now: float,
    ) -> None:
        """Adds the token's row to the mail's write (``conn`` is its :class:`PgWrite`)."""
        assert isinstance(conn, PgWrite)
        data = json.dumps([[a.fingerprint, dict(a.labels)] for a in alerts], ensure_ascii=False)
        row = (nid, message_id, subject, data, expires, now)

        def insert(db: Connection[Any], leases: Mapping[int, Lease]) -> None:
            db.execute(
                "INSERT INTO ack_tokens (nid, message_id, subject, alerts, expires, created)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (nid) DO UPDATE SET"
                " message_id = EXCLUDED.message_id, subject = EXCLUDED.subject,"
                " alerts = EXCLUDED.alerts, expires = EXCLUDED.expires",
                row,
            )

        conn.ops.append(insert)

    # --- the reader's look-ups and writes (short statements, in the worker thread) ---------

    async def _call(self, what: str, fn: Callable[[Connection[Any]], T]) -> T:
        """``fn`` on the reply path's connection, in its worker thread.

        Raises:
            StateError: PostgreSQL refused or cannot be reached.
        """
        return await in_thread(
            self._pool, lambda: self._db.call(what, fn), self._timeout, self._db.interrupt
        )

    async def token(self, nid: str) -> IssuedToken | None:
        """The mail a token nid was issued for, or None."""
        row = await self._call(
            "reading a token",
            lambda db: db.execute(
                "SELECT nid, message_id, subject, alerts, expires FROM ack_tokens WHERE nid = %s",
                (nid,),
            ).fetchone(),
        )
        if row is None:
            return None
        alerts = tuple(TokenAlert(str(fp), dict(labels)) for fp, labels in json.loads(row[3]))
        return IssuedToken(str(row[0]), str(row[1]), str(row[2]), alerts, float(row[4]))

    async def used(self, nid: str, command: str) -> bool:
        """True when the token ``nid`` was already used for ``command``."""
        row = await self._call(
            "reading a token's use",
            lambda db: db.execute(
                "SELECT 1 FROM ack_used WHERE nid = %s AND command = %s", (nid, command)
            ).fetchone(),
        )
        return row is not None

    async def apply(
        self,
        nid: str | None,
        command: str,
        now: float,
        *,
        put: Sequence[Ack],
        delete: Sequence[str],
    ) -> int:
        """In one transaction: the token ``nid`` used for ``command`` (None: from a shell),
        acks put and deleted; returns how many acks were deleted. This node's copy follows
        at once, the others' within their refresh."""

        def write(db: Connection[Any]) -> int:
            with db.transaction():
                if nid is not None:
                    db.execute(
                        "INSERT INTO ack_used (nid, command, at) VALUES (%s, %s, %s)"
                        " ON CONFLICT DO NOTHING",
                        (nid, command, now),
                    )
                for ack in put:
                    db.execute(
                        "INSERT INTO acks (fingerprint, starts_at, author, at, comment, via)"
                        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (fingerprint) DO UPDATE"
                        " SET starts_at = EXCLUDED.starts_at, author = EXCLUDED.author,"
                        " at = EXCLUDED.at, comment = EXCLUDED.comment, via = EXCLUDED.via",
                        (ack.fingerprint, ack.starts_at, ack.by, ack.at, ack.comment, ack.via),
                    )
                if not delete:
                    return 0
                cur = db.execute("DELETE FROM acks WHERE fingerprint = ANY(%s)", (list(delete),))
                return max(cur.rowcount, 0)

        deleted = await self._call("recording an ack", write)
        acks = dict(self._acks)
        acks.update({ack.fingerprint: ack for ack in put})
        for fingerprint in delete:
            acks.pop(fingerprint, None)
        self._acks = acks
        self.refresher.changed()
        return deleted

    async def position(self, folder: str) -> tuple[int, int] | None:
        """``(uidvalidity, last_uid)`` handled in ``folder``, or None before the first."""
        row = await self._call(
            "reading the mailbox position",
            lambda db: db.execute(
                "SELECT uidvalidity, last_uid FROM ack_mailbox WHERE folder = %s", (folder,)
            ).fetchone(),
        )
        return None if row is None else (int(row[0]), int(row[1]))

    async def save_position(self, folder: str, uidvalidity: int, uid: int) -> None:
        """Records the last UID handled in ``folder``."""
        await self._call(
            "recording the mailbox position",
            lambda db: db.execute(
                "INSERT INTO ack_mailbox (folder, uidvalidity, last_uid) VALUES (%s, %s, %s)"
                " ON CONFLICT (folder) DO UPDATE SET uidvalidity = EXCLUDED.uidvalidity,"
                " last_uid = EXCLUDED.last_uid",
                (folder, uidvalidity, uid),
            ),
        )

    def active(self) -> list[Alert]:
        """Every pending or firing alert of the cluster, oldest first (a shell's list)."""
        records = self._db.call("reading the alerts", read_active)
        return [record.alert for record in records]

    async def alert(self, fingerprint: str) -> AlertRecord | None:
        """An alert of any node's shards as stored (a reply to a mail another node sent)."""
        return await self._call("reading an alert", lambda db: read_alert(db, fingerprint))

    async def prune(self, now: float, firing: Mapping[str, float]) -> int:
        """Deletes expired tokens (and their uses) and the acks of episodes no longer
        firing in the shared ``alerts`` (``firing``, this node's alone, is not used)."""

        def delete(db: Connection[Any]) -> int:
            with db.transaction():
                gone = db.execute(
                    "DELETE FROM ack_used WHERE nid IN"
                    " (SELECT nid FROM ack_tokens WHERE expires < %s)",
                    (now,),
                ).rowcount
                gone += db.execute("DELETE FROM ack_tokens WHERE expires < %s", (now,)).rowcount
                gone += db.execute(
                    "DELETE FROM acks a WHERE NOT EXISTS (SELECT 1 FROM alerts x"
                    " WHERE x.fingerprint = a.fingerprint AND x.state = 'firing'"
                    " AND x.starts_at = a.starts_at)"
                ).rowcount
            return max(gone, 0)

        return await self._call("cleaning the ack tables", delete)

    # --- the acknowledgements every flush asks about ----------------------------------------

    def acks(self) -> dict[str, Ack]:
        """Every acknowledgement, as last read."""
        return self._acks

    def read_acks(self) -> dict[str, Ack]:
        """Every acknowledgement, read now (a blocking call: the refresher's, a shell's)."""
        rows = self._reads.call("reading the acks", lambda db: db.execute(_ACKS).fetchall())
        return {
            str(r[0]): Ack(str(r[0]), float(r[1]), str(r[2]), float(r[3]), str(r[4]), str(r[5]))
            for r in rows
        }

    def _keep(self, acks: dict[str, Ack]) -> None:
        self._acks = acks

    def load(self) -> None:
        """Reads the acknowledgements now (a blocking call: a shell's, no refresher)."""
        self._acks = self.read_acks()

    async def stop(self) -> None:
        """Stops refreshing and closes the connections."""
        await self.refresher.stop()
        await close_in_thread(self._pool, self._db.close, self._db.interrupt, self._timeout)

    def close(self) -> None:
        """Closes the connections (a shell's tables: no refresher started)."""
        self._db.close()
        self._reads.close()
        self._pool.shutdown(wait=False)


class MailboxLock:
    """Runs the mailbox reader on one node of the cluster at a time (module docstring).

    Args:
        dsn: The cluster's database.
        node: This node's name (in the log).
        check: Seconds between two checks of the session (and two tries of the lock).
    """

    def __init__(self, dsn: str, *, node: str, check: float) -> None:
        self.dsn = dsn
        self.node = node
        self.check = check
        self.held = False
        self.taken = 0  # times this node took the lock

    async def _connect(self) -> AsyncConnection[Any]:
        conn = await AsyncConnection.connect(
            self.dsn,
            autocommit=True,
            connect_timeout=max(1, round(self.check)),
            keepalives=1,
            keepalives_idle=max(1, round(self.check)),
            keepalives_interval=1,
            keepalives_count=3,
        )
        # A holder gone silent (a partition) loses its session, and the lock, after three
        # checks missed. PostgreSQL before 14 has no such setting: there the session ends
        # only when the server's TCP keepalives give up on it.
        idle = max(1000, round(self.check * 3000))
        try:
            await conn.execute(f"SET idle_session_timeout = {idle}")
        except psycopg.Error as exc:
            log.warning(event("ack_mailbox_no_idle_timeout", node=self.node, error=exc))
        return conn

    async def run(self, body: Callable[[], Awaitable[None]]) -> None:
        """``body()`` while this node holds the lock; tries again after each loss, until
        cancelled."""
        while True:
            conn: AsyncConnection[Any] | None = None
            task: asyncio.Future[None] | None = None
            try:
                conn = await asyncio.wait_for(self._connect(), self.check * 3)
                await self._wait_for_lock(conn)
                self.held = True
                self.taken += 1
                log.info(event("ack_mailbox_held", node=self.node))
                task = asyncio.ensure_future(body())
                while True:
                    await asyncio.wait({task}, timeout=self.check)
                    if task.done():
                        task.result()  # the reader ends only by failing: raised here
                    await asyncio.wait_for(conn.execute("SELECT 1"), self.check)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log.warning(event("ack_mailbox_released", node=self.node, error=exc))
            finally:
                self.held = False
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                if conn is not None:
                    with contextlib.suppress(psycopg.Error, OSError):
                        await conn.close()
            await asyncio.sleep(self.check)

    async def _wait_for_lock(self, conn: AsyncConnection[Any]) -> None:
        """Returns once this session holds the lock (tried every ``check`` seconds: another
        node reads the mailbox meanwhile)."""
        for attempt in itertools.count():
            if attempt:
                await asyncio.sleep(self.check)
            cur = await asyncio.wait_for(
                conn.execute("SELECT pg_try_advisory_lock(%s)", (_MAILBOX_KEY,)), self.check
            )
            row = await cur.fetchone()
            if row and row[0]:
                return

    def source(self) -> Source:
        """A metrics source: whether this node reads the mailbox."""

        def read() -> list[MetricSample]:
            return [MetricSample("netalert_cluster_ack_mailbox_held", float(self.held))]

        return read
