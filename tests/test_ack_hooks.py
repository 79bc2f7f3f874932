"""[ack] hooks in existing stages: the mail's reply headers and ack lines, the
dispatcher's repeat, and a hand resolve of a trap alert."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import time
from datetime import timedelta
from pathlib import Path

from netalert.ack.config import AckConfig
from netalert.ack.issuer import TokenIssuer
from netalert.ack.store import Ack, AckStore, is_acked
from netalert.ack.token import mac, parse_token
from netalert.alerts.model import AlertState
from netalert.config.models import Route
from netalert.mail.mailer import Mailer
from netalert.mail.outbox import Outbox
from netalert.mail.render import MailTemplates
from netalert.notify.dispatcher import Dispatcher
from netalert.notify.model import Reason
from netalert.notify.nflog import NotificationLog
from netalert.state.db import open_database
from tests.test_mail_render import T0, make_alert, make_notification

KEY = b"s" * 32
CONFIG = AckConfig.model_validate(
    {
        "imap": {"host": "imap.example.org", "username": "u"},
        "reply_to": "alerts+{token}@example.org",
        "operators": ["oncall@example.org"],
    }
)


def test_alert_mails_carry_a_signed_reply_token_and_later_mails_the_ack() -> None:
    db = open_database(None)
    store = AckStore(db)
    outbox = Outbox(db, clock=lambda: T0)
    mailer = Mailer(outbox, MailTemplates(), sender="netalert <alerts@example.org>", status_url="")
    mailer.ack = TokenIssuer(CONFIG, KEY, store=store, clock=lambda: T0)
    a, b = make_alert(fp="1" * 16), make_alert(fp="2" * 16, rule="CpuHigh")
    mailer.submit(make_notification(a, b))
    [entry] = outbox.entries()
    first = email.message_from_bytes(entry.data, policy=email.policy.default)
    token = str(first["Reply-To"]).removeprefix("alerts+").removesuffix("@example.org")
    assert str(first["References"]) == f"<ack.{token}@example.org>"
    assert first["In-Reply-To"] is None and str(first["Auto-Submitted"]) == "auto-generated"
    assert outbox.thread_root("core:device=core-sw1") == str(first["Message-ID"])
    parsed = parse_token(token)
    assert parsed is not None and parsed.expires == int(T0 + 7 * 86400)
    issued = asyncio.run(store.token(parsed.nid))
    assert issued is not None and issued.message_id == str(first["Message-ID"])
    assert sorted(x.fingerprint for x in issued.alerts) == ["1" * 16, "2" * 16]
    assert parsed.mac == mac(KEY, parsed.nid, parsed.expires, ["1" * 16, "2" * 16])
    assert "Acked:" not in entry.data.decode()

    with db.transaction() as conn:
        store.put_ack(conn, Ack("1" * 16, T0, "oncall@example.org", T0 + 60, "on it", "mail"))
    mailer.submit(make_notification(a, b, reason=Reason.CHANGED, created=T0 + 400))
    second = email.message_from_bytes(outbox.entries()[1].data, policy=email.policy.default)
    root = str(first["Message-ID"])
    assert str(second["In-Reply-To"]) == root
    refs = str(second["References"]).split()
    assert (
        refs[0] == root and refs[1].startswith("<ack.") and refs[1] != f"<ack.{token}@example.org>"
    )
    text = second.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = second.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert text.count("Acked:    acked by oncall@example.org") == 1 and "via mail: on it" in text
    assert "acked by oncall@example.org" in html


def test_resolved_only_mails_carry_no_token() -> None:
    db = open_database(None)
    outbox = Outbox(db, clock=lambda: T0)
    mailer = Mailer(outbox, MailTemplates(), sender="netalert <alerts@example.org>", status_url="")
    mailer.ack = TokenIssuer(CONFIG, KEY, store=AckStore(db))
    mailer.submit(make_notification(make_alert(ended=T0 + 60), reason=Reason.RESOLVED))
    [entry] = outbox.entries()
    assert b"\r\nReply-To:" not in entry.data and b"<ack." not in entry.data


def test_an_acknowledged_group_does_not_repeat_until_unacked(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    store = AckStore(db)
    route = Route(
        to=["noc@example.org"],
        group_by=["device"],
        group_wait=timedelta(seconds=0),
        group_interval=timedelta(seconds=60),
        repeat_interval=timedelta(seconds=300),
    )
    d = Dispatcher(
        [route],
        nflog=NotificationLog(db),
        acked=lambda alerts: all(is_acked(x, store.acks()) for x in alerts),
    )

    def flush(now: float) -> list[Reason]:
        out = d.flush(now)
        for n in out:
            with db.transaction() as conn:
                d.sent(conn, n)
        return [n.reason for n in out]

    a = make_alert(fp="1" * 16)
    d.update(a, T0)
    assert flush(T0) == [Reason.NEW]
    assert flush(T0 + 300) == [Reason.REPEAT]
    with db.transaction() as conn:
        store.put_ack(conn, Ack(a.fingerprint, a.starts_at, "ann", T0, "", "cli"))
    assert [flush(T0 + 300 + 60 * k) for k in range(1, 12)] == [[]] * 11  # no repeat
    b = make_alert(fp="2" * 16, rule="CpuHigh")  # a new alert of the group is still told
    d.update(b, T0 + 1000)
    assert flush(T0 + 1020) == [Reason.CHANGED]
    with db.transaction() as conn:
        store.put_ack(conn, Ack(b.fingerprint, b.starts_at, "ann", T0, "", "cli"))
    assert [flush(T0 + 1020 + 60 * k) for k in range(1, 12)] == [[]] * 11
    with db.transaction() as conn:
        store.delete_ack(conn, b.fingerprint)
    assert flush(T0 + 1020 + 60 * 12) == [Reason.REPEAT]  # unacked: repeats again
    # an ack of an earlier episode does not count
    refired = dataclasses.replace(a, starts_at=T0 + 5000)
    assert not is_acked(refired, store.acks())
    assert not is_acked(dataclasses.replace(a, state=AlertState.RESOLVED), store.acks())


def test_prune_drops_expired_tokens_and_acks_of_ended_episodes(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    store = AckStore(db)
    issuer = TokenIssuer(CONFIG, KEY, clock=lambda: T0)
    old = issuer.issue((make_alert(fp="1" * 16),), "example.org")
    assert old is not None
    with db.transaction() as conn:
        old.record(conn, "<m@x>", "s", T0)
        store.mark_used(conn, old.nid, "ack", T0)
        store.put_ack(conn, Ack("1" * 16, T0, "ann", T0, "", "cli"))
        store.put_ack(conn, Ack("2" * 16, T0, "ann", T0, "", "cli"))
    now = time.time()
    assert asyncio.run(store.prune(now, {"2" * 16: T0})) == 3
    assert asyncio.run(store.token(old.nid)) is None
    assert not asyncio.run(store.used(old.nid, "ack"))
    assert list(store.acks()) == ["2" * 16]


def test_resolve_by_hand_only_for_trap_alerts_without_a_clear_trap() -> None:
    from tests.test_rules_engine import LINK_DOWN, kinds, make, trap

    no_clear = LINK_DOWN.replace('clear_trap = "IF-MIB::linkUp"\n', "")
    engine = make(no_clear)
    [fired] = engine.on_trap(trap("linkDown", 3, 0), 0)
    assert engine.resolvable_by_hand(fired.fingerprint)
    [resolved] = engine.resolve_by_hand(fired.fingerprint, 60, by="oncall@example.org")
    assert kinds([resolved]) == ["resolved:sw1:LinkDown"]
    assert resolved.value == "resolved by oncall@example.org"
    assert not engine.resolvable_by_hand(fired.fingerprint)  # resolved now
    assert engine.resolve_by_hand(fired.fingerprint, 61, by="x") == []

    with_clear = make(LINK_DOWN)  # a linkUp ends it: not by hand
    [other] = with_clear.on_trap(trap("linkDown", 3, 0), 0)
    assert not with_clear.resolvable_by_hand(other.fingerprint)
    assert with_clear.resolve_by_hand(other.fingerprint, 60, by="x") == []
    assert not engine.resolvable_by_hand("0" * 16)
