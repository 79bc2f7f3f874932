"""Alert state in the shared PostgreSQL: :class:`PgAlertStore`, an :class:`AlertStore`.

The same protocol as the embedded database's :class:`~netalert.alerts.store.SqliteAlertStore`
(the rows hold the same columns, written and read by the same functions), with
two additions that make it safe for several nodes:

* every row carries its **shard**, the shard of its device
  (:func:`~netalert.cluster.shards.shard_of`), and the fencing epoch it was
  written under;
* every save is **fenced**: its one transaction first locks the lease rows of
  every shard it touches and checks that this node still holds them at the
  epochs it knows (:func:`~netalert.cluster.fence.fenced_sync`). A node whose
  lease moved on gets :class:`~netalert.cluster.errors.StaleLeaseError` and
  nothing of the save is written.

The store uses a blocking psycopg connection, as the protocol is synchronous.
Its lock and statement timeouts bound every save, so a save cannot hang on a
lease row locked by a transaction that waits for the same thread; an agent calls
it outside its event loop. A save that loses its connection (PostgreSQL
restarted, a network cut) reconnects and is made once more: a save is
idempotent (whole rows upserted, deletes by key), so repeating one whose commit
may or may not have happened is safe. If that fails too, it raises
``StateWriteError`` and the next save connects afresh.

The schema is the package's migrations (``migrations/0002_alerts.sql``), which
the node's :class:`~netalert.cluster.leases.LeaseManager` applies at start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import Connection

from netalert.alerts.store import Lost, Records, record_row, row_record
from netalert.alerts.table import AlertRecord
from netalert.cluster.errors import StaleLeaseError
from netalert.cluster.fence import fenced_sync
from netalert.cluster.leases import Lease
from netalert.cluster.shards import shard_of
from netalert.errors import StateError, StateWriteError
from netalert.logs import event

__all__ = [
    "Extra",
    "LeaseOf",
    "PgAlertStore",
    "break_connection",
    "escape_text",
    "read_active",
    "read_alert",
    "unescape_text",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

LeaseOf = Callable[[int], Lease | None]
"""This node's current lease of a shard, or None (``LeaseManager.lease_of``)."""

_COLUMNS = (
    "fingerprint, lookup_key, rule, severity, device, labels, annotations, state, starts_at,"
    " ends_at, updated_at, value, count, flapping, silenced, source, varbinds, engine"
)
_UPDATED = ", ".join(
    f"{column} = EXCLUDED.{column}"
    for column in ["shard", "epoch", *(c.strip() for c in _COLUMNS.split(",")[1:])]
)
_UPSERT = (
    f"INSERT INTO alerts (shard, epoch, {_COLUMNS}) VALUES ("
    + ", ".join(["%s"] * 20)
    + f") ON CONFLICT (fingerprint) DO UPDATE SET {_UPDATED}"
)


# Columns of free text (from the config or the network: a value may hold NUL, which a
# PostgreSQL text cannot): stored with backslash and NUL escaped as \\ and \0.
_FREE_TEXT = (1, 2, 3, 4, 11, 15)
_ESCAPED = re.compile(r"\\([\\0])")


def escape_text(text: str) -> str:
    """``text`` as stored in a PostgreSQL text column: backslash and NUL escaped."""
    return text.replace("\\", "\\\\").replace("\x00", "\\0")


def unescape_text(text: str) -> str:
    """The text :func:`escape_text` stored."""
    return _ESCAPED.sub(lambda m: "\x00" if m.group(1) == "0" else "\\", text)


def break_connection(conn: Connection[Any] | None) -> None:
    """Shuts the socket of ``conn`` down, from any thread: a call hanging on it (a network
    gone silent, as behind a partition: nothing answers, nothing fails) fails at once."""
    if conn is None or conn.closed:
        return
    try:
        dup = socket.socket(fileno=os.dup(conn.fileno()))
    except (OSError, psycopg.Error):
        return
    with dup, contextlib.suppress(OSError):
        dup.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True, slots=True)
class Extra:
    """A write made in the same fenced transaction as a save (:meth:`PgAlertStore.commit`):
    the shards it writes under, and the SQL, given the connection and the leases."""

    shards: frozenset[int]
    apply: Callable[[Connection[Any], Mapping[int, Lease]], None]


def _to_pg(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(escape_text(v) if i in _FREE_TEXT else v for i, v in enumerate(row))


def _from_pg(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(unescape_text(v) if i in _FREE_TEXT else v for i, v in enumerate(row))


def read_alert(conn: Connection[Any], fingerprint: str) -> AlertRecord | None:
    """The stored record of one alert, whatever its shard (None: not stored)."""
    cur = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE fingerprint = %s", (fingerprint,))
    row = cur.fetchone()
    return None if row is None else row_record(_from_pg(row))


def read_active(conn: Connection[Any]) -> list[AlertRecord]:
    """The stored records of every pending or firing alert, oldest first."""
    cur = conn.execute(
        f"SELECT {_COLUMNS} FROM alerts WHERE state IN ('pending', 'firing')"
        " ORDER BY starts_at, fingerprint"
    )
    return [row_record(_from_pg(row)) for row in cur.fetchall()]


class PgAlertStore:
    """The :class:`~netalert.alerts.store.AlertStore` of a cluster node: table ``alerts``
    in the shared PostgreSQL, every save fenced by the leases of its shards.

    Args:
        dsn: The shared database (a ``postgresql://`` URI), migrated.
        node: This node's name (in the errors).
        shards: The cluster's shard count.
        lease_of: This node's current lease of a shard, or None.
        connect_timeout: Seconds to connect.
        lock_timeout: Seconds a save waits for a lease or alert row lock.
        statement_timeout: Seconds one statement of a save may take.
    """

    def __init__(
        self,
        dsn: str,
        *,
        node: str,
        shards: int,
        lease_of: LeaseOf,
        connect_timeout: float = 5.0,
        lock_timeout: float = 2.0,
        statement_timeout: float = 5.0,
    ) -> None:
        if shards < 1 or min(connect_timeout, lock_timeout, statement_timeout) <= 0:
            raise ValueError("shards must be at least 1 and the timeouts positive")
        self.dsn = dsn
        self.node = node
        self.shards = shards
        self._lease_of = lease_of
        self._connect_timeout = max(1, round(connect_timeout))
        self._options = (
            f"-c lock_timeout={round(lock_timeout * 1000)}"
            f" -c statement_timeout={round(statement_timeout * 1000)}"
        )
        self._tcp_timeout = round((lock_timeout + statement_timeout) * 1000)
        # longest a call may take before the caller breaks its connection (interrupt)
        self.call_timeout = lock_timeout + statement_timeout + 1.0
        self._conn: Connection[Any] | None = None

    def shard_of(self, record: AlertRecord) -> int:
        """The shard of ``record``: its device's."""
        return shard_of(record.alert.device, self.shards)

    def interrupt(self) -> None:
        """Makes a call hanging on the connection fail now (from another thread)."""
        break_connection(self._conn)

    def close(self) -> None:
        """Closes the connection (the next call connects again)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def load(self) -> list[AlertRecord]:
        """The stored records of the shards this node holds now.

        Raises:
            StateWriteError: PostgreSQL cannot be read (after one reconnect).
        """
        return self.load_shards([s for s in range(self.shards) if self._lease_of(s) is not None])

    def load_shards(self, shards: Collection[int]) -> list[AlertRecord]:
        """The stored records of ``shards`` (a node taking them over).

        Raises:
            StateWriteError: PostgreSQL cannot be read (after one reconnect).
        """
        wanted = sorted(shards)

        def read(conn: Connection[Any]) -> list[AlertRecord]:
            cur = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE shard = ANY(%s)", (wanted,))
            return [row_record(_from_pg(row)) for row in cur.fetchall()]

        return self._retrying("load", read) if wanted else []

    def read(self, what: str, call: Callable[[Connection[Any]], T]) -> T:
        """``call`` on this store's connection (reconnected once if it failed): other
        tables read with the alerts (the notification log of shards taken over).

        Raises:
            StateWriteError: PostgreSQL cannot be read (after one reconnect).
        """
        return self._retrying(what, call)

    def save(self, changed: Records, removed: Sequence[str], *, on_lost: Lost) -> None:
        """Upserts ``changed`` and deletes ``removed`` in one fenced transaction.

        Nothing is held: ``on_lost`` is never called; a save that raises wrote nothing.

        Raises:
            StaleLeaseError: A shard of the save is not (any more) this node's at
                the epoch it knows; nothing was written.
            StateWriteError: PostgreSQL cannot take the save (after one reconnect).
        """
        self.commit(changed, removed, ())

    def commit(
        self,
        changed: Records,
        removed: Sequence[str],
        extra: Sequence[Extra],
        leases: Mapping[int, Lease] | None = None,
    ) -> None:
        """:meth:`save`, and ``extra`` writes after it, in one transaction fenced by the
        leases of every shard the records, the removals and ``extra`` touch: those of
        ``leases`` (what the node held when it made the changes), else its current ones.

        A lost connection is replaced and the whole transaction made once more: every
        write in it must be idempotent (``extra`` writes too).

        Raises:
            StaleLeaseError: A shard is not (any more) this node's at the epoch it
                knows; nothing was written.
            StateWriteError: PostgreSQL cannot take it (after one reconnect).
            StateError: PostgreSQL refused it for another reason (a bug).
        """
        if not changed and not removed and not extra:
            return
        records = list(changed)
        deleted = list(removed)
        writes = list(extra)
        pinned = dict(leases or {})

        def write(conn: Connection[Any]) -> None:
            with conn.transaction():
                shards = {self.shard_of(record) for record in records}
                for item in writes:
                    shards.update(item.shards)
                if deleted:
                    cur = conn.execute(
                        "SELECT DISTINCT shard FROM alerts WHERE fingerprint = ANY(%s)",
                        (deleted,),
                    )
                    shards.update(int(shard) for (shard,) in cur.fetchall())
                fence = {shard: pinned.get(shard) or self._lease(shard) for shard in shards}
                with fenced_sync(conn, fence.values()):
                    if deleted:
                        conn.execute("DELETE FROM alerts WHERE fingerprint = ANY(%s)", (deleted,))
                    if records:
                        with conn.cursor() as cur:
                            cur.executemany(
                                _UPSERT,
                                [
                                    (s, fence[s].epoch, *_to_pg(record_row(r)))
                                    for r in records
                                    for s in (self.shard_of(r),)
                                ],
                            )
                    for item in writes:
                        item.apply(conn, fence)

        self._retrying("save", write)

    def _lease(self, shard: int) -> Lease:
        # Without a lease the node still asks the database, which names the holder
        # in the refusal; epoch 0 is never a held lease's.
        return self._lease_of(shard) or Lease(shard, self.node, 0)

    def _connect(self) -> Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                options=self._options,
                # a silent network (a partition) fails a call instead of hanging it
                tcp_user_timeout=self._tcp_timeout,
                keepalives=1,
                keepalives_idle=max(1, self._tcp_timeout // 2000),
                keepalives_interval=1,
                keepalives_count=3,
            )
        return self._conn

    def _retrying(self, what: str, call: Callable[[Connection[Any]], T]) -> T:
        """``call`` on the connection; once more on a fresh one if the connection failed."""
        for attempt in (1, 2):
            try:
                return call(self._connect())
            except StaleLeaseError:
                raise
            except psycopg.OperationalError as exc:
                self.close()
                log.warning(
                    event("cluster_store_failed", what=what, attempt=attempt, error=str(exc))
                )
                if attempt == 2:
                    raise StateWriteError(
                        f"alert {what} in PostgreSQL failed twice (reconnected once): {exc}"
                    ) from exc
            except psycopg.Error as exc:
                raise StateError(f"alert {what} in PostgreSQL refused: {exc}") from exc
        raise AssertionError("unreachable")
