"""Is a failed delivery worth retrying? One pure decision, tested with a table.

Connection errors, timeouts, TLS and AUTH problems and 4xx replies are
temporary: the message is kept and retried with capped exponential backoff.
A 5xx reply to the message (MAIL FROM, DATA) or to one recipient is permanent
for what it refused. AUTH failures are *not* permanent although they are 5xx:
a wrong password is the operator's to fix, and alert mail must survive it.
"""

from __future__ import annotations

import ssl
from enum import StrEnum

import aiosmtplib

from netalert.mail.errors import (
    MailAuthError,
    MailConnectionError,
    MailError,
    MailRefusedError,
    MailTemplateError,
    MailTimeoutError,
    MailTlsError,
)

__all__ = ["RetryClass", "classify_smtp_error", "classify_smtp_reply", "describe", "failure_kind"]

# Reply codes about authentication (RFC 4954): a configuration matter, retried.
_AUTH_CODES = frozenset({530, 534, 535, 538})


class RetryClass(StrEnum):
    """What to do with what a failure refused."""

    RETRY = "retry"
    PERMANENT = "permanent"


def classify_smtp_reply(code: int) -> RetryClass:
    """Classifies one SMTP reply code given to a message or a recipient."""
    if code in _AUTH_CODES:
        return RetryClass.RETRY
    return RetryClass.PERMANENT if 500 <= code <= 599 else RetryClass.RETRY


def classify_smtp_error(exc: BaseException) -> RetryClass:
    """Classifies an exception raised while submitting a message.

    Unknown exceptions are retried: an alert is never dropped on a guess.
    """
    if isinstance(exc, MailTemplateError):
        return RetryClass.PERMANENT
    if isinstance(exc, MailError):
        if isinstance(exc, MailRefusedError) and exc.code is not None:
            return classify_smtp_reply(exc.code)
        return RetryClass.RETRY
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in exc.recipients]
        if codes and all(classify_smtp_reply(c) is RetryClass.PERMANENT for c in codes):
            return RetryClass.PERMANENT
        return RetryClass.RETRY
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return RetryClass.RETRY
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return classify_smtp_reply(exc.code)
    if isinstance(exc, aiosmtplib.SMTPNotSupported) and "SMTPUTF8" in str(exc):
        # the message needs an extension this server lacks: retrying cannot help
        return RetryClass.PERMANENT
    if isinstance(exc, OSError):
        # before ValueError: ssl.SSLCertVerificationError is both
        return RetryClass.RETRY
    if isinstance(exc, ValueError | UnicodeError):
        # an address aiosmtplib refuses to put on the wire
        return RetryClass.PERMANENT
    return RetryClass.RETRY


def failure_kind(exc: BaseException) -> str:
    """The ``kind`` label of ``netalert_mail_failed_total`` for an exception.

    One of ``auth``, ``tls``, ``timeout``, ``connection``, ``temporary`` (4xx),
    ``rejected`` (5xx), ``template``, ``other``.
    """
    if isinstance(exc, MailTemplateError):
        return "template"
    if isinstance(exc, MailAuthError | aiosmtplib.SMTPAuthenticationError):
        return "auth"
    if isinstance(exc, MailTlsError | ssl.SSLError):
        return "tls"
    if isinstance(exc, MailTimeoutError | aiosmtplib.SMTPTimeoutError | TimeoutError):
        return "timeout"
    code = _code(exc)
    if code is not None:
        if code in _AUTH_CODES:
            return "auth"
        return "rejected" if code >= 500 else "temporary"
    if isinstance(exc, MailConnectionError | ConnectionError | OSError):
        return "connection"
    if isinstance(exc, aiosmtplib.SMTPException) and "AUTH" in str(exc):
        return "auth"
    if isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS" in str(exc):
        return "tls"
    return "other"


def _code(exc: BaseException) -> int | None:
    if isinstance(exc, MailError):
        return exc.code
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        return exc.recipients[0].code
    return None


def describe(exc: BaseException) -> str:
    """One line for logs and the status page: the SMTP code and reply, or the error."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}".strip()
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
