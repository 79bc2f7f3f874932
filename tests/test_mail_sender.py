"""The outbox sender against a real aiosmtpd: security modes, AUTH, faults, outages."""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from netalert.mail.outbox import Outbox
from netalert.mail.sender import Sender
from netalert.mail.transport import SmtpTarget
from netalert.state.db import open_database
from tests.support.ports import free_tcp_port
from tests.support.smtp import SmtpServer


class Clock:
    """A clock the test moves; SMTP timeouts still use real time."""

    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


def message(n: int, to: tuple[str, ...] = ("noc@example.net",), body: str = "") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "netalert <alerts@example.org>"
    msg["To"] = ", ".join(to)
    msg["Subject"] = f"alert {n}"
    msg["Message-ID"] = f"<m{n}@example.org>"
    msg.set_content(f"body {n} {body}\n")
    return msg


def target(server: SmtpServer, **kw: Any) -> SmtpTarget:
    security = {"plain": "none"}.get(server.mode, server.mode)
    base: dict[str, Any] = {"security": security, "ca_file": server.ca_file, "timeout": 5.0}
    base.update(kw)
    return SmtpTarget(host=server.host, port=server.port, **base)


def make(server: SmtpServer | SmtpTarget, **kw: Any) -> tuple[Outbox, Sender, Clock]:
    clock = Clock()
    outbox = Outbox(open_database(None), clock=clock)
    primary = server if isinstance(server, SmtpTarget) else target(server)
    sender = Sender(outbox, primary, clock=clock, rand=lambda: 0.0, retry_max=8.0, **kw)
    return outbox, sender, clock


def ids(server: SmtpServer) -> list[str]:
    return [str(m.parsed()["Message-ID"]) for m in server.received()]


async def test_plain_batch_over_one_connection(smtp_server: SmtpServer) -> None:
    outbox, sender, _ = make(smtp_server)
    for n in range(5):
        outbox.enqueue(message(n))
    assert await sender.run_once() == 5
    assert sorted(ids(smtp_server)) == [f"<m{n}@example.org>" for n in range(5)]
    assert smtp_server.connections == 1
    assert outbox.pending() == 0 and sender.stats.sent_total == 5
    await sender.close()


async def test_starttls_custom_port_test_ca_and_auth(smtp_factory: Any) -> None:
    server: SmtpServer = smtp_factory("starttls", auth=("alice", "s3cret"), auth_required=True)
    assert server.port not in (25, 587)
    outbox, sender, _ = make(target(server, username="alice", password="s3cret"))
    outbox.enqueue(message(1))
    await sender.run_once()
    [got] = server.received()
    assert got.tls and got.login == "alice"
    await sender.close()


async def test_implicit_tls(smtp_tls_server: SmtpServer) -> None:
    outbox, sender, _ = make(smtp_tls_server)
    outbox.enqueue(message(1))
    await sender.run_once()
    assert [m.tls for m in smtp_tls_server.received()] == [True]
    await sender.close()


async def test_untrusted_certificate_is_kept_and_retried(
    smtp_tls_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    outbox, sender, clock = make(target(smtp_tls_server, ca_file=None))
    outbox.enqueue(message(1))
    await sender.run_once()
    assert smtp_tls_server.received() == []
    assert sender.stats.failed_total["tls"] == 1
    [entry] = outbox.entries()
    assert "certificate verify failed" in entry.last_error
    # verify = false is explicit, works, and says so in the log
    with caplog.at_level(logging.WARNING, logger="netalert.mail"):
        insecure = Sender(outbox, target(smtp_tls_server, ca_file=None, verify=False), clock=clock)
    assert "certificates are NOT verified" in caplog.text
    clock.now += 10
    await insecure.run_once()
    assert len(smtp_tls_server.received()) == 1
    await insecure.close()


async def test_wrong_password_is_a_clear_recorded_error(smtp_factory: Any) -> None:
    server: SmtpServer = smtp_factory("plain", auth=("alice", "s3cret"))
    # a target built by hand: AUTH over a plain line needs the explicit permission
    outbox, sender, _ = make(
        target(server, username="alice", password="wrong", allow_plaintext_auth=True)
    )
    outbox.enqueue(message(1))
    await sender.run_once()
    assert server.received() == []
    assert sender.stats.auth_failed
    assert sender.stats.failed_total["auth"] == 1
    assert "535" in sender.stats.last_error and "username" in sender.stats.last_error
    [entry] = outbox.entries()  # kept: a wrong password never drops alert mail
    assert entry.attempts == 1 and "535" in entry.last_error


async def test_temporary_failures_then_success_delivers_once(smtp_server: SmtpServer) -> None:
    smtp_server.fail("mail", "421 4.3.2 shutting down")
    smtp_server.fail("data", "451 4.3.0 try again later")
    outbox, sender, clock = make(smtp_server)
    outbox.enqueue(message(1))
    await sender.run_once()  # 421 at MAIL: connection closed, retry later
    [entry] = outbox.entries()
    assert entry.attempts == 1 and "421" in entry.last_error
    assert await sender.run_once() == 0  # not due yet
    clock.now += 10
    await sender.run_once()  # 451 at DATA
    assert outbox.entries()[0].attempts == 2
    assert sender.stats.failed_total["temporary"] == 2
    clock.now += 10
    await sender.run_once()
    assert ids(smtp_server) == ["<m1@example.org>"]
    assert outbox.pending() == 0
    await sender.close()


async def test_550_for_one_of_two_recipients(smtp_server: SmtpServer) -> None:
    smtp_server.fail("rcpt", "550 5.1.1 no such user", recipient="gone@example.net", times=None)
    outbox, sender, _ = make(smtp_server)
    outbox.enqueue(message(1, ("noc@example.net", "gone@example.net")))
    await sender.run_once()
    [got] = smtp_server.received()
    assert got.rcpt_tos == ("noc@example.net",)
    assert outbox.pending() == 0
    [failure] = outbox.failures()
    assert (failure.address, failure.code) == ("gone@example.net", 550)
    assert "no such user" in failure.error and failure.message_id == "<m1@example.org>"
    assert sender.stats.failed_total["rejected"] == 1 and sender.stats.sent_total == 1
    await sender.close()


async def test_451_for_one_recipient_retries_only_that_one(smtp_server: SmtpServer) -> None:
    smtp_server.fail("rcpt", "451 4.2.0 mailbox busy", recipient="busy@example.net")
    outbox, sender, clock = make(smtp_server)
    outbox.enqueue(message(1, ("noc@example.net", "busy@example.net")))
    await sender.run_once()
    [entry] = outbox.entries()
    assert entry.recipients == ("busy@example.net",)
    clock.now += 10
    await sender.run_once()
    assert [m.rcpt_tos for m in smtp_server.received()] == [
        ("noc@example.net",),
        ("busy@example.net",),
    ]
    assert outbox.pending() == 0
    await sender.close()


async def test_permanent_refusal_at_data_leaves_and_is_recorded(smtp_server: SmtpServer) -> None:
    smtp_server.fail("data", "554 5.6.0 message content rejected")
    outbox, sender, _ = make(smtp_server)
    outbox.enqueue(message(1))
    outbox.enqueue(message(2))
    await sender.run_once()
    assert ids(smtp_server) == ["<m2@example.org>"]  # the connection went on with the next
    assert [f.code for f in outbox.failures()] == [554]
    assert outbox.pending() == 0
    await sender.close()


async def test_disconnect_at_data_then_delivered(smtp_server: SmtpServer) -> None:
    smtp_server.disconnect("data")
    outbox, sender, clock = make(smtp_server)
    outbox.enqueue(message(1))
    await sender.run_once()
    assert outbox.pending() == 1 and sender.stats.failed_total["connection"] == 1
    clock.now += 10
    await sender.run_once()
    assert ids(smtp_server) == ["<m1@example.org>"]
    await sender.close()


async def test_outage_for_the_whole_burst_then_each_delivered_once(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_server.stop()
    outbox, sender, clock = make(smtp_server, max_age=60.0)
    for n in range(30):
        outbox.enqueue(message(n))
    await sender.run_once()
    assert outbox.pending() == 30 and sender.stats.failed_total["connection"] == 1
    for _ in range(5):  # down for a while: one connection attempt per hold-off
        clock.now += 9
        await sender.run_once()
    assert sender.stats.failed_total["connection"] == 6
    assert sender.stats.failing_since is not None
    # older than max_age: reported loudly, still queued
    with caplog.at_level(logging.ERROR, logger="netalert.mail"):
        clock.now += 30
        await sender.run_once()
    assert caplog.text.count("event=mail_stale") == 30
    assert sender.stats.stale == 30 and outbox.pending() == 30
    smtp_server.start()
    clock.now += 9
    await sender.run_once()
    got = ids(smtp_server)
    assert sorted(got) == sorted(f"<m{n}@example.org>" for n in range(30))
    assert len(set(got)) == len(got) == 30
    assert outbox.pending() == 0 and sender.stats.stale == 0
    assert sender.stats.failing_since is None
    await sender.close()


async def test_restart_resumes_the_outbox(smtp_server: SmtpServer, tmp_path: Path) -> None:
    db = open_database(tmp_path)
    Outbox(db).enqueue(message(1))
    db.close()  # the process ends before any SMTP attempt
    db = open_database(tmp_path)
    outbox = Outbox(db)
    sender = Sender(outbox, target(smtp_server))
    await sender.run_once()
    assert ids(smtp_server) == ["<m1@example.org>"]
    assert outbox.pending() == 0
    await sender.close()
    db.close()


async def test_fallback_smarthost_takes_over(smtp_server: SmtpServer) -> None:
    dead = SmtpTarget(host="127.0.0.1", port=free_tcp_port(), timeout=2.0)
    outbox, sender, _ = make(dead, fallback=target(smtp_server))
    outbox.enqueue(message(1))
    await sender.run_once()
    assert ids(smtp_server) == ["<m1@example.org>"]
    assert sender.stats.using_fallback
    await sender.close()


async def test_run_loop_wakes_on_enqueue_and_reconnects(smtp_server: SmtpServer) -> None:
    outbox = Outbox(open_database(None))
    sender = Sender(outbox, target(smtp_server), idle_close=0.2)
    task = asyncio.create_task(sender.run())
    try:
        outbox.enqueue(message(1))
        sender.wake()
        await smtp_server.wait_for(1, within=5)
        await asyncio.sleep(0.5)  # idle: the connection is closed
        outbox.enqueue(message(2))
        sender.wake()
        await smtp_server.wait_for(2, within=5)
    finally:
        await sender.stop()
        await asyncio.wait_for(task, 5)
    assert smtp_server.connections == 2


async def test_forged_trap_mail_arrives_safe(smtp_server: SmtpServer) -> None:
    from netalert.mail.mailer import Mailer
    from netalert.mail.render import MailTemplates
    from tests.test_mail_render import FORGED, make_alert, make_notification

    outbox, sender, clock = make(smtp_server)
    mailer = Mailer(
        outbox, MailTemplates(), sender="netalert <alerts@example.org>", status_url="", clock=clock
    )
    alert = make_alert(
        device="sw1\r\nBcc: victim@evil.example", descr=FORGED, summary="<script>x</script>"
    )
    mailer.submit(make_notification(alert))
    await sender.run_once()
    [got] = smtp_server.received()
    assert got.rcpt_tos == ("noc@example.net",)  # the envelope is the route's, nothing else
    msg = got.parsed()
    assert msg["Bcc"] is None and "\n" not in msg["Subject"]
    html = msg.get_body(("html",))
    assert html is not None
    assert "<script>" not in html.get_content() and "&lt;script&gt;" in html.get_content()
    await sender.close()


async def test_a_mail_sent_while_the_disk_is_full_goes_out_once(
    smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """Issue #16: the delivery result's write is shed past the hold bound; the outbox row
    still says pending, yet the sender must not send the mail again."""
    clock = Clock()
    db = open_database(tmp_path)
    db.writer.max_held = 2
    outbox = Outbox(db, clock=clock)
    sender = Sender(outbox, target(smtp_server), clock=clock, rand=lambda: 0.0, retry_max=8.0)
    outbox.enqueue(message(1))
    pages = db.conn.execute("PRAGMA page_count").fetchone()[0]
    db.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from here
    outbox.enqueue(message(2, body="x" * 20_000))  # held: later writes queue behind it
    assert await sender.run_once() == 1
    for n in (3, 4):  # the result of m1 is shed
        outbox.enqueue(message(n, body="x" * 20_000))
    assert db.writer.shed_total == 2
    for _ in range(3):
        clock.now += 60
        await sender.run_once()
    assert ids(smtp_server) == ["<m1@example.org>"]
    db.conn.execute("PRAGMA max_page_count = 4294967294")
    assert db.writer.retry(force=True)
    clock.now += 60
    assert await sender.run_once() == 2
    assert ids(smtp_server) == ["<m1@example.org>", "<m3@example.org>", "<m4@example.org>"]
    assert outbox.entries() == []
    await sender.close()
