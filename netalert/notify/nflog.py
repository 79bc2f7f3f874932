"""The notification log: what each group was last told, so nothing is mailed twice.

The dedup decision is the pure function :func:`decide`; the log itself is a
SQLite table written in the same transaction as the outbox entry, so after a
crash either both the mail and its log entry exist, or neither. Entries of
groups no longer live are pruned after ``[limits] retention``
(:meth:`NotificationLog.prune`).


While that transaction waits in memory (the disk is full, see
:mod:`netalert.state.writer`), :meth:`NotificationLog.hold` makes :meth:`get`
answer what the log will say once it is written, so a group is not mailed a
second time meanwhile; :meth:`NotificationLog.release` ends that when the write
is committed or shed (shed: the group is decided again at its next flush).
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Protocol

from netalert.notify.model import Notification, Reason
from netalert.state.db import Database

__all__ = ["NflogEntry", "NotificationLog", "NotifyLog", "decide", "told_entry"]

MIGRATIONS = [
    """
    CREATE TABLE nflog (
        route TEXT NOT NULL,
        group_key TEXT NOT NULL,
        firing TEXT NOT NULL,
        resolved TEXT NOT NULL,
        sent_at REAL NOT NULL,
        PRIMARY KEY (route, group_key)
    )
    """
]


@dataclass(frozen=True, slots=True)
class NflogEntry:
    """What the last mail of a group said."""

    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: float


def told_entry(notification: Notification) -> NflogEntry:
    """What :meth:`Dispatcher.sent <netalert.notify.dispatcher.Dispatcher.sent>` records for
    ``notification``: held alerts stay told."""
    return NflogEntry(
        frozenset(a.fingerprint for a in notification.firing) | notification.held,
        frozenset(a.fingerprint for a in notification.resolved),
        notification.created,
    )


class NotifyLog(Protocol):
    """What notify reads and writes of a notification log: :class:`NotificationLog` (SQLite)
    or a cluster node's (:class:`~netalert.cluster.mail.PgNotificationLog`)."""

    def get(self, route: str, group_key: str) -> NflogEntry | None:
        """The group's last notification, or None."""
        ...

    def hold(self, notification: Notification) -> int:
        """Answers for ``notification`` as if recorded, until :meth:`release`."""
        ...

    def release(self, token: int, route: str, group_key: str) -> None:
        """Ends a :meth:`hold`."""
        ...

    def record(
        self,
        conn: Any,
        route: str,
        group_key: str,
        firing: frozenset[str],
        resolved: frozenset[str],
        now: float,
    ) -> None:
        """Records a sent notification in the mail's transaction ``conn``."""
        ...


def decide(
    prev: NflogEntry | None,
    firing: frozenset[str],
    resolved: frozenset[str],
    *,
    send_resolved: bool,
    repeat_interval: float,
    now: float,
) -> Reason | None:
    """Decides whether a group must be mailed now, and why.

    Args:
        prev: The group's last notification, None if it was never mailed.
        firing: Fingerprints firing now (muted ones excluded).
        resolved: Fingerprints resolved since they were last seen firing.
        send_resolved: Whether the route mails resolutions.
        repeat_interval: Seconds after which an unchanged firing group is re-sent.
        now: Current time, unix seconds.

    Returns:
        The reason to send, or None to stay quiet.
    """
    told_firing = prev.firing if prev else frozenset()
    newly_resolved = (resolved & told_firing) if send_resolved else frozenset()
    if firing - told_firing:
        return Reason.NEW if not told_firing else Reason.CHANGED
    if newly_resolved:
        return Reason.CHANGED if firing else Reason.RESOLVED
    if firing and prev is not None and now - prev.sent_at >= repeat_interval:
        return Reason.REPEAT
    return None


class NotificationLog:
    """The ``nflog`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._tokens = itertools.count(1)
        self._held: dict[tuple[str, str], tuple[int, NflogEntry]] = {}
        db.migrate("nflog", MIGRATIONS)

    def get(self, route: str, group_key: str) -> NflogEntry | None:
        """The group's last notification (a held one first), or None."""
        held = self._held.get((route, group_key))
        if held is not None:
            return held[1]
        row = self._db.conn.execute(
            "SELECT firing, resolved, sent_at FROM nflog WHERE route = ? AND group_key = ?",
            (route, group_key),
        ).fetchone()
        if row is None:
            return None
        return NflogEntry(
            frozenset(json.loads(row[0])), frozenset(json.loads(row[1])), float(row[2])
        )

    def hold(self, notification: Notification) -> int:
        """Answers for ``notification`` as if it were recorded; returns a token for
        :meth:`release`. Call it before the write that records it."""
        token = next(self._tokens)
        entry = told_entry(notification)
        self._held[(notification.route, notification.group_key)] = (token, entry)
        return token

    def release(self, token: int, route: str, group_key: str) -> None:
        """The write behind ``token`` is committed or shed: the table answers again
        (unless a later notification of the group is held)."""
        held = self._held.get((route, group_key))
        if held is not None and held[0] == token:
            del self._held[(route, group_key)]

    @staticmethod
    def record(
        conn: sqlite3.Connection,
        route: str,
        group_key: str,
        firing: frozenset[str],
        resolved: frozenset[str],
        now: float,
    ) -> None:
        """Records a sent notification inside the caller's transaction."""
        conn.execute(
            "INSERT INTO nflog(route, group_key, firing, resolved, sent_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(route, group_key) DO UPDATE SET firing = excluded.firing,"
            " resolved = excluded.resolved, sent_at = excluded.sent_at",
            (route, group_key, json.dumps(sorted(firing)), json.dumps(sorted(resolved)), now),
        )

    def prune(
        self,
        cutoff: float,
        *,
        live: AbstractSet[tuple[str, str]],
        after: int,
        limit: int,
    ) -> tuple[int, int | None]:
        """Deletes old entries among the next ``limit`` rows after rowid ``after``.

        An entry goes when its group was last mailed before ``cutoff`` and is
        not in ``live`` (``(route, group_key)`` of the groups notify holds now,
        whose dedup still needs it). Each call scans at most ``limit`` rows, in
        one short transaction.

        Returns:
            How many entries were deleted, and the rowid to continue after
            (None once the scan reached the end of the table).

        Raises:
            sqlite3.Error: The database cannot be read or written.
        """
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT rowid, route, group_key, sent_at FROM nflog WHERE rowid > ?"
                " ORDER BY rowid LIMIT ?",
                (after, limit),
            ).fetchall()
            doomed = [(r[0],) for r in rows if r[3] < cutoff and (r[1], r[2]) not in live]
            conn.executemany("DELETE FROM nflog WHERE rowid = ?", doomed)
        return len(doomed), (int(rows[-1][0]) if len(rows) == limit else None)
