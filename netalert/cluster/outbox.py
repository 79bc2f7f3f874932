"""The notification log and the outbox in the shared PostgreSQL: :class:`PgOutbox`.

* :meth:`PgOutbox.enqueue` writes a notification and its mail in one transaction
  fenced by the shard's lease (a stale epoch writes neither) and fixes the
  notification's Message-ID, the same on every attempt at the mail.
* Senders on any node :meth:`~PgOutbox.claim` unsent rows with ``FOR UPDATE SKIP
  LOCKED``: two senders never claim one row at once. A claim lasts ``claim_for``
  seconds (the database's clock); a row whose claim ran out (its sender died) is
  claimed again by another.
* :meth:`~PgOutbox.mark_sent` records the SMTP server's 250 reply and marks the
  row sent in one statement, only while the claim is the row's current one: a
  sender that was too slow gets :class:`StaleClaimError` (its mail may then be
  delivered twice; never lost).

The agent queues its mails through :class:`~netalert.cluster.mail.PgMailOutbox`, in
the transaction of the alert transitions (:func:`mail_write`), and its sender claims
them here with their envelope (:meth:`PgOutbox.claim_due`, :meth:`PgOutbox.retry_later`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import Connection

from netalert.cluster.errors import ClusterError
from netalert.cluster.fence import fenced_sync
from netalert.cluster.leases import Lease
from netalert.cluster.pgstore import break_connection, escape_text, unescape_text
from netalert.mail.entries import OutboxEntry

__all__ = ["Claimed", "MailRow", "PgOutbox", "StaleClaimError", "mail_write"]


class StaleClaimError(ClusterError):
    """A sender's claim of an outbox row ran out and the row was claimed again."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """One claimed outbox row: send ``message`` with ``message_id``, then mark it."""

    id: int
    message_id: str
    message: bytes
    claim: int


_CLAIM = """
UPDATE outbox SET claim = claim + 1, claimed_by = %(node)s,
    claim_expires = now() + make_interval(secs => %(secs)s)
WHERE id IN (
    SELECT id FROM outbox WHERE sent IS NULL AND claim_expires <= now()
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING id, claim, message
"""

_CLAIM_DUE = """
UPDATE outbox o SET claim = claim + 1, claimed_by = %(node)s,
    claim_expires = now() + make_interval(secs => %(secs)s)
FROM notification_log n
WHERE n.id = o.id AND o.id IN (
    SELECT id FROM outbox WHERE sent IS NULL AND claim_expires <= now()
    AND next_attempt <= %(now)s ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING o.id, o.claim, o.message, n.message_id, o.sender, o.recipients, o.subject,
    o.created, o.attempts, o.next_attempt, o.last_error
"""


@dataclass(frozen=True, slots=True)
class MailRow:
    """One mail to queue (:func:`mail_write`)."""

    message_id: str
    data: bytes
    sender: str
    recipients: tuple[str, ...]
    subject: str
    created: float
    label: str  # what the notification log row names (the route and group)
    reason: str


def mail_write(
    conn: Connection[Any],
    leases: Mapping[int, Lease],
    mail: MailRow,
    *,
    claim: tuple[str, float] | None = None,
) -> Claimed | None:
    """Queues ``mail`` inside the caller's fenced transaction (idempotent: a Message-ID
    already queued is not queued twice). The notification log row carries the lowest
    shard of ``leases`` and its epoch (shard 0, epoch 0 when the mail has none).

    With ``claim`` (node, seconds) the row is claimed by that node in the same
    transaction, as :meth:`PgOutbox.claim_due` would claim it: the node that queued the
    mail sends it without looking for it; the claim is returned (also when the row was
    queued by an earlier attempt of this transaction and is still that node's to send).
    """
    shard = min(leases, default=0)
    epoch = leases[shard].epoch if leases else 0
    cur = conn.execute(
        "INSERT INTO notification_log (shard, epoch, fingerprint, transition, message_id)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (message_id) DO NOTHING RETURNING id",
        (shard, epoch, escape_text(mail.label), mail.reason, mail.message_id),
    )
    row = cur.fetchone()
    if row is None:  # queued already (this transaction made once more after a lost connection)
        if claim is None:
            return None
        cur = conn.execute(
            "SELECT o.id, o.claim FROM outbox o JOIN notification_log n ON n.id = o.id"
            " WHERE n.message_id = %s AND o.claimed_by = %s AND o.sent IS NULL",
            (mail.message_id, claim[0]),
        )
        mine = cur.fetchone()
        return (
            None
            if mine is None
            else Claimed(int(mine[0]), mail.message_id, mail.data, int(mine[1]))
        )
    values = (
        row[0],
        mail.data,
        mail.sender,
        "\n".join(mail.recipients),
        escape_text(mail.subject),
        mail.created,
        mail.created,
    )
    if claim is None:
        conn.execute(
            "INSERT INTO outbox (id, message, sender, recipients, subject, created, next_attempt)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            values,
        )
        return None
    conn.execute(
        "INSERT INTO outbox (id, message, sender, recipients, subject, created, next_attempt,"
        " claim, claimed_by, claim_expires) VALUES (%s, %s, %s, %s, %s, %s, %s, 1, %s,"
        " now() + make_interval(secs => %s))",
        (*values, claim[0], claim[1]),
    )
    return Claimed(int(row[0]), mail.message_id, mail.data, 1)


class PgOutbox:
    """The outbox of a cluster node (one blocking connection, like the alert store).

    Args:
        dsn: The shared database, migrated.
        node: This node's name (recorded as the claimer).
        lease_of: This node's current lease of a shard, or None.
        domain: The right-hand side of the Message-IDs.
        claim_for: Seconds a claim lasts before another sender may take the row.
    """

    def __init__(
        self,
        dsn: str,
        *,
        node: str,
        lease_of: Callable[[int], Lease | None],
        domain: str = "netalert.invalid",
        claim_for: float = 60.0,
    ) -> None:
        if claim_for <= 0:
            raise ValueError("claim_for must be positive")
        self.dsn = dsn
        self.node = node
        self.domain = domain
        self.claim_for = claim_for
        self._lease_of = lease_of
        self._conn: Connection[Any] | None = None

    def interrupt(self) -> None:
        """Makes a call hanging on the connection fail now (from another thread)."""
        break_connection(self._conn)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connect(self) -> Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=5,
                options="-c statement_timeout=5000 -c lock_timeout=2000",
                tcp_user_timeout=7000,  # a silent network fails a call instead of hanging it
                keepalives=1,
                keepalives_idle=3,
                keepalives_interval=1,
                keepalives_count=3,
            )
        return self._conn

    def claim_due(self, limit: int, now: float) -> list[tuple[Claimed, OutboxEntry]]:
        """Claims up to ``limit`` unsent mails due at ``now`` that no sender holds, with
        their envelope, oldest first."""
        conn = self._connect()
        with conn.transaction():
            cur = conn.execute(
                _CLAIM_DUE,
                {"node": self.node, "secs": self.claim_for, "limit": max(0, limit), "now": now},
            )
            rows = sorted(cur.fetchall(), key=lambda r: int(r[0]))
        out = []
        for i, claim, data, mid, sender, rcpts, subject, created, attempts, nxt, error in rows:
            message = bytes(data)
            out.append(
                (
                    Claimed(int(i), str(mid), message, int(claim)),
                    OutboxEntry(
                        id=int(i),
                        message_id=str(mid),
                        sender=str(sender),
                        recipients=tuple(r for r in str(rcpts).split("\n") if r),
                        data=message,
                        subject=unescape_text(str(subject)),
                        created=float(created),
                        attempts=int(attempts),
                        next_attempt=float(nxt),
                        last_error=str(error),
                        stale=False,
                    ),
                )
            )
        return out

    def retry_later(
        self, row: Claimed, recipients: Sequence[str], *, next_attempt: float, error: str
    ) -> None:
        """Gives ``row`` back after a failed attempt: ``recipients`` still to be sent to,
        tried again from ``next_attempt`` (by any sender), if ``row``'s claim is current."""
        self._connect().execute(
            "UPDATE outbox SET recipients = %s, attempts = attempts + 1, next_attempt = %s,"
            " last_error = %s, claim_expires = '-infinity'"
            " WHERE id = %s AND claim = %s AND claimed_by = %s AND sent IS NULL",
            ("\n".join(recipients), next_attempt, error, row.id, row.claim, self.node),
        )

    def summary(self, max_age: float, now: float) -> tuple[int, float | None, int]:
        """Unsent mails: how many, when the oldest was queued, how many are older than
        ``max_age`` seconds."""
        cur = self._connect().execute(
            "SELECT count(*), min(created), count(*) FILTER (WHERE created < %s)"
            " FROM outbox WHERE sent IS NULL",
            (now - max_age,),
        )
        row = cur.fetchone()
        if row is None:
            return 0, None, 0
        return int(row[0]), None if row[1] is None else float(row[1]), int(row[2])

    def enqueue(self, shard: int, fingerprint: str, transition: str, message: bytes) -> str:
        """Logs a notification and queues its mail under ``shard``'s lease; returns its
        Message-ID.

        Raises:
            StaleLeaseError: The lease moved on; nothing was written.
        """
        lease = self._lease_of(shard) or Lease(shard, self.node, 0)
        conn = self._connect()
        with fenced_sync(conn, [lease]):
            cur = conn.execute(
                "INSERT INTO notification_log (shard, epoch, fingerprint, transition, message_id)"
                " VALUES (%s, %s, %s, %s, 'pending') RETURNING id",
                (shard, lease.epoch, fingerprint, transition),
            )
            row = cur.fetchone()
            if row is None:
                raise ClusterError("notification_log returned no id")
            message_id = f"<{row[0]}.{fingerprint}@{self.domain}>"
            conn.execute(
                "UPDATE notification_log SET message_id = %s WHERE id = %s", (message_id, row[0])
            )
            conn.execute("INSERT INTO outbox (id, message) VALUES (%s, %s)", (row[0], message))
        return message_id

    def claim(self, limit: int) -> list[Claimed]:
        """Claims up to ``limit`` unsent rows no other sender holds, oldest first."""
        conn = self._connect()
        with conn.transaction():
            cur = conn.execute(
                _CLAIM, {"node": self.node, "secs": self.claim_for, "limit": max(0, limit)}
            )
            claimed = {int(i): (int(c), bytes(m)) for i, c, m in cur.fetchall()}
            if not claimed:
                return []
            cur = conn.execute(
                "SELECT id, message_id FROM notification_log WHERE id = ANY(%s) ORDER BY id",
                (list(claimed),),
            )
            return [
                Claimed(int(i), mid, claimed[int(i)][1], claimed[int(i)][0])
                for i, mid in cur.fetchall()
            ]

    def mark_sent(self, row: Claimed, reply: str) -> None:
        """Marks ``row`` sent, recording the server's ``reply``, if ``row``'s claim is current.

        Raises:
            StaleClaimError: The claim ran out and another sender holds or sent the row.
        """
        cur = self._connect().execute(
            "UPDATE outbox SET sent = now(), smtp_reply = %s WHERE id = %s AND claim = %s"
            " AND claimed_by = %s AND sent IS NULL",
            (reply, row.id, row.claim, self.node),
        )
        if cur.rowcount != 1:
            raise StaleClaimError(
                f"outbox row {row.id}: claim {row.claim} of {self.node} is not current any more"
            )

    def release(self, row: Claimed) -> None:
        """Gives a claimed row back at once (its send failed): any sender may retry it."""
        self._connect().execute(
            "UPDATE outbox SET claim_expires = '-infinity' WHERE id = %s AND claim = %s"
            " AND claimed_by = %s AND sent IS NULL",
            (row.id, row.claim, self.node),
        )

    def depth(self) -> int:
        """Rows not yet sent (``netalert cluster status``'s outbox depth)."""
        cur = self._connect().execute("SELECT count(*) FROM outbox WHERE sent IS NULL")
        row = cur.fetchone()
        return int(row[0]) if row else 0
