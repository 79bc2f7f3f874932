"""The notify → mail hand-off: render a notification and commit it to the outbox.

:meth:`Mailer.submit` is what ``notify/`` calls. It looks up the thread root of
the group's open episode, renders the mail replying to it, and enqueues the
mail (recording a new root in the same transaction when the mail starts an
episode). When it returns, the mail is durable; the sender is woken up.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from netalert.mail.outbox import Outbox
from netalert.mail.render import MailTemplates, NotificationLike, render_notification

__all__ = ["Mailer"]


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
    ) -> None:
        self.outbox = outbox
        self.templates = templates
        self.sender = sender
        self.status_url = status_url
        self.on_enqueue = on_enqueue
        self.clock = clock

    def submit(
        self,
        notification: NotificationLike,
        *,
        also: Callable[[sqlite3.Connection], None] | None = None,
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
        new = str(notification.reason) == "new"
        known = None if new else self.outbox.thread_root(notification.group_key)
        message = render_notification(
            notification,
            templates=self.templates,
            sender=self.sender,
            status_url=self.status_url,
            known_root=known,
        )
        thread = None
        if known is None:
            # this mail is (or acts as) the first of the episode: later ones reply to it
            references = str(message.get("References", "")).split()
            root = references[0] if references else str(message["Message-ID"])
            thread = (notification.group_key, root)
        entry = self.outbox.enqueue(
            message,
            list(notification.recipients),
            now=self.clock(),
            thread=thread,
            also=also,
            on_done=on_done,
        )
        if self.on_enqueue is not None:
            self.on_enqueue()
        return entry
