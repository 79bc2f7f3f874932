"""Rendering: default templates, user overrides, header safety, threading ids."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest

from netalert.alerts.model import Alert, AlertState
from netalert.mail.errors import MailTemplateError
from netalert.mail.headers import body_text, episode_root, header_text, thread_ids
from netalert.mail.render import MailTemplates, render_notification, render_test_message
from netalert.notify.model import Notification, Reason
from netalert.snmp.types import SnmpType, VarBind

T0 = 1_790_000_000.0
SENDER = "netalert <alerts@example.org>"
FORGED = b"Gi0/1\r\nBcc: victim@evil.example\r\n<script>alert(1)</script>"


def make_alert(
    *,
    rule: str = "LinkDown",
    device: str = "core-sw1",
    severity: str = "warning",
    fp: str = "00aa11bb22cc33dd",
    ended: float | None = None,
    descr: bytes = b"GigabitEthernet0/1",
    summary: str = "link down",
) -> Alert:
    varbinds = (
        VarBind("1.3.6.1.2.1.2.2.1.1.3", SnmpType.INTEGER, 3, "IF-MIB::ifIndex", "3"),
        VarBind("1.3.6.1.2.1.2.2.1.2.3", SnmpType.OCTET_STRING, descr, "IF-MIB::ifDescr", "3"),
        VarBind("1.3.6.1.2.1.2.2.1.8.3", SnmpType.INTEGER, 2, "IF-MIB::ifOperStatus", "3", "down"),
    )
    return Alert(
        fingerprint=fp,
        rule=rule,
        severity=severity,
        device=device,
        labels={"rule": rule, "severity": severity, "device": device, "ifIndex": "3"},
        annotations={"summary": summary},
        state=AlertState.RESOLVED if ended else AlertState.FIRING,
        starts_at=T0,
        ends_at=ended,
        updated_at=T0,
        value="down",
        count=1,
        flapping=False,
        silenced=False,
        source="trap",
        varbinds=varbinds,
    )


def make_notification(
    *alerts: Alert, reason: Reason = Reason.NEW, created: float = T0 + 30
) -> Notification:
    return Notification(
        route="core",
        recipients=("noc@example.net",),
        group_key="core:device=core-sw1",
        group_labels={"device": alerts[0].device},
        alerts=alerts,
        reason=reason,
        created=created,
    )


def render(n: Notification, templates: MailTemplates | None = None, **kw: str) -> EmailMessage:
    return render_notification(
        n,
        templates=templates or MailTemplates(),
        sender=SENDER,
        status_url="https://netalert.example.org/",
        **kw,
    )


def reparse(msg: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def test_default_mail_says_what_where_since_and_varbinds() -> None:
    msg = reparse(render(make_notification(make_alert())))
    assert msg["Subject"] == "[FIRING] warning LinkDown on core-sw1"
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Date"] and msg["Message-ID"] and msg["Auto-Submitted"] == "auto-generated"
    assert msg["In-Reply-To"] is None
    text, html = parts(msg)
    for body in (text, html):
        assert "core-sw1" in body and "link down" in body
        assert "2026-09-21 14:13:20 UTC" in body  # since
        assert "IF-MIB::ifOperStatus.3" in body and "down(2)" in body
        assert "IF-MIB::ifDescr.3" in body and "GigabitEthernet0/1" in body
        assert '"GigabitEthernet0/1"' not in body and "&#34;" not in body  # text, unquoted
        assert "ifIndex=3" in body
        assert "https://netalert.example.org/" in body


def test_resolved_mail_replies_to_the_firing_one() -> None:
    firing = reparse(render(make_notification(make_alert())))
    repeat = reparse(
        render(make_notification(make_alert(), reason=Reason.REPEAT, created=T0 + 4 * 3600))
    )
    resolved = reparse(
        render(
            make_notification(make_alert(ended=T0 + 600), reason=Reason.RESOLVED, created=T0 + 630)
        )
    )
    assert resolved["Subject"] == "[RESOLVED] warning LinkDown on core-sw1"
    root = firing["Message-ID"]
    for reply in (repeat, resolved):
        assert reply["In-Reply-To"] == root
        assert reply["References"] == root
        assert reply["Message-ID"] != root
    assert repeat["Message-ID"] != resolved["Message-ID"]
    # stable: the same notification renders the same ids
    again = reparse(render(make_notification(make_alert())))
    assert again["Message-ID"] == root


def test_known_root_wins_for_replies() -> None:
    n = make_notification(make_alert(), reason=Reason.CHANGED)
    msg = render(n, known_root="<first@example.org>")
    assert msg["In-Reply-To"] == "<first@example.org>"


def test_thread_ids_table() -> None:
    base = {
        "group_key": "g",
        "episode_start": T0,
        "created": T0,
        "alert_keys": ["a"],
        "domain": "d",
    }
    new = thread_ids(reason="new", **base)  # type: ignore[arg-type]
    assert new.message_id == episode_root("g", T0, "d") and new.in_reply_to is None
    rep = thread_ids(reason="repeat", **base)  # type: ignore[arg-type]
    assert rep.in_reply_to == new.message_id and rep.references == (new.message_id,)
    other_group = thread_ids(reason="new", **{**base, "group_key": "h"})  # type: ignore[arg-type]
    assert other_group.message_id != new.message_id
    assert all(i.startswith("<na.") and i.endswith("@d>") for i in (new.message_id, rep.message_id))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain", "plain"),
        ("a\r\nBcc: x@y", "a Bcc: x@y"),
        ("tab\there\x00nul\x1b[31m", "tab here nul [31m"),
        ("bidi\u202eevil", "bidievil"),
        ("line\u2028sep", "line sep"),
        (b"bytes\xff", "62:79:74:65:73:ff"),  # not UTF-8: hex, as netalert.present reads it
        ("  many   spaces  ", "many spaces"),
    ],
)
def test_header_text_table(raw: str | bytes, expected: str) -> None:
    assert header_text(raw) == expected


def test_header_text_limits_length_and_body_text_keeps_lines() -> None:
    assert len(header_text("x" * 500, limit=50)) == 50
    assert body_text("a\r\nb\rc\x1b[2Jd\u202e") == "a\nb\nc [2Jd"


def test_forged_trap_cannot_inject_headers_or_html() -> None:
    alert = make_alert(
        device="sw\r\nBcc: victim@evil.example",
        descr=FORGED,
        summary="<script>alert(1)</script>\r\nBcc: victim@evil.example",
    )
    raw = render(make_notification(alert)).as_bytes()
    head, _, _ = raw.partition(b"\r\n\r\n")
    assert not any(line.lower().startswith(b"bcc:") for line in head.split(b"\r\n"))
    msg = reparse(render(make_notification(alert)))
    assert msg["Bcc"] is None and msg["To"] == "noc@example.net"
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]
    text, html = parts(msg)
    assert "<script>" not in html and "&lt;script&gt;" in html
    # one-line fields stay one line in the text body too
    assert not any(line.startswith("Bcc:") for line in text.splitlines())


def test_non_ascii_device_becomes_encoded_words() -> None:
    msg = render(make_notification(make_alert(device="zürich-sw1")))
    raw = msg.as_bytes()
    head = raw.partition(b"\r\n\r\n")[0]
    head.decode("ascii")  # headers are pure ASCII on the wire
    assert b"=?utf-8?" in head
    assert reparse(msg)["Subject"] == "[FIRING] warning LinkDown on zürich-sw1"


def test_group_subject_counts_and_orders_by_severity() -> None:
    a = make_alert(rule="LinkDown", severity="warning", fp="1" * 16)
    b = make_alert(rule="InterfaceDown", severity="critical", fp="2" * 16)
    msg = reparse(render(make_notification(a, b)))
    assert msg["Subject"] == "[FIRING:2] critical InterfaceDown (+1 more) on core-sw1"
    text, _ = parts(msg)
    assert text.index("InterfaceDown on core-sw1") < text.index("LinkDown on core-sw1")


def test_subject_names_the_most_severe_then_the_newest_change() -> None:
    disks = [
        make_alert(rule="DiskFull", severity="critical", fp=f"{n}" * 16, summary=f"disk {n}")
        for n in (1, 2)
    ]
    new = replace(
        make_alert(rule="DeviceUnreachable", severity="critical", fp="3" * 16),
        starts_at=T0 + 20,
    )
    msg = reparse(render(make_notification(*disks, new, reason=Reason.CHANGED)))
    assert msg["Subject"] == "[FIRING:3] critical DeviceUnreachable (+1 more) on core-sw1"
    text, _ = parts(msg)
    assert text.index("DeviceUnreachable on") < text.index("DiskFull on")
    # a newer warning does not go before an older critical alert
    minor = replace(make_alert(rule="LinkDown", fp="4" * 16), starts_at=T0 + 25)
    msg = reparse(render(make_notification(disks[0], minor, reason=Reason.CHANGED)))
    assert msg["Subject"] == "[FIRING:2] critical DiskFull (+1 more) on core-sw1"


def test_subject_counts_firing_alerts_only() -> None:
    firing = make_alert(rule="DiskFull", severity="critical", fp="1" * 16)
    gone = [
        make_alert(rule="DiskFull", severity="critical", fp=f"{n}" * 16, ended=T0 + 20)
        for n in (2, 3)
    ]
    msg = reparse(render(make_notification(*gone, firing, reason=Reason.CHANGED)))
    assert msg["Subject"] == "[FIRING] critical DiskFull on core-sw1 (2 resolved)"
    assert parts(msg)[0].startswith("FIRING: 1 firing, 2 resolved")
    done = reparse(render(make_notification(*gone, reason=Reason.RESOLVED)))
    assert done["Subject"] == "[RESOLVED:2] critical DiskFull on core-sw1"
    assert done["X-Netalert-State"] == "resolved"


def test_resolved_alert_shows_its_value_when_resolved_and_no_description() -> None:
    alert = replace(
        make_alert(ended=T0 + 600, summary="resolved after 10m; was: Gi0/1 is down"),
        value="up",
        annotations={"summary": "resolved after 10m; was: Gi0/1 is down", "description": "X"},
    )
    text, html = parts(reparse(render(make_notification(alert, reason=Reason.RESOLVED))))
    text = text.replace("\r\n", "\n")
    assert "  resolved after 10m; was: Gi0/1 is down\n" in text
    assert "  Value:    up (when resolved)\n" in text and "up (when resolved)" in html
    assert "\n  X\n" not in text and '<td colspan="2" style="white-space: pre-wrap;">X' not in html
    assert "Since:    2026-09-21 14:13:20 UTC (for 10m)" in text


def test_user_templates_override_and_fall_back(tmp_path: Path) -> None:
    (tmp_path / "subject.txt.j2").write_text("ALERT {{ rule }} @ {{ device }}\n")
    (tmp_path / "body.html.j2").write_text("<p>{{ alerts[0].summary }}</p>{{ no_such.attr }}")
    templates = MailTemplates(tmp_path)
    msg = reparse(render(make_notification(make_alert(summary="<b>x</b>")), templates))
    assert msg["Subject"] == "ALERT LinkDown @ core-sw1"
    text, html = parts(msg)
    # the failing HTML override fell back to the default; text was never overridden
    assert "Trap varbinds" in text and "IF-MIB::ifDescr.3" in html and "&lt;b&gt;" in html


def test_user_template_that_renders_is_autoescaped(tmp_path: Path) -> None:
    (tmp_path / "body.html.j2").write_text("<p>{{ alerts[0].summary }}</p>")
    msg = reparse(
        render(make_notification(make_alert(summary="<b>x</b>")), MailTemplates(tmp_path))
    )
    assert parts(msg)[1].strip() == "<p>&lt;b&gt;x&lt;/b&gt;</p>"


def test_broken_user_template_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "body.txt.j2").write_text("line\n{% for x in %}\n")
    with pytest.raises(MailTemplateError, match=r"body\.txt\.j2:2: "):
        MailTemplates(tmp_path)
    with pytest.raises(MailTemplateError, match="not a folder"):
        MailTemplates(tmp_path / "missing")


def test_test_message() -> None:
    msg = render_test_message(SENDER, ["a@example.net"], now=T0)
    assert msg["Subject"] == "[TEST] netalert mail test"
    assert "a@example.net" in msg.get_content()


def test_ascii_fast_path_cleans_like_the_general_path() -> None:
    # a non-ASCII character sends the same text through the character-by-character path
    samples = ["".join(map(chr, range(128)))] + [f"a{chr(c)}b" for c in range(128)]
    samples.append("x\x1b[31m\r\nBcc: y\x00\t z\x7f")
    for text in samples:
        assert "é" + body_text(text) == body_text("é" + text), repr(text)
        inner = f"a{text}b"
        assert header_text(f"é{inner}é", limit=999) == f"é{header_text(inner, limit=999)}é"


def test_printable_fast_path_cleans_like_the_general_path() -> None:
    # a control character (made a space, then stripped) sends the same text through the
    # general path; every code point of the first planes in between printable neighbours
    samples = [f"a{chr(c)}b" for c in (*range(0x20, 0x3100), 0xFEFF, 0x1F600, 0xE0001)]
    samples += [" lead", "trail ", " both ", "one space", "two  spaces", "", " "]
    for inner in samples:
        assert body_text(inner + "\x00") == body_text(inner) + " ", repr(inner)
        assert header_text(f"\x01{inner}\x01", limit=999) == header_text(inner, limit=999), repr(
            inner
        )


def test_rule_header_names_every_rule_once_for_mail_filters() -> None:
    a = make_alert(rule="LinkDown", severity="warning", fp="1" * 16)
    b = make_alert(rule="InterfaceDown", severity="critical", fp="2" * 16)
    c = make_alert(rule="LinkDown", severity="warning", fp="3" * 16)
    msg = reparse(render(make_notification(a, b, c)))
    # one header per rule, each the exact rule name: Sieve's header test and procmail see each
    assert msg.get_all("X-Netalert-Rule") == ["InterfaceDown", "LinkDown"]
    single = reparse(render(make_notification(a)))
    assert single.get_all("X-Netalert-Rule") == ["LinkDown"]
