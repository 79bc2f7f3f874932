"""The notify → mail hand-off: render a notification and commit it to the outbox.

:meth:`Mailer.submit` is what ``notify/`` calls; :meth:`Mailer.submit_off_loop`
does the same with a big group's rendering in a worker thread, so its mail
does not stall the event loop (a small one renders on the loop: the hand-off
to a thread costs more than its render). Either looks up the thread root of the group's
open episode, renders the mail replying to it within ``[limits]`` (what the
bounds left out is counted in :class:`~netalert.mail.stats.MailStats`), and
enqueues the mail (recording a new root in the same transaction when the mail
starts an episode). When it returns, the mail is durable; the sender is woken up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from netalert.mail.bounds import MailLimits
from netalert.mail.headers import message_domain
from netalert.mail.outbox import envelope_sender
from netalert.mail.queue import MailQueue
from netalert.mail.render import MailTemplates, NotificationLike, RenderedMail, render_mail
from netalert.mail.stats import MailStats

__all__ = ["Mailer"]


class Mailer:
    """Renders notifications and puts them in the outbox."""

    def __init__(
        self,
        outbox: MailQueue,
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
        # mails listing at most this many alerts render on the loop ([agent] key)
        self.on_loop_max_alerts = 10
        # [ack] (issue 17): signs each mail with firing alerts (netalert.ack.issuer.TokenIssuer)
        self.ack: Any = None

    def submit(
        self,
        notification: NotificationLike,
        *,
        also: Callable[[Any], None] | None = None,
        on_done: Callable[[bool], None] | None = None,
    ) -> int | None:
        """Renders ``notification`` and enqueues it; returns the outbox entry id.

        While the state database cannot be written the mail waits in memory
        (None is returned); ``on_done`` is called once with True when it is
        committed, False if it was shed (see :meth:`Outbox.enqueue`).

        Raises:
            MailError: The notification has no recipient.
            StateError: The database cannot be written.
        """
        known = self._known_root(notification)
        extra = self._ack_extra(notification)
        rendered = self._render(notification, known, **extra)
        return self._enqueue(notification, rendered, known, also, on_done, extra.get("reply"))

    async def submit_off_loop(
        self,
        notification: NotificationLike,
        *,
        also: Callable[[Any], None] | None = None,
        on_done: Callable[[bool], None] | None = None,
    ) -> int | None:
        """:meth:`submit`, rendering a group of more than :attr:`on_loop_max_alerts`
        alerts in a worker thread; the database is used on the loop only.

        Raises:
            MailError: The notification has no recipient.
            StateError: The database cannot be written.
        """
        known = self._known_root(notification)
        extra = self._ack_extra(notification)
        if len(notification.alerts) <= self.on_loop_max_alerts:
            self.stats.rendered["loop"] += 1
            rendered = self._render(notification, known, **extra)
        else:
            self.stats.rendered["thread"] += 1
            rendered = await asyncio.to_thread(partial(self._render, notification, known, **extra))
        return self._enqueue(notification, rendered, known, also, on_done, extra.get("reply"))

    def _ack_extra(self, notification: NotificationLike) -> dict[str, Any]:
        """[ack] (issue 17): the token headers of a mail with firing alerts and who acked
        which of its alerts; nothing without ``[ack]``."""
        if self.ack is None:
            return {}
        firing = tuple(a for a in notification.alerts if a.ends_at is None)
        return {
            "reply": self.ack.issue(firing, message_domain(self.sender)),
            "acks": self.ack.ack_lines(firing),
        }

    @staticmethod
    def _thread(
        notification: NotificationLike, rendered: RenderedMail, known: str | None
    ) -> tuple[str, str] | None:
        if known is not None:
            return None
        # this mail is (or acts as) the first of the episode: later ones reply to it
        draft = rendered.draft
        root = draft.get("In-Reply-To") or draft.get("Message-ID")
        return (notification.group_key, root)

    def _known_root(self, notification: NotificationLike) -> str | None:
        if str(notification.reason) == "new":
            return None
        return self.outbox.thread_root(notification.group_key)

    def _render(
        self,
        notification: NotificationLike,
        known: str | None,
        reply: Any = None,
        acks: Mapping[str, str] | None = None,
    ) -> RenderedMail:
        # pure: templates, the notification's frozen values and the limits; no database
        return render_mail(
            notification,
            templates=self.templates,
            sender=self.sender,
            status_url=self.status_url,
            known_root=known,
            limits=self.limits,
            reply=None if reply is None else (reply.reply_to, reply.reference),
            acks=acks,
        )

    def _enqueue(
        self,
        notification: NotificationLike,
        rendered: RenderedMail,
        known: str | None,
        also: Callable[[Any], None] | None,
        on_done: Callable[[bool], None] | None,
        reply: Any = None,
    ) -> int | None:
        draft = rendered.draft
        now = self.clock()
        also = _with_reply(also, reply, draft.get("Message-ID"), draft.get("Subject"), now)
        entry = self.outbox.enqueue_raw(
            rendered.data,
            sender=envelope_sender(draft),
            recipients=notification.recipients,
            message_id=draft.get("Message-ID"),
            subject=draft.get("Subject"),
            now=now,
            thread=self._thread(notification, rendered, known),
            also=also,
            on_done=on_done,
        )
        self.stats.alerts_truncated += rendered.omitted
        self.stats.clipped += rendered.clipped
        if self.on_enqueue is not None:
            self.on_enqueue()
        return entry


def _with_reply(
    also: Callable[[Any], None] | None,
    reply: Any,
    message_id: str,
    subject: str,
    now: float,
) -> Callable[[Any], None] | None:
    """[ack] (issue 17): ``also``, then the token's row, in the mail's transaction."""
    if reply is None:
        return also

    def both(conn: Any) -> None:
        if also is not None:
            also(conn)
        reply.record(conn, message_id, subject, now)

    return both
