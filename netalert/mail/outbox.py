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
mails reply to the first mail even across restarts.
"""

from __future__ import annotations

import email.policy
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

from netalert.mail.errors import MailError
from netalert.mail.mime import Draft
from netalert.state.db import Database

__all__ = [
    "MIGRATIONS",
    "Failure",
    "Outbox",
    "OutboxEntry",
    "RecipientResult",
    "envelope_recipients",
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


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message waiting in the outbox; ``recipients`` are the pending ones."""

    id: int
    message_id: str
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    subject: str
    created: float
    attempts: int
    next_attempt: float
    last_error: str
    stale: bool


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What the server said about one recipient of one attempt.

    ``accepted`` true: delivered. Otherwise ``permanent`` tells whether the
    refusal is final (5xx) or the recipient stays pending (4xx, connection).
    """

    address: str
    accepted: bool
    permanent: bool = False
    code: int | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Failure:
    """A permanent refusal, kept for the status page."""

    at: float
    message_id: str
    subject: str
    address: str
    code: int | None
    error: str


def is_due(entry: OutboxEntry, now: float) -> bool:
    """Whether ``entry`` should be attempted at ``now``."""
    return entry.next_attempt <= now


def is_stale(entry: OutboxEntry, now: float, max_age: float) -> bool:
    """Whether ``entry`` has waited longer than ``max_age`` seconds."""
    return now - entry.created > max_age


def next_backoff(
    attempts: int,
    *,
    cap: float = 60.0,
    base: float = 1.0,
    jitter: float = 0.2,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt.

    Doubles from ``base`` (1 s, 2 s, 4 s...) up to ``cap``, then takes off up
    to ``jitter`` of it at random so a burst does not retry in lockstep. The
    result never exceeds ``cap`` and is at least ``base * (1 - jitter)``.
    """
    exponent = max(0, min(attempts - 1, 62))
    delay = min(cap, base * (2.0**exponent))
    return delay * (1.0 - jitter * rand())


def envelope_recipients(recipients: Sequence[str], what: str) -> list[str]:
    """The distinct, stripped addresses of ``recipients``, in order.

    Raises:
        MailError: None is left (``what`` names the message in the error).
    """
    unique = list(dict.fromkeys(r.strip() for r in recipients if r.strip()))
    if not unique:
        raise MailError(f"message {what!r} has no recipient")
    return unique


def envelope_sender(message: EmailMessage | Draft) -> str:
    """The envelope sender of ``message``: its Sender, else its From address.

    Raises:
        MailError: Neither holds an address.
    """
    sender = parseaddr(str(message.get("Sender") or message.get("From") or ""))[1]
    if "@" not in sender:
        raise MailError(f"message has no usable From address: {message.get('From')!r}")
    return sender


class Outbox:
    """The outbox tables of the state database."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        """Opens the outbox, creating or upgrading its tables.

        Raises:
            StateError: The migration failed.
        """
        self.db = db
        self.clock = clock
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
    ) -> int:
        """Stores ``message`` for delivery; committed when this returns.

        Args:
            message: The mail; its From gives the envelope sender.
            recipients: Envelope recipients; default: the To and Cc addresses.
            now: Enqueue time (default: the clock).
            thread: ``(group_key, root Message-ID)`` to record in the same
                transaction, when the message starts a group's episode.
            also: Called with the connection inside the same transaction (the
                notification log records the send there: both or neither).

        Returns:
            The entry id.

        Raises:
            MailError: No sender or no recipient.
        """
        if recipients is None:
            fields = [str(v) for v in (*message.get_all("To", []), *message.get_all("Cc", []))]
            recipients = [addr for _, addr in getaddresses(fields) if addr]
        data = message.as_bytes(policy=email.policy.SMTP)
        return self.enqueue_raw(
            data,
            sender=envelope_sender(message),
            recipients=recipients,
            message_id=str(message.get("Message-ID", "")),
            subject=str(message.get("Subject", "")),
            now=now,
            thread=thread,
            also=also,
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
    ) -> int:
        """Stores an already flattened message (CRLF line ends); committed on return.

        Raises:
            MailError: No recipient.
        """
        unique = envelope_recipients(recipients, message_id or subject)
        at = self.clock() if now is None else now
        with self.db.transaction() as conn:
            entry_id = self.insert(
                conn,
                data,
                sender=sender,
                recipients=unique,
                message_id=message_id,
                subject=subject,
                at=at,
                thread=thread,
            )
            if also is not None:
                also(conn)
        return entry_id

    @staticmethod
    def insert(
        conn: sqlite3.Connection,
        data: bytes,
        *,
        sender: str,
        recipients: Sequence[str],
        message_id: str,
        subject: str,
        at: float,
        thread: tuple[str, str] | None = None,
    ) -> int:
        """Adds one entry inside the caller's open transaction; returns its id.

        ``recipients`` as :func:`envelope_recipients` returns them. The entry is
        durable once the caller commits (the agent commits a loop turn's mails,
        their notification-log entries and their alerts together).

        Raises:
            sqlite3.Error: The insert failed (the caller rolls back).
        """
        cur = conn.execute(
            "INSERT INTO outbox(message_id, sender, subject, data, created, next_attempt)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (message_id, sender, subject, data, at, at),
        )
        entry_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO outbox_recipients(entry_id, address) VALUES (?, ?)",
            [(entry_id, address) for address in recipients],
        )
        if thread is not None:
            _upsert_thread(conn, thread[0], thread[1], at)
        return entry_id

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
        """
        at = self.clock() if now is None else now
        with self.db.transaction() as conn:
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
                return True
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ?"
                " WHERE id = ?",
                (retry_at, error, entry.id),
            )
            return False

    def mark_stale(self, now: float, max_age: float) -> list[OutboxEntry]:
        """Flags entries older than ``max_age`` seconds; returns the newly flagged ones."""
        cutoff = now - max_age
        fresh = self._select("WHERE o.stale = 0 AND o.created < ?", (cutoff,))
        if fresh:
            with self.db.transaction() as conn:
                conn.executemany(
                    "UPDATE outbox SET stale = 1 WHERE id = ?", [(e.id,) for e in fresh]
                )
        return fresh

    # ---- reading ---------------------------------------------------------------

    def due(self, now: float, limit: int = 100) -> list[OutboxEntry]:
        """Entries whose next attempt has come, oldest first."""
        return self._select(
            "WHERE o.next_attempt <= ? ORDER BY o.next_attempt, o.id LIMIT ?", (now, limit)
        )

    def entries(self) -> list[OutboxEntry]:
        """Every entry still in the outbox, oldest first."""
        return self._select("ORDER BY o.id", ())

    def holds(self, message_id: str) -> bool:
        """Whether a message with this Message-ID still waits in the outbox."""
        row = self.db.conn.execute(
            "SELECT 1 FROM outbox WHERE message_id = ? LIMIT 1", (message_id,)
        ).fetchone()
        return row is not None

    def next_due(self) -> float | None:
        """When the earliest pending entry is due (None when the outbox is empty)."""
        row = self.db.conn.execute("SELECT MIN(next_attempt) FROM outbox").fetchone()
        return None if row[0] is None else float(row[0])

    def oldest_created(self) -> float | None:
        """When the oldest waiting message was enqueued (None when the outbox is empty)."""
        row = self.db.conn.execute("SELECT MIN(created) FROM outbox").fetchone()
        return None if row[0] is None else float(row[0])

    def pending(self) -> int:
        """How many messages are waiting."""
        return int(self.db.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

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
        row = self.db.conn.execute(
            "SELECT root FROM mail_threads WHERE group_key = ?", (group_key,)
        ).fetchone()
        return None if row is None else str(row[0])

    def set_thread_root(self, group_key: str, root: str, now: float) -> None:
        """Records the first Message-ID of a group's episode."""
        with self.db.transaction() as conn:
            _upsert_thread(conn, group_key, root, now)


def _upsert_thread(conn: sqlite3.Connection, group_key: str, root: str, now: float) -> None:
    conn.execute(
        "INSERT INTO mail_threads(group_key, root, updated) VALUES (?, ?, ?)"
        " ON CONFLICT(group_key) DO UPDATE SET root = excluded.root, updated = excluded.updated",
        (group_key, root, now),
    )
