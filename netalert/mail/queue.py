"""The mail queue the mailer, the canary, the sender and the status page use: one protocol,
two stores.

:class:`~netalert.mail.outbox.Outbox` is the single node's (SQLite, in the state
database); :class:`~netalert.cluster.mail.PgMailOutbox` a cluster node's (PostgreSQL,
shared by the nodes). Neither the mailer nor the sender knows which one it has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from email.message import EmailMessage
from typing import Any, Protocol

from netalert.mail.entries import OutboxEntry, RecipientResult

__all__ = ["MailQueue"]


class MailQueue(Protocol):
    """Mails waiting for the SMTP server, durable before the first attempt."""

    def enqueue(
        self,
        message: EmailMessage,
        recipients: Sequence[str] | None = None,
        *,
        now: float | None = None,
        thread: tuple[str, str] | None = None,
        also: Callable[[Any], None] | None = None,
        on_done: Callable[[bool], None] | None = None,
    ) -> int | None:
        """Queues ``message``: committed when this returns (an id), or held (None) and
        ``on_done`` called once committed (True) or dropped (False)."""
        ...

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
        also: Callable[[Any], None] | None = None,
        on_done: Callable[[bool], None] | None = None,
    ) -> int | None:
        """:meth:`enqueue` of a message already flattened; ``also`` writes the
        notification log in the same transaction."""
        ...

    def thread_root(self, group_key: str) -> str | None:
        """The first Message-ID of the group's open episode, if known."""
        ...

    def holds(self, message_id: str) -> bool:
        """Whether a mail with this Message-ID still waits."""
        ...

    def due(self, now: float, limit: int = 100) -> list[OutboxEntry]:
        """Mails to attempt now, oldest first."""
        ...

    def record(
        self,
        entry: OutboxEntry,
        results: Sequence[RecipientResult],
        *,
        error: str,
        retry_at: float,
        now: float | None = None,
    ) -> bool:
        """One attempt's results; True when the mail left the queue."""
        ...

    def mark_stale(self, now: float, max_age: float) -> list[OutboxEntry]:
        """Mails newly older than ``max_age`` seconds (to be reported)."""
        ...

    def next_due(self) -> float | None:
        """When the next attempt is due (None: nothing waits)."""
        ...

    def pending(self) -> int:
        """Mails waiting."""
        ...

    def stale_count(self) -> int:
        """Waiting mails older than ``[smtp].max_age``."""
        ...

    def oldest_created(self) -> float | None:
        """When the oldest waiting mail was queued."""
        ...

    async def synced(self) -> None:
        """Returns once what was committed is on disk (before a mail goes out)."""
        ...

    def prune_threads(
        self, cutoff: float, *, live: AbstractSet[str], after: int, limit: int
    ) -> tuple[int, int | None]:
        """Forgets old thread roots of groups no longer live."""
        ...
