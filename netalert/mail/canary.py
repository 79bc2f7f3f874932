"""The mail-path canary: proof that mail still leaves, and a loud flag when it does not.

Optionally a test message goes out every ``canary_interval`` (through the
outbox, like alert mail; never a second one while the first still waits).
Independently, when mail has been failing for longer than
``canary_threshold``, ``stats.canary_failing`` is raised (status page,
metrics) and, if a fallback smarthost is configured, one notice is sent
through it directly to ``canary_to``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from netalert.logs import event
from netalert.mail.errors import MailError
from netalert.mail.queue import MailQueue
from netalert.mail.render import render_test_message
from netalert.mail.stats import MailStats
from netalert.mail.transport import SmtpTarget, send_direct

__all__ = ["Canary", "mail_path_down"]

log = logging.getLogger("netalert.mail")


def mail_path_down(failing_since: float | None, now: float, threshold: float) -> bool:
    """Whether mail has been failing for longer than ``threshold`` seconds at ``now``."""
    return failing_since is not None and now - failing_since > threshold


class Canary:
    """Sends periodic test mail and watches how long mail has been failing."""

    def __init__(
        self,
        outbox: MailQueue,
        stats: MailStats,
        *,
        sender: str,
        to: Sequence[str],
        interval: float,
        threshold: float,
        fallback: SmtpTarget | None = None,
        on_enqueue: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.stats = stats
        self.sender = sender
        self.to = tuple(to)
        self.interval = interval
        self.threshold = threshold
        self.fallback = fallback
        self.on_enqueue = on_enqueue
        self.clock = clock
        self._last_sent: float | None = None
        self._waiting: str | None = None  # Message-ID of the canary still in the outbox
        self._notice_task: asyncio.Task[None] | None = None

    def tick(self) -> None:
        """Sends a canary when due and updates the mail-path flag; call every few seconds."""
        now = self.clock()
        if self.interval > 0 and self.to and self._due(now):
            message = render_test_message(
                self.sender, self.to, now=now, note="Sent by the netalert mail-path canary."
            )
            self.outbox.enqueue(message, self.to, now=now)
            self._waiting = str(message["Message-ID"])
            self._last_sent = now
            if self.on_enqueue is not None:
                self.on_enqueue()
        down = mail_path_down(self.stats.failing_since, now, self.threshold)
        if down and not self.stats.canary_failing:
            log.error(
                event(
                    "mail_path_down",
                    since=f"{self.stats.failing_since or now:.0f}",
                    error=self.stats.last_error,
                    note="alert mail is not being delivered",
                )
            )
            if self.fallback is not None and self.to:
                self._notice_task = asyncio.get_running_loop().create_task(self._notice(now))
        elif not down and self.stats.canary_failing:
            log.warning(event("mail_path_up", note="alert mail is being delivered again"))
        self.stats.canary_failing = down

    def _due(self, now: float) -> bool:
        if self._waiting is not None:
            if self.outbox.holds(self._waiting):
                return False
            self._waiting = None
        return self._last_sent is None or now - self._last_sent >= self.interval

    async def _notice(self, now: float) -> None:
        assert self.fallback is not None
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.stats.failing_since or now))
        message = render_test_message(
            self.sender,
            self.to,
            now=now,
            note=(
                "ALERT: netalert cannot deliver mail through its primary SMTP server "
                f"since {since}.\n"
                f"Last error: {self.stats.last_error}\n"
                f"Messages waiting in the outbox: {self.outbox.pending()}"
            ),
        )
        message.replace_header("Subject", "[FIRING] critical MailPathDown on netalert")
        try:
            await send_direct(self.fallback, message, self.to)
        except MailError as exc:
            log.error(event("mail_path_notice_failed", error=str(exc)))

    async def run(self, every: float = 5.0) -> None:
        """Calls :meth:`tick` every ``every`` seconds until cancelled."""
        while True:
            self.tick()
            await asyncio.sleep(every)
