"""The durable outbox: every alert mail is in SQLite before the first SMTP attempt.

An entry is the message's bytes and its envelope, with one status per
recipient (``pending``, ``sent``, ``failed``). It leaves the outbox only when
no recipient is pending any more: each was accepted or permanently refused
(refusals are kept in ``mail_failures`` for the status page). Temporary
failures set ``next_attempt`` by :func:`next_backoff`; a restart simply
resumes with what is due. Entries older than ``[smtp].max_age`` are flagged
``stale`` and reported loudly, never dropped.

Also here, because it lives and dies with the outbox's database: the thread
root of each group's open episode (``mail_threads``), so repeats and resolved
mails reply to the first mail even across restarts. Roots of groups no longer
live are pruned after ``[limits] retention`` (:meth:`Outbox.prune_threads`).

Writes go through the database's writer (:mod:`netalert.state.writer`). While
the disk cannot take them they wait in memory, and the outbox answers as if
they were written (:class:`~netalert.mail.held.HeldView`): a held message counts
as pending, and an entry whose delivery result is held is not attempted again.
A delivery result whose write is shed (past ``[agent].state_hold_max``) is kept
in memory and written again once the database takes writes, so a mail delivered
during the outage is not sent twice unless the agent stops before that.
"""

from __future__ import annotations

import email.policy
import functools
import sqlite3
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from typing import Any

from netalert.mail.entries import (
    Failure,
    OutboxEntry,
    RecipientResult,
    is_due,
    is_stale,
    next_backoff,
)
from netalert.mail.errors import MailError
from netalert.mail.held import HeldView, Unwritten
from netalert.mail.mime import Draft
from netalert.state.db import Database

__all__ = [
    "MIGRATIONS",
    "Failure",
    "Outbox",
    "OutboxEntry",
    "RecipientResult",
    "enqueue_message",
    "envelope_sender",
    "is_due",
    "is_stale",
    "next_backoff",
]

MIGRATIONS = [
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        subject TEXT NOT NULL,
        data BLOB NOT NULL,
        created REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        stale INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_next_attempt ON outbox(next_attempt);
    CREATE TABLE outbox_recipients (
        entry_id INTEGER NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        PRIMARY KEY (entry_id, address)
    );
    CREATE TABLE mail_failures (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        message_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        address TEXT NOT NULL,
        code INTEGER,
        error TEXT NOT NULL
    );
    CREATE TABLE mail_threads (
        group_key TEXT PRIMARY KEY,
        root TEXT NOT NULL,
        updated REAL NOT NULL
    )
    """,
]

# refusals kept for the status page; older ones are trimmed
_FAILURES_KEPT = 1000


def enqueue_message(
    enqueue_raw: Callable[..., int | None],
    message: EmailMessage,
    recipients: Sequence[str] | None,
    **options: Any,
) -> int | None:
    """Flattens ``message`` and hands it to a queue's ``enqueue_raw`` with its envelope
    (recipients: the To and Cc addresses unless given), its Message-ID and Subject."""
    if recipients is None:
        fields = [str(v) for v in (*message.get_all("To", []), *message.get_all("Cc", []))]
        recipients = [addr for _, addr in getaddresses(fields) if addr]
    return enqueue_raw(
        message.as_bytes(policy=email.policy.SMTP),
        sender=envelope_sender(message),
        recipients=recipients,
        message_id=str(message.get("Message-ID", "")),
        subject=str(message.get("Subject", "")),
        **options,
    )


def envelope_sender(message: EmailMessage | Draft) -> str:
    """The envelope sender of ``message``: its Sender, else its From address.

    Raises:
        MailError: Neither holds an address.
    """
    sender = _address(str(message.get("Sender") or message.get("From") or ""))
    if "@" not in sender:
        raise MailError(f"message has no usable From address: {message.get('From')!r}")
    return sender


@functools.lru_cache(maxsize=64)  # [smtp].from, parsed for every mail
def _address(text: str) -> str:
    return parseaddr(text)[1]


class Outbox:
    """The outbox tables of the state database."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        """Opens the outbox, creating or upgrading its tables.

        Raises:
            StateError: The migration failed.
        """
        self.db = db
        self.clock = clock
        self.held = HeldView()
        db.migrate("outbox", MIGRATIONS)

    # ---- writing ---------------------------------------------------------------

    def enqueue(
        self,
        message: EmailMessage,
        recipients: Sequence[str] | None = None,
        *,
        now: float | None = None,
        thread: tuple[str, str] | None = None,
        also: Callable[[sqlite3.Connection], None] | None = None,
        on_done: Callable[[bool], None] | None = None,
    ) -> int | None:
        """Stores ``message`` for delivery: committed when this returns, or held.

        Args:
            message: The mail; its From gives the envelope sender.
            recipients: Envelope recipients; default: the To and Cc addresses.
            now: Enqueue time (default: the clock).
            thread: ``(group_key, root Message-ID)`` to record in the same
                transaction, when the message starts a group's episode.
            also: Called with the connection inside the same transaction (the
                notification log records the send there: both or neither).
            on_done: Called once with True when the entry is committed (now or
                later), with False if the held write was shed.

        Returns:
            The entry id; None while the write is held in memory.

        Raises:
            MailError: No sender or no recipient.
            StateError: The write failed and cannot be held.
        """
        return enqueue_message(
            self.enqueue_raw,
            message,
            recipients,
            now=now,
            thread=thread,
            also=also,
            on_done=on_done,
        )

    def enqueue_raw(
        self,
        data: bytes,
        *,
        sender: str,
        recipients: Sequence[str],
        message_id: str = "",
        subject: str = "",
        now: float | None = None,
        thread: tuple[str, str] | None = None,
        also: Callable[[sqlite3.Connection], None] | None = None,
        on_done: Callable[[bool], None] | None = None,
    ) -> int | None:
        """Stores an already flattened message (CRLF line ends); see :meth:`enqueue`.

        Raises:
            MailError: No recipient.
            StateError: The write failed and cannot be held.
        """
        unique = list(dict.fromkeys(r.strip() for r in recipients if r.strip()))
        if not unique:
            raise MailError(f"message {message_id or subject!r} has no recipient")
        at = self.clock() if now is None else now
        ids: list[int] = []

        def apply(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "INSERT INTO outbox(message_id, sender, subject, data, created, next_attempt)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (message_id, sender, subject, data, at, at),
            )
            entry_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO outbox_recipients(entry_id, address) VALUES (?, ?)",
                [(entry_id, address) for address in unique],
            )
            if thread is not None:
                _upsert_thread(conn, thread[0], thread[1], at)
            if also is not None:
                also(conn)
            ids.append(entry_id)

        token = self.held.add_message(message_id, thread)

        def done(committed: bool) -> None:
            self.held.drop_message(token)
            if on_done is not None:
                on_done(committed)

        try:
            # durable: an alert mail committed here must survive a power cut
            committed = self.db.writer.write(
                "outbox",
                apply,
                durable=True,
                on_commit=lambda: done(True),
                on_shed=lambda: done(False),
            )
        except BaseException:
            self.held.drop_message(token)
            raise
        return ids[-1] if committed else None

    def record(
        self,
        entry: OutboxEntry,
        results: Sequence[RecipientResult],
        *,
        error: str,
        retry_at: float,
        now: float | None = None,
    ) -> bool:
        """Applies one attempt's results; returns True when the entry left the outbox.

        Recipients without a result stay pending. ``retry_at`` is the next
        attempt for what is still pending, ``error`` its last error ("" when none).
        While the write is held the entry is not attempted again; if it is shed,
        the results are kept in memory and written again by :meth:`rewrite_results`
        (until then the entry is not attempted either: the mail went out).

        Raises:
            StateError: The write failed and cannot be held.
        """
        at = self.clock() if now is None else now
        pending = set(entry.recipients)
        for result in results:
            if result.accepted or result.permanent:
                pending.discard(result.address)
        leaves = not pending

        def apply(conn: sqlite3.Connection) -> None:
            for result in results:
                if result.accepted:
                    status = "sent"
                elif result.permanent:
                    status = "failed"
                    conn.execute(
                        "INSERT INTO mail_failures(at, message_id, subject, address, code, error)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            at,
                            entry.message_id,
                            entry.subject,
                            result.address,
                            result.code,
                            result.error,
                        ),
                    )
                else:
                    continue
                conn.execute(
                    "UPDATE outbox_recipients SET status = ? WHERE entry_id = ? AND address = ?",
                    (status, entry.id, result.address),
                )
            left = conn.execute(
                "SELECT COUNT(*) FROM outbox_recipients WHERE entry_id = ? AND status = 'pending'",
                (entry.id,),
            ).fetchone()[0]
            if left == 0:
                # explicit, not ON DELETE CASCADE: in-memory databases run without foreign_keys
                conn.execute("DELETE FROM outbox_recipients WHERE entry_id = ?", (entry.id,))
                conn.execute("DELETE FROM outbox WHERE id = ?", (entry.id,))
                conn.execute(
                    "DELETE FROM mail_failures WHERE id <= (SELECT MAX(id) FROM mail_failures) - ?",
                    (_FAILURES_KEPT,),
                )
                return
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ?"
                " WHERE id = ?",
                (retry_at, error, entry.id),
            )

        # while held, the entry is not attempted again: a delivered mail is not re-sent
        self.held.settle(entry.id, leaves=leaves)
        # shed: kept (the mail went out, the row says pending) and written again later
        unwritten = Unwritten(entry, tuple(results), error, retry_at, at)
        try:
            self.db.writer.write(
                "outbox",
                apply,
                on_commit=lambda: self.held.settled(entry.id),
                on_shed=lambda: self.held.shed(unwritten),
            )
        except BaseException:
            self.held.settled(entry.id)
            raise
        return leaves

    def rewrite_results(self) -> int:
        """Writes again the delivery results shed while the database could not take
        writes, once it takes them (nothing while writes are held); returns how many.

        Raises:
            StateError: A write failed and cannot be held.
        """
        if self.db.writer.holding or not self.held.unwritten:
            return 0
        taken = self.held.take_unwritten()
        for n, u in enumerate(taken):
            try:
                self.record(u.entry, u.results, error=u.error, retry_at=u.retry_at, now=u.at)
            except BaseException:
                for rest in taken[n + 1 :]:
                    self.held.settle(rest.entry.id, leaves=False)
                    self.held.shed(rest)
                raise
        return len(taken)

    def mark_stale(self, now: float, max_age: float) -> list[OutboxEntry]:
        """Flags entries older than ``max_age`` seconds; returns the newly flagged ones.

        Does nothing while writes are held (the flags would be held too and the
        same entries reported again): the next check after the outage flags them.
        """
        if self.db.writer.holding:
            return []
        cutoff = now - max_age
        fresh = self._select("WHERE o.stale = 0 AND o.created < ?", (cutoff,))
        if fresh:
            ids = [(e.id,) for e in fresh]
            self.db.writer.write(
                "outbox",
                lambda conn: conn.executemany("UPDATE outbox SET stale = 1 WHERE id = ?", ids),
            )
        return fresh

    async def synced(self) -> None:
        """Returns once the durable commits made so far are on disk (before a mail goes
        out; the writer syncs them in a thread of its own)."""
        await self.db.writer.synced()

    # ---- reading ---------------------------------------------------------------

    def due(self, now: float, limit: int = 100) -> list[OutboxEntry]:
        """Entries whose next attempt has come, oldest first (not those whose result is held).

        First writes again the results shed during a disk outage (:meth:`rewrite_results`).

        Raises:
            StateError: Such a write failed and cannot be held.
        """
        self.rewrite_results()
        skip = self.held.settling
        found = self._select(
            "WHERE o.next_attempt <= ? ORDER BY o.next_attempt, o.id LIMIT ?",
            (now, limit + len(skip)),
        )
        return [e for e in found if e.id not in skip][:limit]

    def entries(self) -> list[OutboxEntry]:
        """Every entry still in the outbox, oldest first."""
        return self._select("ORDER BY o.id", ())

    def holds(self, message_id: str) -> bool:
        """Whether a message with this Message-ID still waits in the outbox (or in memory)."""
        if self.held.has_message(message_id):
            return True
        row = self.db.conn.execute(
            "SELECT 1 FROM outbox WHERE message_id = ? LIMIT 1", (message_id,)
        ).fetchone()
        return row is not None

    def next_due(self) -> float | None:
        """When the earliest entry that can be attempted is due (None when there is none)."""
        skip = self.held.settling
        if not skip:
            row = self.db.conn.execute("SELECT MIN(next_attempt) FROM outbox").fetchone()
            return None if row[0] is None else float(row[0])
        rows = self.db.conn.execute(
            "SELECT id, next_attempt FROM outbox ORDER BY next_attempt LIMIT ?", (len(skip) + 1,)
        ).fetchall()
        return next((float(r[1]) for r in rows if int(r[0]) not in skip), None)

    def oldest_created(self) -> float | None:
        """When the oldest waiting message was enqueued (None when the outbox is empty)."""
        row = self.db.conn.execute("SELECT MIN(created) FROM outbox").fetchone()
        return None if row[0] is None else float(row[0])

    def pending(self) -> int:
        """How many messages are waiting: read from the database, corrected for held writes."""
        stored = int(self.db.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        return max(0, stored + self.held.messages - self.held.leaving)

    def stale_count(self) -> int:
        """How many waiting messages are older than the configured age."""
        row = self.db.conn.execute("SELECT COUNT(*) FROM outbox WHERE stale = 1").fetchone()
        return int(row[0])

    def failures(self, limit: int = 50) -> list[Failure]:
        """The latest permanent refusals, newest first."""
        rows = self.db.conn.execute(
            "SELECT at, message_id, subject, address, code, error FROM mail_failures"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [Failure(float(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def _select(self, where: str, params: tuple[object, ...]) -> list[OutboxEntry]:
        rows = self.db.conn.execute(
            "SELECT o.id, o.message_id, o.sender, o.data, o.subject, o.created, o.attempts,"
            " o.next_attempt, o.last_error, o.stale,"
            " (SELECT group_concat(address, char(10)) FROM outbox_recipients r"
            "  WHERE r.entry_id = o.id AND r.status = 'pending')"
            f" FROM outbox o {where}",
            params,
        ).fetchall()
        return [
            OutboxEntry(
                id=int(r[0]),
                message_id=r[1],
                sender=r[2],
                recipients=tuple(r[10].split("\n")) if r[10] else (),
                data=bytes(r[3]),
                subject=r[4],
                created=float(r[5]),
                attempts=int(r[6]),
                next_attempt=float(r[7]),
                last_error=r[8],
                stale=bool(r[9]),
            )
            for r in rows
        ]

    # ---- threads -----------------------------------------------------------------

    def thread_root(self, group_key: str) -> str | None:
        """The Message-ID the open episode of ``group_key`` started with, if recorded."""
        held = self.held.thread_root(group_key)
        if held is not None:
            return held
        row = self.db.conn.execute(
            "SELECT root FROM mail_threads WHERE group_key = ?", (group_key,)
        ).fetchone()
        return None if row is None else str(row[0])

    def set_thread_root(self, group_key: str, root: str, now: float) -> None:
        """Records the first Message-ID of a group's episode (held while the disk is full)."""
        self.db.writer.write("outbox", lambda conn: _upsert_thread(conn, group_key, root, now))

    def prune_threads(
        self, cutoff: float, *, live: AbstractSet[str], after: int, limit: int
    ) -> tuple[int, int | None]:
        """Deletes old thread roots among the next ``limit`` rows after rowid ``after``.

        A root goes when its episode began before ``cutoff`` and its group key
        is not in ``live`` (the groups notify holds now: their next mail still
        replies to it). Each call scans at most ``limit`` rows, in one short
        transaction.

        Returns:
            How many rows were deleted, and the rowid to continue after (None
            once the scan reached the end of the table).

        Raises:
            sqlite3.Error: The database cannot be read or written.
        """
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT rowid, group_key, updated FROM mail_threads WHERE rowid > ?"
                " ORDER BY rowid LIMIT ?",
                (after, limit),
            ).fetchall()
            doomed = [(r[0],) for r in rows if r[2] < cutoff and r[1] not in live]
            conn.executemany("DELETE FROM mail_threads WHERE rowid = ?", doomed)
        return len(doomed), (int(rows[-1][0]) if len(rows) == limit else None)


def _upsert_thread(conn: sqlite3.Connection, group_key: str, root: str, now: float) -> None:
    conn.execute(
        "INSERT INTO mail_threads(group_key, root, updated) VALUES (?, ?, ?)"
        " ON CONFLICT(group_key) DO UPDATE SET root = excluded.root, updated = excluded.updated",
        (group_key, root, now),
    )
