"""The ack tables: issued tokens, used tokens, acknowledgements, the mailbox position.

Owned by this package, migrated as the ``ack`` component of the state database.
The agent and the CLI share them (``netalert ack`` writes ``acks``; the agent's
dispatcher reads it at each flush, as it reads ``silences``).

An acknowledgement belongs to one firing episode of an alert: it holds the
alert's ``starts_at`` and counts only while the alert fires with that start
(:func:`is_acked`), so an alert that resolves and fires again is not acked.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from netalert.alerts.model import Alert, AlertState
from netalert.logs import event
from netalert.state.db import Database

__all__ = [
    "Ack",
    "AckStore",
    "AckTables",
    "IssuedToken",
    "TokenAlert",
    "ack_text",
    "audit",
    "is_acked",
]

log = logging.getLogger("netalert.ack")

MIGRATIONS = [
    """
    CREATE TABLE ack_tokens (
        nid TEXT PRIMARY KEY,
        message_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        alerts TEXT NOT NULL,
        expires REAL NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX ack_tokens_expires ON ack_tokens(expires);
    CREATE TABLE ack_used (
        nid TEXT NOT NULL,
        command TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (nid, command)
    );
    CREATE TABLE acks (
        fingerprint TEXT PRIMARY KEY,
        starts_at REAL NOT NULL,
        by TEXT NOT NULL,
        at REAL NOT NULL,
        comment TEXT NOT NULL,
        via TEXT NOT NULL
    );
    CREATE TABLE ack_mailbox (
        folder TEXT PRIMARY KEY,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL
    )
    """
]


@dataclass(frozen=True, slots=True)
class Ack:
    """Who acknowledged an alert's episode, when, how (``mail`` or ``cli``) and why."""

    fingerprint: str
    starts_at: float
    by: str
    at: float
    comment: str
    via: str


@dataclass(frozen=True, slots=True)
class TokenAlert:
    """One alert a mail listed: what a reply to it may act on."""

    fingerprint: str
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A row of ``ack_tokens``: the mail a token was issued for."""

    nid: str
    message_id: str
    subject: str
    alerts: tuple[TokenAlert, ...]
    expires: float


def is_acked(alert: Alert, acks: Mapping[str, Ack]) -> bool:
    """True when ``alert`` fires in the episode an ack was given for."""
    ack = acks.get(alert.fingerprint)
    return ack is not None and alert.state is AlertState.FIRING and ack.starts_at == alert.starts_at


def ack_text(ack: Ack) -> str:
    """One line for mails, the status page and tables: who, how and why."""
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(ack.at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    text = f"acked by {ack.by} at {when} via {ack.via}"
    return f"{text}: {ack.comment}" if ack.comment else text


def audit(action: str, **context: object) -> None:
    """The audit line of one ack or silence action (``event=ack_audit``)."""
    log.info(event("ack_audit", action=action, **context))


class AckTables(Protocol):
    """What the ack stage asks of its tables: SQLite's (:class:`AckStore`) or, on a cluster
    node, the ones every node shares in PostgreSQL (``netalert.cluster.ack``).

    The reply path's look-ups and writes are coroutines: PostgreSQL's run in a worker
    thread, so a slow statement holds up the reply, never the event loop. SQLite's are
    local and short and run on the loop."""

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
        """Records an issued token in the mail's transaction (``conn`` is what the mail
        queue hands its ``also``)."""

    async def token(self, nid: str) -> IssuedToken | None:
        """The mail a token nid was issued for, or None."""

    async def used(self, nid: str, command: str) -> bool:
        """True when the token ``nid`` was already used for ``command``."""

    def acks(self) -> dict[str, Ack]:
        """Every recorded acknowledgement, by fingerprint."""

    async def apply(
        self,
        nid: str | None,
        command: str,
        now: float,
        *,
        put: Sequence[Ack],
        delete: Sequence[str],
    ) -> int:
        """In one transaction: the token ``nid`` used for ``command`` (None: from a shell,
        no token), acks put and deleted; returns how many acks were deleted."""

    async def position(self, folder: str) -> tuple[int, int] | None:
        """``(uidvalidity, last_uid)`` handled in ``folder``, or None before the first."""

    async def save_position(self, folder: str, uidvalidity: int, uid: int) -> None:
        """Records the last UID handled in ``folder``."""

    async def prune(self, now: float, firing: Mapping[str, float]) -> int:
        """Deletes expired tokens and acks of episodes that ended; returns the rows."""


class AckStore:
    """The ``ack_*`` and ``acks`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate("ack", MIGRATIONS)

    # --- tokens -------------------------------------------------------------------------

    @staticmethod
    def record_token(
        conn: sqlite3.Connection,
        *,
        nid: str,
        message_id: str,
        subject: str,
        alerts: Sequence[TokenAlert],
        expires: float,
        now: float,
    ) -> None:
        """Records an issued token inside the caller's transaction (the mail's)."""
        data = json.dumps([[a.fingerprint, dict(a.labels)] for a in alerts], ensure_ascii=False)
        conn.execute(
            "INSERT OR REPLACE INTO ack_tokens VALUES (?, ?, ?, ?, ?, ?)",
            (nid, message_id, subject, data, expires, now),
        )

    async def token(self, nid: str) -> IssuedToken | None:
        """The mail a token nid was issued for, or None."""
        row = self.db.conn.execute(
            "SELECT nid, message_id, subject, alerts, expires FROM ack_tokens WHERE nid = ?",
            (nid,),
        ).fetchone()
        if row is None:
            return None
        alerts = tuple(TokenAlert(str(fp), dict(labels)) for fp, labels in json.loads(row[3]))
        return IssuedToken(str(row[0]), str(row[1]), str(row[2]), alerts, float(row[4]))

    async def used(self, nid: str, command: str) -> bool:
        """True when the token ``nid`` was already used for ``command``."""
        row = self.db.conn.execute(
            "SELECT 1 FROM ack_used WHERE nid = ? AND command = ?", (nid, command)
        ).fetchone()
        return row is not None

    @staticmethod
    def mark_used(conn: sqlite3.Connection, nid: str, command: str, now: float) -> None:
        """Records a token's use for ``command`` inside the caller's transaction."""
        conn.execute("INSERT OR IGNORE INTO ack_used VALUES (?, ?, ?)", (nid, command, now))

    # --- acknowledgements ---------------------------------------------------------------

    def acks(self) -> dict[str, Ack]:
        """Every recorded acknowledgement, by fingerprint (current or not: see is_acked)."""
        rows = self.db.conn.execute(
            "SELECT fingerprint, starts_at, by, at, comment, via FROM acks"
        ).fetchall()
        return {
            str(r[0]): Ack(str(r[0]), float(r[1]), str(r[2]), float(r[3]), str(r[4]), str(r[5]))
            for r in rows
        }

    @staticmethod
    def put_ack(conn: sqlite3.Connection, ack: Ack) -> None:
        """Records ``ack`` (replacing an older one of the alert) inside the caller's transaction."""
        conn.execute(
            "INSERT OR REPLACE INTO acks VALUES (?, ?, ?, ?, ?, ?)",
            (ack.fingerprint, ack.starts_at, ack.by, ack.at, ack.comment, ack.via),
        )

    @staticmethod
    def delete_ack(conn: sqlite3.Connection, fingerprint: str) -> bool:
        """Removes an alert's ack inside the caller's transaction; False when it had none."""
        return conn.execute("DELETE FROM acks WHERE fingerprint = ?", (fingerprint,)).rowcount > 0

    async def apply(
        self,
        nid: str | None,
        command: str,
        now: float,
        *,
        put: Sequence[Ack],
        delete: Sequence[str],
    ) -> int:
        """In one transaction: the token ``nid`` used for ``command`` (None: from a shell,
        no token), acks put and deleted; returns how many acks were deleted."""
        deleted = 0
        with self.db.transaction() as conn:
            if nid is not None:
                self.mark_used(conn, nid, command, now)
            for ack in put:
                self.put_ack(conn, ack)
            for fingerprint in delete:
                deleted += self.delete_ack(conn, fingerprint)
        return deleted

    # --- the mailbox position -----------------------------------------------------------

    async def save_position(self, folder: str, uidvalidity: int, uid: int) -> None:
        """Records the last UID handled in ``folder`` (one transaction)."""
        with self.db.transaction() as conn:
            self.set_position(conn, folder, uidvalidity, uid)

    async def position(self, folder: str) -> tuple[int, int] | None:
        """``(uidvalidity, last_uid)`` handled in ``folder``, or None before the first."""
        row = self.db.conn.execute(
            "SELECT uidvalidity, last_uid FROM ack_mailbox WHERE folder = ?", (folder,)
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    @staticmethod
    def set_position(conn: sqlite3.Connection, folder: str, uidvalidity: int, uid: int) -> None:
        """Records the last UID handled in ``folder``, inside the caller's transaction."""
        conn.execute(
            "INSERT INTO ack_mailbox VALUES (?, ?, ?) ON CONFLICT(folder) DO UPDATE"
            " SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid",
            (folder, uidvalidity, uid),
        )

    # --- clean-up -----------------------------------------------------------------------

    async def prune(self, now: float, firing: Mapping[str, float]) -> int:
        """Deletes expired tokens (and their uses) and acks of episodes that ended.

        ``firing`` maps each firing alert's fingerprint to its ``starts_at``.
        Returns the rows deleted.
        """
        acks = self.acks()
        stale = [fp for fp, a in acks.items() if firing.get(fp) != a.starts_at]
        with self.db.transaction() as conn:
            gone = conn.execute(
                "DELETE FROM ack_used WHERE nid IN (SELECT nid FROM ack_tokens WHERE expires < ?)",
                (now,),
            ).rowcount
            gone += conn.execute("DELETE FROM ack_tokens WHERE expires < ?", (now,)).rowcount
            for fp in stale:
                gone += conn.execute("DELETE FROM acks WHERE fingerprint = ?", (fp,)).rowcount
        return gone
