"""The aiosmtpd test server itself: modes, AUTH, faults, stop/start on the same port."""

from __future__ import annotations

import gc
import ssl
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest

from tests.support.smtp import SmtpServer


def _msg(subject: str = "hello") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "netalert@example.org"
    msg["To"] = "noc@example.net"
    msg["Subject"] = subject
    msg.set_content("body\n")
    return msg


async def test_plain_records_envelope_and_bytes(smtp_server: SmtpServer) -> None:
    await aiosmtplib.send(
        _msg(),
        hostname=smtp_server.host,
        port=smtp_server.port,
        sender="bounce@example.org",
        recipients=["a@example.net", "b@example.net"],
        start_tls=False,
    )
    [got] = await smtp_server.wait_for(1)
    assert got.mail_from == "bounce@example.org"
    assert got.rcpt_tos == ("a@example.net", "b@example.net")
    assert got.parsed()["Subject"] == "hello"
    assert b"body" in got.data
    assert not got.tls
    assert smtp_server.connections == 1


async def test_starttls_with_auth_verifies_against_test_ca(smtp_factory: Any) -> None:
    server: SmtpServer = smtp_factory("starttls", auth=("alice", "s3cret"), auth_required=True)
    await aiosmtplib.send(
        _msg(),
        hostname=server.host,
        port=server.port,
        start_tls=True,
        tls_context=server.client_context(),
        username="alice",
        password="s3cret",
    )
    [got] = await server.wait_for(1)
    assert got.tls and got.login == "alice"
    assert server.auth_attempts == [("alice", True)]


# aiosmtplib.send() leaves its socket open when STARTTLS verification fails (netalert's
# own transport closes it); collect it here so the warning cannot land on a later test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_starttls_rejects_untrusted_client(smtp_starttls_server: SmtpServer) -> None:
    # aiosmtplib lets the ssl module's verification error through unwrapped
    with pytest.raises(ssl.SSLCertVerificationError):
        await aiosmtplib.send(
            _msg(),
            hostname=smtp_starttls_server.host,
            port=smtp_starttls_server.port,
            start_tls=True,
            timeout=5,
        )
    assert smtp_starttls_server.received() == []
    gc.collect()


async def test_implicit_tls(smtp_tls_server: SmtpServer) -> None:
    await aiosmtplib.send(
        _msg(),
        hostname=smtp_tls_server.host,
        port=smtp_tls_server.port,
        use_tls=True,
        tls_context=smtp_tls_server.client_context(),
    )
    [got] = await smtp_tls_server.wait_for(1)
    assert got.tls


async def test_wrong_password_is_recorded(smtp_factory: Any) -> None:
    server: SmtpServer = smtp_factory("plain", auth=("alice", "s3cret"))
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
        await aiosmtplib.send(
            _msg(), hostname=server.host, port=server.port, username="alice", password="nope"
        )
    assert info.value.code == 535
    # aiosmtplib tries each offered mechanism (PLAIN, LOGIN) before giving up
    assert server.auth_attempts
    assert all(attempt == ("alice", False) for attempt in server.auth_attempts)


async def test_scripted_faults_are_consumed_in_order(smtp_server: SmtpServer) -> None:
    smtp_server.fail("rcpt", "451 4.3.0 later", times=1)
    smtp_server.fail("data", "421 4.3.2 busy")
    kwargs: dict[str, Any] = {"hostname": smtp_server.host, "port": smtp_server.port}
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await aiosmtplib.send(_msg(), **kwargs)
    assert refused.value.recipients[0].code == 451
    with pytest.raises(aiosmtplib.SMTPResponseException) as data_err:
        await aiosmtplib.send(_msg(), **kwargs)
    assert data_err.value.code == 421
    assert smtp_server.received() == []
    await aiosmtplib.send(_msg(), **kwargs)
    assert len(await smtp_server.wait_for(1)) == 1


async def test_recipient_fault_hits_only_that_address(smtp_server: SmtpServer) -> None:
    smtp_server.fail("rcpt", "550 5.1.1 no such user", recipient="b@example.net", times=None)
    errors, _ = await aiosmtplib.send(
        _msg(),
        hostname=smtp_server.host,
        port=smtp_server.port,
        recipients=["a@example.net", "b@example.net"],
    )
    assert errors["b@example.net"].code == 550
    [got] = await smtp_server.wait_for(1)
    assert got.rcpt_tos == ("a@example.net",)


async def test_disconnect_fault_drops_the_line(smtp_server: SmtpServer) -> None:
    smtp_server.disconnect("data")
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await aiosmtplib.send(_msg(), hostname=smtp_server.host, port=smtp_server.port, timeout=5)
    assert smtp_server.received() == []


async def test_stop_and_start_on_the_same_port(smtp_server: SmtpServer) -> None:
    port = smtp_server.port
    smtp_server.stop()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await aiosmtplib.send(_msg(), hostname=smtp_server.host, port=port, timeout=2)
    smtp_server.start()
    assert smtp_server.port == port
    await aiosmtplib.send(_msg(), hostname=smtp_server.host, port=port)
    assert len(await smtp_server.wait_for(1)) == 1
