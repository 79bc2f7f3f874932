"""A real SMTP server for tests: aiosmtpd on a free 127.0.0.1 port.

Load with ``pytest_plugins = ["tests.support.smtp"]`` (done in tests/conftest.py).

Fixtures:

* ``smtp_server`` - plain SMTP, no AUTH, started.
* ``smtp_starttls_server`` - STARTTLS offered (not required), test-CA certificate.
* ``smtp_tls_server`` - implicit TLS (port 465 style), test-CA certificate.
* ``smtp_factory`` - ``smtp_factory(mode="starttls", auth=("user", "pw"))`` for
  other combinations; every server it makes is stopped at teardown.
* ``smtp_ca`` / ``smtp_ca_file`` - the session's trustme CA and its PEM file
  (pass the file as ``ca_file`` to the code under test).

A server records each accepted message (:class:`ReceivedMessage`: envelope
sender, recipients, raw bytes, TLS and login) in ``server.messages``, counts
connections and AUTH attempts, and can be stopped and started again on the
same port (``server.stop()`` / ``server.start()``) to simulate an outage.

Fault injection is scripted per test and consumed in order::

    server.fail("rcpt", "451 4.3.0 try later", times=2)        # next 2 RCPT commands
    server.fail("rcpt", "550 5.1.1 no such user", recipient="b@example.net", times=None)
    server.fail("data", "421 4.3.2 shutting down")             # next DATA
    server.disconnect("data")                                  # drop the line at next DATA

``times=None`` means every time until :meth:`SmtpServer.clear_faults`. A
fault with ``recipient`` matches only RCPT commands for that address; other
faults match the next commands of their stage whatever the address. A failed
DATA records nothing, so ``messages`` holds exactly what the server accepted.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import gc
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.ports import free_tcp_port

__all__ = ["Fault", "ReceivedMessage", "SmtpServer"]

Mode = Literal["plain", "starttls", "tls"]
Stage = Literal["mail", "rcpt", "data"]

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message the server accepted (250 after DATA)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool
    login: str | None

    def parsed(self) -> EmailMessage:
        """The message parsed with the modern e-mail policy."""
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass(slots=True)
class Fault:
    """A scripted reply at one stage; ``reply=None`` drops the connection."""

    stage: Stage
    reply: str | None
    times: int | None = 1
    recipient: str | None = None

    def matches(self, stage: str, address: str | None) -> bool:
        if self.stage != stage:
            return False
        if self.recipient is not None:
            return address is not None and address.lower() == self.recipient.lower()
        return True


class _Handler:
    """aiosmtpd hooks; they run in the server thread."""

    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    def _fault(self, server: SMTP, stage: str, address: str | None) -> str | None:
        fault = self.owner._take_fault(stage, address)
        if fault is None:
            return None
        if fault.reply is None:
            # abort(): no FIN handshake, the client sees the line drop mid-command
            if isinstance(server.transport, asyncio.Transport):
                server.transport.abort()
            return "421 4.4.2 connection dropped by test"
        return fault.reply

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        reply = self._fault(server, "mail", address)
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self._fault(server, "rcpt", address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self._fault(server, "data", None)
        if reply is not None:
            return reply
        raw = envelope.original_content or b""
        auth = session.auth_data
        self.owner._record(
            ReceivedMessage(
                mail_from=str(envelope.mail_from),
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=bytes(raw),
                tls=server.transport is not None
                and server.transport.get_extra_info("cipher") is not None,
                login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
            )
        )
        return "250 2.0.0 queued"


class _Controller(Controller):
    def __init__(self, owner: SmtpServer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.owner = owner

    def factory(self) -> SMTP:
        self.owner._count_connection()
        smtpd: SMTP = super().factory()  # type: ignore[no-untyped-call]
        return smtpd


@dataclass
class SmtpServer:
    """An aiosmtpd server in its own thread; see the module docstring."""

    mode: Mode = "plain"
    auth: tuple[str, str] | None = None
    auth_required: bool = False
    ca: trustme.CA | None = None
    ca_file: Path | None = None
    host: str = HOST
    port: int = field(default_factory=lambda: free_tcp_port(HOST))
    messages: list[ReceivedMessage] = field(default_factory=list)
    auth_attempts: list[tuple[str, bool]] = field(default_factory=list)
    connections: int = 0
    faults: list[Fault] = field(default_factory=list)
    _controller: _Controller | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- lifecycle -------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._controller is not None

    def start(self) -> None:
        """Starts listening on ``self.port`` (the same port after a stop)."""
        assert self._controller is None, "already running"
        kwargs: dict[str, Any] = {
            "handler": _Handler(self),
            "hostname": self.host,
            "port": self.port,
            "server_hostname": "smtp.test",
            "ready_timeout": 10.0,
        }
        if self.mode != "plain":
            assert self.ca is not None, "TLS modes need a CA"
            server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert("localhost", HOST).configure_cert(server_ctx)
            if self.mode == "tls":
                kwargs["ssl_context"] = server_ctx
            else:
                kwargs["tls_context"] = server_ctx
        if self.auth is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = self.auth_required
            # plain test servers accept AUTH without TLS; TLS modes keep the safe default
            kwargs["auth_require_tls"] = self.mode != "plain"
        # a fresh controller each start: a stopped one has closed its event loop
        controller = _Controller(self, **kwargs)
        # the port may be in TIME_WAIT right after a stop; retry briefly
        deadline = time.monotonic() + 5.0
        while True:
            try:
                controller.start()
                break
            except OSError:
                controller = _Controller(self, **kwargs)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._controller = controller
        with self._lock:
            # the controller's own readiness probe opened one connection
            self.connections -= 1

    def stop(self) -> None:
        """Stops listening and drops open connections."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    # ---- faults ----------------------------------------------------------------

    def fail(
        self,
        stage: Stage,
        reply: str,
        *,
        times: int | None = 1,
        recipient: str | None = None,
    ) -> None:
        """Scripts ``reply`` (e.g. ``"451 4.3.0 later"``) for the next ``times`` commands."""
        assert recipient is None or stage == "rcpt", "recipient faults are for RCPT"
        with self._lock:
            self.faults.append(Fault(stage, reply, times, recipient))

    def disconnect(self, stage: Stage, *, times: int | None = 1) -> None:
        """Drops the connection at the next ``times`` commands of ``stage``."""
        with self._lock:
            self.faults.append(Fault(stage, None, times))

    def clear_faults(self) -> None:
        """Removes every scripted fault."""
        with self._lock:
            self.faults.clear()

    def _take_fault(self, stage: str, address: str | None) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(stage, address):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    # ---- recording -------------------------------------------------------------

    def _record(self, message: ReceivedMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def _count_connection(self) -> None:
        with self._lock:
            self.connections += 1

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: object,
    ) -> AuthResult:
        assert self.auth is not None
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode(errors="replace")
        ok = (login, auth_data.password.decode(errors="replace")) == self.auth
        with self._lock:
            self.auth_attempts.append((login, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def received(self) -> list[ReceivedMessage]:
        """A snapshot of the accepted messages."""
        with self._lock:
            return list(self.messages)

    async def wait_for(self, count: int, within: float = 10.0) -> list[ReceivedMessage]:
        """Waits until at least ``count`` messages arrived; returns them.

        Raises:
            AssertionError: Fewer arrived within ``within`` seconds.
        """
        deadline = time.monotonic() + within
        while True:
            got = self.received()
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} messages within {within}s, got {len(got)}")
            await asyncio.sleep(0.01)

    def client_context(self) -> ssl.SSLContext:
        """An ``ssl.SSLContext`` trusting the test CA (for bare aiosmtplib clients)."""
        assert self.ca is not None
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx


@pytest.fixture(scope="session")
def smtp_ca() -> trustme.CA:
    """The session's test certificate authority."""
    return trustme.CA()


@pytest.fixture(scope="session")
def smtp_ca_file(smtp_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test CA certificate as a PEM file."""
    path = tmp_path_factory.mktemp("smtp-ca") / "ca.pem"
    smtp_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def smtp_factory(smtp_ca: trustme.CA, smtp_ca_file: Path) -> Iterator[Any]:
    """Makes started servers: ``smtp_factory(mode=..., auth=(user, pw), auth_required=...)``."""
    made: list[SmtpServer] = []

    def make(
        mode: Mode = "plain",
        *,
        auth: tuple[str, str] | None = None,
        auth_required: bool = False,
        start: bool = True,
    ) -> SmtpServer:
        server = SmtpServer(
            mode=mode, auth=auth, auth_required=auth_required, ca=smtp_ca, ca_file=smtp_ca_file
        )
        made.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in made:
        server.stop()
    # The SMTP client's sockets can sit in reference cycles: collect them now, so a socket
    # a test leaked fails that test (ResourceWarning, filterwarnings=error), not a later one.
    gc.collect()


@pytest.fixture
def smtp_server(smtp_factory: Any) -> SmtpServer:
    """Plain SMTP on a free loopback port."""
    server: SmtpServer = smtp_factory("plain")
    return server


@pytest.fixture
def smtp_starttls_server(smtp_factory: Any) -> SmtpServer:
    """SMTP offering STARTTLS with a test-CA certificate."""
    server: SmtpServer = smtp_factory("starttls")
    return server


@pytest.fixture
def smtp_tls_server(smtp_factory: Any) -> SmtpServer:
    """Implicit-TLS SMTP with a test-CA certificate."""
    server: SmtpServer = smtp_factory("tls")
    return server
