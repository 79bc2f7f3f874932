"""Errors of the mail stage: one root, children that are also the stdlib error they are.

As in aiosmtplib, a connection failure is also a :class:`ConnectionError` and a
timeout also a :class:`TimeoutError`, so callers may catch either family. Each
carries what an operator needs to act: the server, the SMTP code and reply.
"""

from __future__ import annotations

from netalert.errors import NetalertError

__all__ = [
    "MailAuthError",
    "MailConnectionError",
    "MailError",
    "MailRefusedError",
    "MailTemplateError",
    "MailTimeoutError",
    "MailTlsError",
]


class MailError(NetalertError):
    """Root of the mail stage's errors.

    Attributes:
        server: ``host:port`` of the SMTP server involved ("" when none).
        code: The SMTP reply code, or ``None`` when no reply was received.
    """

    def __init__(self, message: str, *, server: str = "", code: int | None = None) -> None:
        super().__init__(message)
        self.server = server
        self.code = code


class MailConnectionError(MailError, ConnectionError):
    """The SMTP server could not be reached or dropped the connection."""


class MailTlsError(MailConnectionError):
    """TLS failed: certificate not trusted, wrong host name, no STARTTLS offered."""


class MailTimeoutError(MailError, TimeoutError):
    """The SMTP server did not answer within the configured timeout."""


class MailAuthError(MailError):
    """The SMTP server refused the username/password (or offers no AUTH)."""


class MailRefusedError(MailError):
    """The SMTP server refused the message or a recipient with a reply code."""


class MailTemplateError(MailError):
    """A mail template could not be loaded or rendered."""
