"""AUTH never goes out in clear unless allowed: at config load, and in the sender itself.

First line: ``username`` with ``security = "none"`` towards a host that is not
loopback is a config error (``smtp.username: ...``) unless ``allow_plaintext_auth``.
Second line: a target that may not AUTH in clear is refused by the transport when
the connection is not TLS, before any AUTH command (tested against aiosmtpd).
"""

from __future__ import annotations

import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from netalert.config import load_config_text
from netalert.errors import ConfigError
from netalert.mail.errors import MailAuthError
from netalert.mail.outbox import Outbox
from netalert.mail.sender import Sender
from netalert.mail.transport import SmtpTarget, send_direct
from netalert.state.db import open_database
from tests.support.smtp import SmtpServer

PLAINTEXT = (
    'AUTH with security = "none" would send the password in clear to {host!r}; '
    'use security = "starttls" or "tls", or set allow_plaintext_auth = true'
)
REFUSED = (
    "{where}: refusing to send the password of 'alice' without TLS; "
    'use security = "starttls" or "tls", or set allow_plaintext_auth = true'
)


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "netalert <alerts@example.org>"
    msg["To"] = "noc@example.net"
    msg["Subject"] = "auth test"
    msg["Message-ID"] = "<auth-test@example.org>"
    msg.set_content("body\n")
    return msg


def target(server: SmtpServer, **kw: Any) -> SmtpTarget:
    security = {"plain": "none"}.get(server.mode, server.mode)
    base: dict[str, Any] = {
        "security": security,
        "ca_file": server.ca_file,
        "timeout": 5.0,
        "username": "alice",
        "password": "s3cret",
    }
    base.update(kw)
    return SmtpTarget(host=server.host, port=server.port, **base)


async def test_aiosmtplib_alone_would_auth_in_clear(smtp_factory: Any) -> None:
    # Why the sender checks for itself: the library logs in over a plain line.
    server: SmtpServer = smtp_factory("plain", auth=("alice", "s3cret"))
    client = aiosmtplib.SMTP(hostname=server.host, port=server.port, start_tls=False, timeout=5)
    await client.connect()
    try:
        await client.login("alice", "s3cret")
    finally:
        client.close()
    assert server.auth_attempts == [("alice", True)]


async def test_send_direct_refuses_auth_without_tls(smtp_factory: Any) -> None:
    server: SmtpServer = smtp_factory("plain", auth=("alice", "s3cret"))
    plain = target(server)
    with pytest.raises(MailAuthError) as info:
        await send_direct(plain, message(), ["noc@example.net"])
    assert str(info.value) == REFUSED.format(where=plain.label)
    assert server.auth_attempts == [] and server.received() == []


async def test_sender_keeps_the_message_and_counts_auth(smtp_factory: Any) -> None:
    server: SmtpServer = smtp_factory("plain", auth=("alice", "s3cret"))
    outbox = Outbox(open_database(None), clock=lambda: 1_790_000_000.0)
    sender = Sender(outbox, target(server), clock=lambda: 1_790_000_000.0, rand=lambda: 0.0)
    outbox.enqueue(message())
    await sender.run_once()
    assert server.auth_attempts == [] and server.received() == []
    assert sender.stats.failed_total["auth"] == 1
    [entry] = outbox.entries()  # kept: the operator fixes the config, the mail still goes
    assert "without TLS" in entry.last_error
    await sender.close()


async def test_allowed_plaintext_auth_logs_in(smtp_factory: Any) -> None:
    server: SmtpServer = smtp_factory("plain", auth=("alice", "s3cret"))
    report = await send_direct(
        target(server, allow_plaintext_auth=True), message(), ["noc@example.net"]
    )
    assert report.accepted == ("noc@example.net",)
    [got] = server.received()
    assert got.login == "alice" and not got.tls


async def test_starttls_auth_needs_no_permission(smtp_factory: Any) -> None:
    server: SmtpServer = smtp_factory("starttls", auth=("alice", "s3cret"), auth_required=True)
    await send_direct(target(server), message(), ["noc@example.net"])
    [got] = server.received()
    assert got.login == "alice" and got.tls


@pytest.mark.parametrize(
    ("smtp", "allowed"),
    [
        ('host = "127.0.0.1"\nusername = "alice"', True),  # loopback: exempt
        ('host = "localhost"\nusername = "alice"', True),
        ('host = "smtp.example.org"\nusername = "alice"\nallow_plaintext_auth = true', True),
        ('host = "smtp.example.org"\nsecurity = "starttls"\nusername = "alice"', False),
        ('host = "smtp.example.org"\nsecurity = "tls"', False),
    ],
)
def test_target_from_config(smtp: str, allowed: bool) -> None:
    config = load_config_text(f"[smtp]\n{smtp}\n", env={})
    assert SmtpTarget.from_config(config.smtp).allow_plaintext_auth is allowed


# --- at config load --------------------------------------------------------------------


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, source="c.toml", env={})
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[smtp]\nhost = "smtp.example.org"\nusername = "alice"\npassword = "pw"\n',
            ["smtp.username: " + PLAINTEXT.format(host="smtp.example.org")],
        ),
        (  # security defaults to "none": a username alone is enough to refuse
            '[smtp]\nhost = "192.0.2.25"\nport = 587\nusername = "alice"\n',
            ["smtp.username: " + PLAINTEXT.format(host="192.0.2.25")],
        ),
        (
            '[smtp.fallback]\nhost = "relay.example.org"\nusername = "bob"\n',
            ["smtp.fallback.username: " + PLAINTEXT.format(host="relay.example.org")],
        ),
        (  # [smtp]'s permission is not the fallback's
            "[smtp]\nallow_plaintext_auth = true\n"
            '[smtp.fallback]\nhost = "relay.example.org"\nusername = "bob"\n',
            ["smtp.fallback.username: " + PLAINTEXT.format(host="relay.example.org")],
        ),
    ],
)
def test_refused_at_config_time(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


@pytest.mark.parametrize(
    "smtp",
    [
        'host = "localhost"\nusername = "alice"',
        'host = "LocalHost"\nusername = "alice"',
        'host = "127.0.0.1"\nusername = "alice"',
        'host = "127.20.30.40"\nusername = "alice"',
        'host = "::1"\nusername = "alice"',
        'host = "smtp.example.org"\nusername = "alice"\nallow_plaintext_auth = true',
        'host = "smtp.example.org"\nport = 587\nsecurity = "starttls"\nusername = "alice"',
        'host = "smtp.example.org"\nport = 465\nsecurity = "tls"\nusername = "alice"',
        'host = "smtp.example.org"',  # no username: no AUTH, nothing to protect
    ],
)
def test_auth_allowed(smtp: str) -> None:
    config = load_config_text(f"[smtp]\n{smtp}\n", env={})
    assert config.smtp.port in (25, 465, 587)


def test_fallback_has_its_own_switch() -> None:
    config = load_config_text(
        '[smtp.fallback]\nhost = "relay.example.org"\nusername = "bob"\n'
        "allow_plaintext_auth = true\n",
        env={},
    )
    assert config.smtp.fallback is not None and config.smtp.fallback.allow_plaintext_auth
    assert config.smtp.allow_plaintext_auth is False


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("localhost.", True),
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("128.0.0.1", False),
        ("192.0.2.1", False),
        ("::2", False),
        ("localhost.example.org", False),
        ("mylocalhost", False),
        ("smtp.example.org", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    from netalert.config.types import is_loopback_host

    assert is_loopback_host(host) is loopback


@pytest.mark.daemon
def test_mail_test_refuses_plaintext_auth_to_a_remote_host(tmp_path: Path) -> None:
    # refused at load: the host is never contacted, the password never printed
    (tmp_path / "config.toml").write_text(
        '[agent]\nstate_dir = "state"\nhttp = ""\n'
        '[smtp]\nhost = "smtp.example.org"\nusername = "alice"\npassword = "s3cret-XYZ"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "netalert", "mail", "test", "--to", "noc@example.org"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (
        2,
        "smtp.username: " + PLAINTEXT.format(host="smtp.example.org") + "\n",
    )
    assert "s3cret-XYZ" not in done.stdout + done.stderr
