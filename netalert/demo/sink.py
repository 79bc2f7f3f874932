"""The demo's mail server: aiosmtpd on the running event loop, printing what it receives.

It accepts every message for any recipient and keeps nothing but what it
prints; it exists so ``netalert demo`` shows the agent's real e-mails without a
mail server. Never expose it beyond loopback: it is an open relay by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["MailSink", "ReceivedMail", "format_mail", "parse_mail"]

BODY_LINES = 16  # how much of each text body the demo prints


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One accepted message, reduced to what the demo prints and counts."""

    envelope_from: str
    envelope_to: tuple[str, ...]
    from_: str
    to: str
    subject: str
    text: str

    @property
    def state(self) -> str:
        """``FIRING``, ``RESOLVED`` or ``""``, from the subject (``[FIRING:2] ...``)."""
        head = self.subject.lstrip()
        for state in ("FIRING", "RESOLVED"):
            if head.startswith(f"[{state}"):
                return state
        return ""


def parse_mail(envelope_from: str, envelope_to: tuple[str, ...], data: bytes) -> ReceivedMail:
    """Parses a message's bytes; the text body is the text/plain part (else the first part)."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    text = ""
    if isinstance(message, EmailMessage):
        body = message.get_body(preferencelist=("plain", "html"))
        if body is not None:
            content = body.get_content()
            text = content if isinstance(content, str) else ""
    return ReceivedMail(
        envelope_from=envelope_from,
        envelope_to=envelope_to,
        from_=str(message.get("From", "")),
        to=str(message.get("To", "")),
        subject=str(message.get("Subject", "")),
        text=text,
    )


def format_mail(mail: ReceivedMail, number: int, *, lines: int = BODY_LINES) -> list[str]:
    """The lines the demo prints for one message: a rule, the headers, the body's start."""
    out = [
        f"+--- e-mail #{number} {'-' * 56}",
        f"| From:    {mail.from_}",
        f"| To:      {mail.to}",
        f"| Subject: {mail.subject}",
        "|",
    ]
    body = [line.rstrip() for line in mail.text.strip("\n").splitlines()]
    out.extend(f"|   {line}" if line else "|" for line in body[:lines])
    if len(body) > lines:
        out.append(f"|   ... ({len(body) - lines} more lines)")
    out.append("+" + "-" * 70)
    return out


class _Handler:
    """aiosmtpd handler: every DATA becomes a :class:`ReceivedMail`."""

    def __init__(self, on_mail: Callable[[ReceivedMail], None]) -> None:
        self.on_mail = on_mail

    async def handle_DATA(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode()
        mail = parse_mail(str(envelope.mail_from), tuple(envelope.rcpt_tos), data)
        self.on_mail(mail)
        return "250 2.0.0 OK: printed by the netalert demo"


class MailSink:
    """An SMTP server on ``host`` (a free port unless given) that hands each mail to ``on_mail``."""

    def __init__(self, on_mail: Callable[[ReceivedMail], None]) -> None:
        self.on_mail = on_mail
        self.host = ""
        self.port = 0
        self.received: list[ReceivedMail] = []
        self._server: asyncio.AbstractServer | None = None

    def _accept(self, mail: ReceivedMail) -> None:
        self.received.append(mail)
        self.on_mail(mail)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Starts listening.

        Raises:
            OSError: The address cannot be bound.
        """
        # aiosmtpd logs every connection at INFO on "mail.log"; the demo prints
        # the mails themselves, the session chatter is noise.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        handler = _Handler(self._accept)

        def factory() -> Any:
            return SMTP(handler, hostname="netalert-demo-sink", loop=loop)

        self._server = await loop.create_server(factory, host, port)
        self.host, self.port = self._server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        """Stops listening and waits for the open sessions to end."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            # Python 3.12+ waits for open sessions here; a client that never
            # hangs up must not hold the demo's exit.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout=2.0)
