"""The one short answer to an accepted reply: threaded, marked auto-replied, rate-limited."""

from __future__ import annotations

from collections import OrderedDict, deque
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from netalert.mail.headers import body_text, header_text, message_domain

__all__ = ["HELP", "SenderLimiter", "confirmation"]

HELP = """\
netalert did not understand the first line of your reply. Reply to an alert mail with one of:

  ack [comment]                 stop the repeats of these alerts until they resolve
  unack                         repeat them again
  silence DURATION [comment]    silence exactly these alerts, e.g. "silence 2h maintenance"
  resolve                       resolve trap alerts that have no clear trap

The command is the first line that is not quoted; case does not matter.
"""


class SenderLimiter:
    """At most ``per_sender`` confirmations to one address per ``window`` seconds,
    remembering at most ``senders_max`` senders (the least recent are forgotten)."""

    def __init__(self, per_sender: int, window: float, senders_max: int = 10_000) -> None:
        self.per_sender = per_sender
        self.window = window
        self.senders_max = senders_max
        self.forgotten = 0
        self._sent: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, sender: str, now: float) -> bool:
        """True (and counted) when a confirmation to ``sender`` may go out at ``now``."""
        times = self._sent.pop(sender, None) or deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        allowed = len(times) < self.per_sender
        if allowed:
            times.append(now)
        self._sent[sender] = times
        while len(self._sent) > self.senders_max:
            self._sent.popitem(last=False)
            self.forgotten += 1
        return allowed


def confirmation(
    *,
    sender: str,
    to: str,
    subject: str,
    in_reply_to: str,
    text: str,
    now: float,
) -> EmailMessage:
    """The answer mail: a reply in the alert mail's thread, ``Auto-Submitted: auto-replied``."""
    msg = EmailMessage()
    clean = header_text(subject, limit=180)
    msg["Subject"] = clean if clean.lower().startswith("re:") else f"Re: {clean}"
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = format_datetime(datetime.fromtimestamp(now, UTC))
    msg["Message-ID"] = make_msgid("na-ack", domain=message_domain(sender))
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    # RFC 3834: an automatic answer; responders must not answer it in turn
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Netalert-State"] = "ack"
    msg.set_content(body_text(text))
    return msg
