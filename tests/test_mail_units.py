"""Pure decisions of the mail stage (tables) and the outbox/mailer/canary bookkeeping."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from netalert.config.loader import load_config_text
from netalert.errors import ConfigError
from netalert.mail.bounds import MailLimits
from netalert.mail.canary import Canary, mail_path_down
from netalert.mail.classify import RetryClass, classify_smtp_error, failure_kind
from netalert.mail.errors import (
    MailAuthError,
    MailConnectionError,
    MailError,
    MailRefusedError,
    MailTimeoutError,
    MailTlsError,
)
from netalert.mail.mailer import Mailer
from netalert.mail.outbox import Outbox, OutboxEntry, RecipientResult, is_due, next_backoff
from netalert.mail.render import MailTemplates
from netalert.mail.stats import MailStats
from netalert.mail.wiring import build_mail_stage, status_url
from netalert.notify.model import Reason
from netalert.state.db import open_database
from tests.test_mail_render import T0, make_alert, make_notification

R, P = RetryClass.RETRY, RetryClass.PERMANENT


@pytest.mark.parametrize(
    ("exc", "retry", "kind"),
    [
        (aiosmtplib.SMTPConnectError("refused"), R, "connection"),
        (aiosmtplib.SMTPServerDisconnected("gone"), R, "connection"),
        (aiosmtplib.SMTPConnectTimeoutError("slow"), R, "timeout"),
        (aiosmtplib.SMTPReadTimeoutError("slow"), R, "timeout"),
        (TimeoutError(), R, "timeout"),
        (ConnectionResetError(), R, "connection"),
        (ssl.SSLCertVerificationError("bad cert"), R, "tls"),
        (aiosmtplib.SMTPResponseException(421, "closing"), R, "temporary"),
        (aiosmtplib.SMTPDataError(451, "later"), R, "temporary"),
        (aiosmtplib.SMTPSenderRefused(452, "full", "a@b"), R, "temporary"),
        (aiosmtplib.SMTPDataError(554, "spam"), P, "rejected"),
        (aiosmtplib.SMTPSenderRefused(553, "not yours", "a@b"), P, "rejected"),
        (aiosmtplib.SMTPAuthenticationError(535, "bad creds"), R, "auth"),
        (aiosmtplib.SMTPResponseException(530, "auth first"), R, "auth"),
        (aiosmtplib.SMTPException("The SMTP AUTH extension is not supported"), R, "auth"),
        (aiosmtplib.SMTPException("SMTP STARTTLS extension not supported by server."), R, "tls"),
        (aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server"), P, "other"),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(550, "no", "a@b")] * 2
            ),
            P,
            "rejected",
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [
                    aiosmtplib.SMTPRecipientRefused(550, "no", "a@b"),
                    aiosmtplib.SMTPRecipientRefused(451, "later", "c@d"),
                ]
            ),
            R,
            "rejected",
        ),
        (MailAuthError("x", code=535), R, "auth"),
        (MailTlsError("x"), R, "tls"),
        (MailTimeoutError("x"), R, "timeout"),
        (MailConnectionError("x"), R, "connection"),
        (MailRefusedError("x", code=550), P, "rejected"),
        (MailRefusedError("x", code=450), R, "temporary"),
        (RuntimeError("unexpected"), R, "other"),
    ],
)
def test_classify_smtp_error(exc: BaseException, retry: RetryClass, kind: str) -> None:
    assert classify_smtp_error(exc) is retry
    assert failure_kind(exc) == kind


def test_errors_are_also_the_stdlib_error_they_are() -> None:
    assert isinstance(MailConnectionError("x"), ConnectionError)
    assert isinstance(MailTlsError("x"), ConnectionError)
    assert isinstance(MailTimeoutError("x"), TimeoutError)
    assert all(
        issubclass(c, MailError)
        for c in (MailAuthError, MailConnectionError, MailTimeoutError, MailRefusedError)
    )


@pytest.mark.parametrize(
    ("attempts", "rand", "expected"),
    [(1, 0.0, 1.0), (2, 0.0, 2.0), (3, 0.0, 4.0), (6, 0.0, 32.0), (7, 0.0, 60.0),
     (1000, 0.0, 60.0), (1, 1.0, 0.8), (7, 1.0, 48.0), (7, 0.5, 54.0)],
)  # fmt: skip
def test_next_backoff_table(attempts: int, rand: float, expected: float) -> None:
    assert next_backoff(attempts, cap=60.0, jitter=0.2, rand=lambda: rand) == pytest.approx(
        expected
    )


def _entry(next_attempt: float) -> OutboxEntry:
    return OutboxEntry(1, "<x@y>", "a@b", ("c@d",), b"", "", 0.0, 0, next_attempt, "", False)


@pytest.mark.parametrize(("next_attempt", "due"), [(99.0, True), (100.0, True), (100.5, False)])
def test_is_due(next_attempt: float, due: bool) -> None:
    assert is_due(_entry(next_attempt), 100.0) is due


def test_mail_path_down_table() -> None:
    assert not mail_path_down(None, 1000.0, 60.0)
    assert not mail_path_down(950.0, 1000.0, 60.0)
    assert mail_path_down(900.0, 1000.0, 60.0)


def test_outbox_per_recipient_bookkeeping() -> None:
    outbox = Outbox(open_database(None), clock=lambda: T0)
    entry_id = outbox.enqueue_raw(
        b"x\r\n", sender="a@example.org", recipients=["b@x.net", "c@x.net", "b@x.net"]
    )
    [entry] = outbox.due(T0)
    assert entry.id == entry_id and entry.recipients == ("b@x.net", "c@x.net")
    left = outbox.record(
        entry,
        [RecipientResult("b@x.net", True), RecipientResult("c@x.net", False, False, 451, "busy")],
        error="busy",
        retry_at=T0 + 5,
    )
    assert not left
    assert outbox.due(T0) == [] and outbox.next_due() == T0 + 5
    [entry] = outbox.due(T0 + 5)
    assert entry.recipients == ("c@x.net",) and entry.attempts == 1 and entry.last_error == "busy"
    assert outbox.record(
        entry, [RecipientResult("c@x.net", False, True, 550, "550 gone")], error="", retry_at=0
    )
    assert outbox.pending() == 0 and [f.address for f in outbox.failures()] == ["c@x.net"]
    with pytest.raises(MailError, match="no recipient"):
        outbox.enqueue_raw(b"x", sender="a@example.org", recipients=[" "])


def test_mailer_threads_across_the_episode() -> None:
    outbox = Outbox(open_database(None), clock=lambda: T0)
    woken: list[int] = []
    mailer = Mailer(
        outbox,
        MailTemplates(),
        sender="netalert <alerts@example.org>",
        status_url="",
        on_enqueue=lambda: woken.append(1),
    )
    first = make_alert(fp="1" * 16)
    mailer.submit(make_notification(first))
    root = outbox.thread_root("core:device=core-sw1")
    assert root is not None
    # the first alert resolves and leaves; a later mail still replies to the first one
    later = make_alert(fp="2" * 16)
    later = type(later)(**{**{f: getattr(later, f) for f in later.__slots__}, "starts_at": T0 + 99})
    mailer.submit(make_notification(later, reason=Reason.REPEAT, created=T0 + 500))
    first_mail, repeat = outbox.entries()
    assert f"Message-ID: {root}".encode() in first_mail.data
    assert f"In-Reply-To: {root}".encode() in repeat.data
    assert woken == [1, 1]


async def test_mailer_off_loop_queues_a_bounded_mail_and_counts_what_it_left_out() -> None:
    outbox = Outbox(open_database(None), clock=lambda: T0)
    stats = MailStats()
    mailer = Mailer(
        outbox,
        MailTemplates(),
        sender="netalert <alerts@example.org>",
        status_url="",
        limits=MailLimits(max_alerts=2, max_bytes=16_384),
        stats=stats,
    )
    alerts = [make_alert(fp=f"{i:016x}", summary=f"alert-{i}") for i in range(5)]
    logged: list[str] = []

    def also(conn: object) -> None:
        logged.append("in the transaction")

    await mailer.submit_off_loop(make_notification(*alerts), also=also)
    (entry,) = outbox.entries()
    assert logged == ["in the transaction"]
    assert b"and 3 more: 3 firing, 0 resolved" in entry.data
    assert (stats.alerts_truncated, stats.clipped) == (3, 0)
    mailer.submit(make_notification(*alerts, reason=Reason.REPEAT, created=T0 + 60))
    assert stats.alerts_truncated == 6 and len(outbox.entries()) == 2


async def test_mailer_renders_small_groups_on_the_loop_and_big_ones_in_a_thread() -> None:
    # a thread hand-off per mail cost more CPU than rendering a one-alert mail
    outbox = Outbox(open_database(None), clock=lambda: T0)
    stats = MailStats()
    mailer = Mailer(
        outbox, MailTemplates(), sender="alerts@example.org", status_url="", stats=stats
    )
    mailer.on_loop_max_alerts = 2
    loop_thread = threading.get_ident()
    threads: list[int] = []
    render = mailer._render

    def spy(notification: Any, known: str | None) -> Any:
        threads.append(threading.get_ident())
        return render(notification, known)

    mailer._render = spy  # type: ignore[method-assign]
    alerts = [make_alert(fp=f"{i:016x}", summary=f"alert-{i}") for i in range(3)]
    await mailer.submit_off_loop(make_notification(alerts[0]))
    await mailer.submit_off_loop(make_notification(*alerts[:2], created=T0 + 1))
    await mailer.submit_off_loop(make_notification(*alerts, created=T0 + 2))
    assert threads[:2] == [loop_thread, loop_thread] and threads[2] != loop_thread
    assert stats.rendered == {"loop": 2, "thread": 1} and len(outbox.entries()) == 3
    mailer.on_loop_max_alerts = 0  # every mail in a thread
    await mailer.submit_off_loop(make_notification(alerts[0], created=T0 + 3))
    assert threads[3] != loop_thread and stats.rendered["thread"] == 2


async def test_canary_sends_one_at_a_time_and_raises_the_flag() -> None:
    now = [T0]
    outbox = Outbox(open_database(None), clock=lambda: now[0])
    stats = MailStats()
    canary = Canary(
        outbox,
        stats,
        sender="alerts@example.org",
        to=["canary@example.net"],
        interval=60.0,
        threshold=300.0,
        clock=lambda: now[0],
    )
    canary.tick()
    assert outbox.pending() == 1
    now[0] += 120
    canary.tick()  # the first canary still waits: no second one
    assert outbox.pending() == 1 and not stats.canary_failing
    stats.failure("connection", "down", T0)
    now[0] = T0 + 301
    canary.tick()
    assert stats.canary_failing
    stats.success(now[0])
    canary.tick()
    assert not stats.canary_failing


def test_build_mail_stage_from_config(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "subject.txt.j2").write_text("custom {{ rule }}")
    cfg = load_config_text(
        """
[agent]
http = "0.0.0.0:9162"
[smtp]
templates_dir = "tpl"
canary_interval = "15m"
canary_to = ["canary@example.net"]
[smtp.fallback]
host = "relay.example.net"
""",
        source=tmp_path / "config.toml",
    )
    stage = build_mail_stage(cfg, open_database(None), base_dir=tmp_path)
    assert status_url(cfg) == "http://localhost:9162/"
    assert stage.canary is not None and stage.mailer.status_url == "http://localhost:9162/"
    stage.mailer.submit(make_notification(make_alert()))
    [entry] = stage.outbox.entries()
    assert entry.subject == "custom LinkDown"


def test_config_rejects_canary_without_recipients() -> None:
    with pytest.raises(ConfigError, match="canary_to is empty"):
        load_config_text('[smtp]\ncanary_interval = "5m"\n')
