"""Connecting to an SMTP server with aiosmtplib: security modes, TLS trust, AUTH.

``security``: ``none`` (plain, no STARTTLS attempted; port 25 to a local relay),
``starttls`` (587: upgrade required, refused if not offered), ``tls`` (465:
TLS from the first byte). Certificates are verified against the system CAs
plus ``ca_file``; ``verify = false`` turns that off and logs a warning each
time a target is built. AUTH is sent only over TLS unless the target allows
it in clear (``allow_plaintext_auth``, or a loopback host): aiosmtplib itself
would log in over a plain line. Every failure is raised as a :class:`MailError`
child naming the server and, when there was one, the SMTP reply.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from netalert.config.models import SmtpConfig, SmtpRelay
from netalert.config.types import is_loopback_host
from netalert.logs import event
from netalert.mail.classify import describe
from netalert.mail.errors import (
    MailAuthError,
    MailConnectionError,
    MailError,
    MailRefusedError,
    MailTimeoutError,
    MailTlsError,
)
from netalert.readfile import read_bounded, why

__all__ = [
    "SendReport",
    "SmtpTarget",
    "close_client",
    "connect",
    "local_hostname",
    "send_direct",
    "tls_context",
    "warn_unverified",
]

log = logging.getLogger("netalert.mail")
CA_FILE_MAX_BYTES = 4 * 1024 * 1024  # a ca_file bundle, at most (the system bundle is ~200 KB)


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where and how to submit mail; built from ``[smtp]`` or ``[smtp.fallback]``."""

    host: str
    port: int
    security: str = "none"
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: Path | None = None
    verify: bool = True
    timeout: float = 30.0
    # AUTH may go over a connection without TLS; from_config decides (loopback is exempt)
    allow_plaintext_auth: bool = False

    @classmethod
    def from_config(cls, cfg: SmtpConfig | SmtpRelay) -> SmtpTarget:
        """The target of a ``[smtp]`` or ``[smtp.fallback]`` table.

        AUTH in clear is allowed when the table says so or its host is loopback
        (the password then never leaves the machine).
        """
        return cls(
            host=cfg.host,
            port=cfg.port,
            security=cfg.security,
            username=cfg.username,
            password=cfg.password.get_secret_value(),
            ca_file=cfg.ca_file,
            verify=cfg.verify,
            timeout=cfg.timeout.total_seconds(),
            allow_plaintext_auth=cfg.allow_plaintext_auth or is_loopback_host(cfg.host),
        )

    @property
    def label(self) -> str:
        """``host:port`` for messages."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def tls_context(target: SmtpTarget, *, warn: bool = True) -> ssl.SSLContext | None:
    """The client TLS context of ``target`` (None for ``security = "none"``).

    With ``warn``, ``verify = false`` is logged (:func:`warn_unverified`).

    Raises:
        MailTlsError: ``ca_file`` cannot be read or holds no certificate.
    """
    if target.security == "none":
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if target.ca_file is not None:
        try:
            # bounded and never blocking: the path may name a FIFO or a device
            pem = read_bounded(target.ca_file, CA_FILE_MAX_BYTES).decode("utf-8")
            ctx.load_verify_locations(cadata=pem)
        except UnicodeDecodeError:
            raise MailTlsError(
                f"smtp.ca_file {target.ca_file}: cannot load it (not UTF-8 PEM text)",
                server=target.label,
            ) from None
        except (OSError, ssl.SSLError) as exc:
            reason = why(exc) if isinstance(exc, OSError) else str(exc)
            raise MailTlsError(
                f"smtp.ca_file {target.ca_file}: cannot load it ({reason})", server=target.label
            ) from exc
    if not target.verify:
        if warn:
            warn_unverified(target)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def warn_unverified(target: SmtpTarget) -> None:
    """Logs that ``target``'s certificates are not verified, if so (each time a sender is built)."""
    if target.security != "none" and not target.verify:
        log.warning(
            event(
                "smtp_tls_verify_off",
                server=target.label,
                note="certificates are NOT verified (verify = false): "
                "anyone on the path can read and change alert mail",
            )
        )


@functools.cache
def local_hostname() -> str:
    """The name given in EHLO: this host's FQDN (looked up once per process)."""
    return socket.getfqdn() or "localhost"


async def connect(target: SmtpTarget, context: ssl.SSLContext | None) -> aiosmtplib.SMTP:
    """Opens, secures and authenticates a connection to ``target``.

    Raises:
        MailTimeoutError: No answer within ``target.timeout``.
        MailTlsError: TLS handshake or certificate check failed, or STARTTLS is
            required but refused.
        MailAuthError: The server refused the credentials or offers no AUTH, or
            the connection is not TLS and the target does not allow AUTH in clear
            (nothing of the credentials is sent then).
        MailConnectionError: The server cannot be reached or refused service.
    """
    name = await asyncio.to_thread(local_hostname)
    client = aiosmtplib.SMTP(
        hostname=target.host,
        port=target.port,
        use_tls=target.security == "tls",
        # "none" means plain: no opportunistic upgrade that could fail verification
        start_tls=target.security == "starttls",
        tls_context=context,
        timeout=target.timeout,
        local_hostname=name,
    )
    where = target.label
    try:
        await client.connect()
    except Exception as exc:
        # aiosmtplib leaves the socket open when the handshake or STARTTLS fails:
        # close it, or every retry against a broken server leaks a descriptor.
        client.close()
        raise _connect_error(exc, target) from exc
    if target.username:
        if not target.allow_plaintext_auth and client.get_transport_info("sslcontext") is None:
            client.close()
            raise MailAuthError(
                f"{where}: refusing to send the password of {target.username!r} without TLS; "
                'use security = "starttls" or "tls", or set allow_plaintext_auth = true',
                server=where,
            )
        try:
            await client.login(target.username, target.password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            client.close()
            raise MailAuthError(
                f"{where} refused the login of {target.username!r}: {describe(exc)}; "
                "check [smtp].username and password",
                server=where,
                code=exc.code,
            ) from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            client.close()
            raise MailTimeoutError(f"{where}: no answer to AUTH", server=where) from exc
        except aiosmtplib.SMTPServerDisconnected as exc:
            raise MailConnectionError(
                f"{where} closed the connection during AUTH", server=where
            ) from exc
        except aiosmtplib.SMTPException as exc:
            client.close()
            raise MailAuthError(f"{where}: {describe(exc)}", server=where) from exc
    return client


def _connect_error(exc: Exception, target: SmtpTarget) -> Exception:
    """The MailError a failed aiosmtplib ``connect()`` means (``exc`` itself if none)."""
    where = target.label
    if isinstance(exc, ssl.SSLError):
        return MailTlsError(f"TLS with {where} failed: {exc}", server=where)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return MailTimeoutError(f"{where}: no answer within {target.timeout:g}s", server=where)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        tls_refused = target.security == "starttls" and exc.code != 421
        cls = MailTlsError if tls_refused else MailConnectionError
        return cls(f"{where} refused the session: {describe(exc)}", server=where, code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        if isinstance(exc.__cause__, ssl.SSLError):
            # implicit TLS: aiosmtplib wraps the handshake failure in a connect error
            return MailTlsError(f"TLS with {where} failed: {exc.__cause__}", server=where)
        return MailConnectionError(f"cannot connect to {where}: {describe(exc)}", server=where)
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return MailConnectionError(f"{where} closed the connection: {describe(exc)}", server=where)
    if isinstance(exc, aiosmtplib.SMTPException):
        # e.g. "SMTP STARTTLS extension not supported by server."
        return MailTlsError(f"{where}: {describe(exc)}", server=where)
    if isinstance(exc, OSError):
        return MailConnectionError(f"cannot connect to {where}: {exc}", server=where)
    return exc


@dataclass(frozen=True, slots=True)
class SendReport:
    """The outcome of :func:`send_direct`: accepted recipients and refused ones."""

    server: str
    reply: str
    accepted: tuple[str, ...]
    refused: tuple[tuple[str, int, str], ...]


async def close_client(client: aiosmtplib.SMTP) -> None:
    """Says QUIT when the line is up, then always releases the socket."""
    try:
        if client.is_connected:
            await client.quit(timeout=5)
    except (aiosmtplib.SMTPException, OSError):
        pass  # the server is gone or rude: closing below is all that is left
    finally:
        client.close()


async def send_direct(
    target: SmtpTarget, message: EmailMessage, recipients: Sequence[str]
) -> SendReport:
    """Sends one message now, bypassing the outbox (``netalert mail test``).

    Raises:
        MailError: A child of it for connection, TLS, AUTH and timeout failures;
            :class:`MailRefusedError` when the server refused the message or
            every recipient (``code`` holds the reply code).
    """
    client = await connect(target, tls_context(target))
    where = target.label
    try:
        errors, reply = await client.send_message(message, recipients=list(recipients))
    except aiosmtplib.SMTPRecipientsRefused as exc:
        first = exc.recipients[0]
        raise MailRefusedError(
            f"{where} refused every recipient: {describe(exc)}", server=where, code=first.code
        ) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise MailRefusedError(
            f"{where} refused the message: {describe(exc)}", server=where, code=exc.code
        ) from exc
    except aiosmtplib.SMTPTimeoutError as exc:
        raise MailTimeoutError(
            f"{where}: no answer within {target.timeout:g}s", server=where
        ) from exc
    except (aiosmtplib.SMTPServerDisconnected, OSError) as exc:
        raise MailConnectionError(f"{where} dropped the connection: {exc}", server=where) from exc
    except aiosmtplib.SMTPException as exc:
        raise MailError(f"{where}: {describe(exc)}", server=where) from exc
    finally:
        await close_client(client)
    refused = tuple((addr, resp.code, resp.message) for addr, resp in errors.items())
    accepted = tuple(r for r in recipients if r not in errors)
    return SendReport(server=where, reply=reply, accepted=accepted, refused=refused)
