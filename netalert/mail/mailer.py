"""The notify → mail hand-off: render a notification and commit it to the outbox.

:meth:`Mailer.submit` is what ``notify/`` calls; :meth:`Mailer.submit_off_loop`
does the same with the rendering in a worker thread, so a big group's mail
does not stall the event loop. :meth:`Mailer.submit_many` is the agent's path:
it queues a loop turn's mails in one transaction (one commit per turn, not per
mail; a storm's batch in slices of a few milliseconds each, each committed
when rendered), and renders small mails on the loop and only big groups in a
worker thread (handing a mail to a thread costs more CPU than rendering a
small one: the two threads take turns at the interpreter on every I/O call).

Each looks up the thread root of the group's open episode, renders the mail
replying to it within ``[limits]`` (what the bounds left out is counted in
:class:`~netalert.mail.stats.MailStats`), and enqueues the mail (recording a
new root in the same transaction when the mail starts an episode). When it
returns, the mail is durable; the sender is woken up.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from netalert.errors import NetalertError, StateError
from netalert.mail.bounds import MailLimits
from netalert.mail.errors import MailError
from netalert.mail.outbox import Outbox, envelope_recipients, envelope_sender
from netalert.mail.render import MailTemplates, NotificationLike, RenderedMail, render_mail
from netalert.mail.stats import MailStats

__all__ = ["Mailer"]

N = TypeVar("N", bound=NotificationLike)

# submit_many: a mail listing more alerts than this renders in a worker thread (a
# 50-alert group takes ~20 ms); smaller ones render on the loop (~1.5 ms each), which
# gets a turn whenever a run of them has taken more than SLICE seconds.
INLINE_ALERTS = 10
SLICE = 0.005


class Mailer:
    """Renders notifications and puts them in the outbox."""

    def __init__(
        self,
        outbox: Outbox,
        templates: MailTemplates,
        *,
        sender: str,
        status_url: str,
        on_enqueue: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        limits: MailLimits | None = None,
        stats: MailStats | None = None,
    ) -> None:
        self.outbox = outbox
        self.templates = templates
        self.sender = sender
        self.status_url = status_url
        self.on_enqueue = on_enqueue
        self.clock = clock
        self.limits = limits if limits is not None else MailLimits()
        self.stats = stats if stats is not None else MailStats()

    def submit(
        self,
        notification: NotificationLike,
        *,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> int:
        """Renders ``notification`` and enqueues it; returns the outbox entry id.

        Raises:
            MailError: The notification has no recipient.
            StateError: The database cannot be written.
        """
        known = self._known_root(notification)
        return self._enqueue(notification, self._render(notification, known), known, also)

    async def submit_off_loop(
        self,
        notification: NotificationLike,
        *,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> int:
        """:meth:`submit`, rendering in a worker thread; the database is used on the loop only.

        Raises:
            MailError: The notification has no recipient.
            StateError: The database cannot be written.
        """
        known = self._known_root(notification)
        rendered = await asyncio.to_thread(self._render, notification, known)
        return self._enqueue(notification, rendered, known, also)

    async def submit_many(
        self,
        notifications: Sequence[N],
        *,
        before: Callable[[sqlite3.Connection], Callable[[], None] | None] | None = None,
        also: Callable[[sqlite3.Connection, N], None] | None = None,
    ) -> list[int | NetalertError]:
        """Renders and queues ``notifications`` in slices: one transaction per slice.

        A slice is the mails rendered in about :data:`SLICE` seconds on the loop
        (a mail listing at most :data:`INLINE_ALERTS` alerts), or one bigger
        mail rendered in a worker thread; it is committed at once, then the
        loop gets a turn. A quiet turn's mails make one slice; a storm's batch
        several, the first mails committed while the last still wait. The
        database is used on the loop only.

        Args:
            notifications: The mails to queue, in order.
            before: Called first inside the first transaction (the agent writes
                the alerts the notifications are about there, so none is
                committed after its mail); what it returns is called once that
                transaction committed.
            also: Called inside the transaction for each notification queued
                (the notification log records it there: both or neither).

        Returns:
            For each notification, its outbox entry id, or the error that kept
            it out: a :class:`MailError` (no recipient, no sender; the others
            are queued), or a :class:`StateError` when a transaction failed
            (that one's mails and all later ones: none is committed after a
            failure, so none before the alerts it tells of).
        """
        known = [self._known_root(n) for n in notifications]
        out: list[int | NetalertError] = []
        queued: list[RenderedMail] = []
        while len(out) < len(notifications):
            if out:
                await asyncio.sleep(0)  # a slice is done: the loop reads traps meanwhile
            first = len(out)
            rendered = await self._render_slice(notifications[first:], known[first:])
            items = list(zip(notifications[first:], rendered, known[first:], strict=False))
            try:
                done = self._insert_slice(items, before if not first else None, also)
            except sqlite3.Error as exc:
                failed = StateError(f"outbox: the mail was not queued ({exc})")
                out += [failed] * (len(notifications) - first)
                break
            out += done
            queued += [m for m, r in zip(rendered, done, strict=True) if isinstance(r, int)]
        for mail in queued:
            self.stats.alerts_truncated += mail.omitted
            self.stats.clipped += mail.clipped
        if self.on_enqueue is not None and queued:
            self.on_enqueue()
        return out

    async def _render_slice(
        self, notifications: Sequence[NotificationLike], known: Sequence[str | None]
    ) -> list[RenderedMail]:
        """Renders the first of ``notifications``: for about SLICE seconds, or one big mail."""
        out: list[RenderedMail] = []
        began = time.perf_counter()
        for notification, root in zip(notifications, known, strict=True):
            if min(len(notification.alerts), self.limits.max_alerts) > INLINE_ALERTS:
                if not out:
                    out.append(await asyncio.to_thread(self._render, notification, root))
                break
            out.append(self._render(notification, root))
            if time.perf_counter() - began > SLICE:
                break
        return out

    def _insert_slice(
        self,
        items: Sequence[tuple[N, RenderedMail, str | None]],
        before: Callable[[sqlite3.Connection], Callable[[], None] | None] | None,
        also: Callable[[sqlite3.Connection, N], None] | None,
    ) -> list[int | NetalertError]:
        """Inserts ``items`` in one transaction (``before`` first, if given).

        Raises:
            sqlite3.Error: The transaction failed: none of it was stored.
        """
        out: list[int | NetalertError] = []
        at = self.clock()
        committed = None
        with self.outbox.db.transaction() as conn:
            if before is not None:
                committed = before(conn)
            for notification, mail, root in items:
                try:
                    out.append(self._insert(conn, notification, mail, root, at))
                except MailError as exc:
                    out.append(exc)
                    continue
                if also is not None:
                    also(conn, notification)
        if committed is not None:
            committed()
        return out

    def _insert(
        self,
        conn: sqlite3.Connection,
        notification: NotificationLike,
        rendered: RenderedMail,
        known: str | None,
        at: float,
    ) -> int:
        draft = rendered.draft
        message_id = draft.get("Message-ID")
        subject = draft.get("Subject")
        return self.outbox.insert(
            conn,
            rendered.data,
            sender=envelope_sender(draft),
            recipients=envelope_recipients(notification.recipients, message_id or subject),
            message_id=message_id,
            subject=subject,
            at=at,
            thread=self._thread(notification, rendered, known),
        )

    @staticmethod
    def _thread(
        notification: NotificationLike, rendered: RenderedMail, known: str | None
    ) -> tuple[str, str] | None:
        if known is not None:
            return None
        # this mail is (or acts as) the first of the episode: later ones reply to it
        draft = rendered.draft
        references = draft.get("References").split()
        root = references[0] if references else draft.get("Message-ID")
        return (notification.group_key, root)

    def _known_root(self, notification: NotificationLike) -> str | None:
        if str(notification.reason) == "new":
            return None
        return self.outbox.thread_root(notification.group_key)

    def _render(self, notification: NotificationLike, known: str | None) -> RenderedMail:
        # pure: templates, the notification's frozen values and the limits; no database
        return render_mail(
            notification,
            templates=self.templates,
            sender=self.sender,
            status_url=self.status_url,
            known_root=known,
            limits=self.limits,
        )

    def _enqueue(
        self,
        notification: NotificationLike,
        rendered: RenderedMail,
        known: str | None,
        also: Callable[[sqlite3.Connection], None] | None,
    ) -> int:
        draft = rendered.draft
        entry = self.outbox.enqueue_raw(
            rendered.data,
            sender=envelope_sender(draft),
            recipients=notification.recipients,
            message_id=draft.get("Message-ID"),
            subject=draft.get("Subject"),
            now=self.clock(),
            thread=self._thread(notification, rendered, known),
            also=also,
        )
        self.stats.alerts_truncated += rendered.omitted
        self.stats.clipped += rendered.clipped
        if self.on_enqueue is not None:
            self.on_enqueue()
        return entry
