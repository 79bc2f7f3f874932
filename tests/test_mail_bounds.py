"""Bounded group mails: at most max_alerts_per_mail listed, the rest counted, at most
max_mail_bytes in all (pure rendering, no I/O)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from netalert.alerts.model import Alert
from netalert.mail.bounds import CUT_MARK, MailLimits, select_alerts
from netalert.mail.render import MailTemplates, format_varbind_value, render_mail
from netalert.snmp.types import SnmpType, VarBind
from tests.test_mail_render import SENDER, T0, make_alert, make_notification, parts, reparse


def _group(firing: int, resolved: int, *, critical_every: int = 0) -> list[Alert]:
    out = []
    for i in range(firing + resolved):
        severity = "critical" if critical_every and i % critical_every == 0 else "warning"
        alert = make_alert(
            fp=f"{i:016x}",
            summary=f"alert-{i}",
            severity=severity,
            ended=T0 + 10 if i >= firing else None,
        )
        out.append(dataclasses.replace(alert, starts_at=T0 + i))
    return out


def _listed(body: str) -> list[str]:
    return re.findall(r"alert-(\d+)\b", body)


def test_select_keeps_the_most_important_and_counts_the_rest() -> None:
    alerts = _group(1_100, 100, critical_every=100)
    chosen = select_alerts(alerts, 50)
    assert len(chosen.shown) == 50
    assert (chosen.more, chosen.more_firing, chosen.more_resolved) == (1_150, 1_050, 100)
    assert (chosen.firing, chosen.resolved) == (1_100, 100)
    # firing before resolved, critical first, then the oldest
    assert [a.severity for a in chosen.shown[:11]] == ["critical"] * 11
    assert all(a.ends_at is None for a in chosen.shown)
    assert chosen.more_line() == "and 1,150 more: 1,050 firing, 100 resolved"
    small = select_alerts(alerts[:3], 50)
    assert (len(small.shown), small.more, small.more_line()) == (3, 0, "")


def test_group_mail_lists_at_most_max_alerts_and_counts_the_rest() -> None:
    alerts = _group(1_100, 100)
    rendered = render_mail(
        make_notification(*alerts),
        templates=MailTemplates(),
        sender=SENDER,
        status_url="",
        limits=MailLimits(max_alerts=50, max_bytes=262_144),
    )
    assert rendered.omitted == 1_150
    msg = reparse(rendered.message)
    # the subject counts firing alerts only, and says how many resolved with them
    assert msg["Subject"] == "[FIRING:1100] warning LinkDown on core-sw1 (100 resolved)"
    text, html = parts(msg)
    for body in (text, html):
        assert len(set(_listed(body))) == 50
        assert "and 1,150 more: 1,050 firing, 100 resolved" in body
        assert "1100 firing, 100 resolved" in body  # the headline counts the whole group
    assert len(rendered.message.as_bytes()) < 262_144


@pytest.mark.parametrize("max_bytes", [262_144, 65_536, 16_384])
def test_group_mail_fits_max_bytes_with_huge_varbinds(max_bytes: int) -> None:
    big = tuple(
        VarBind(f"1.3.6.1.4.1.9.9.{j}.0", SnmpType.OCTET_STRING, b"<&>" * 2_000, f"X::v{j}", "0")
        for j in range(40)
    )
    alerts = [
        dataclasses.replace(
            make_alert(fp=f"{i:016x}", summary=f"alert-{i}"),
            varbinds=big,
            annotations={"summary": f"alert-{i}", "description": "d" * 50_000},
        )
        for i in range(60)
    ]
    rendered = render_mail(
        make_notification(*alerts),
        templates=MailTemplates(),
        sender=SENDER,
        status_url="",
        limits=MailLimits(max_alerts=50, max_bytes=max_bytes),
    )
    size = len(rendered.message.as_bytes())
    assert size <= max_bytes, size
    assert rendered.clipped
    text, html = parts(reparse(rendered.message))
    listed = len(set(_listed(text)))
    # the default 256 KB lists all 50; smaller mails list fewer alerts, never none
    assert (listed == 50) if max_bytes == 262_144 else (0 < listed < 50), listed
    more = 60 - listed
    assert rendered.omitted == more
    assert f"and {more} more: {more} firing, 0 resolved" in text
    assert f"and {more} more: {more} firing, 0 resolved" in html
    assert "[truncated]" in text and "[truncated]" in html
    assert "more varbinds [truncated]" in text
    assert "<&>" not in html  # cut values are still escaped


def test_small_group_mail_is_not_clipped() -> None:
    rendered = render_mail(
        make_notification(make_alert()),
        templates=MailTemplates(),
        sender=SENDER,
        status_url="",
        limits=MailLimits(),
    )
    assert (rendered.omitted, rendered.clipped) == (0, False)
    text, _ = parts(reparse(rendered.message))
    assert "[truncated]" not in text and " more: " not in text
    assert MailLimits() == MailLimits(max_alerts=50, max_bytes=262_144)


def test_long_values_are_cut_before_formatting_and_marked() -> None:
    text = VarBind("1.3.6.1.4.1.9.1", SnmpType.OCTET_STRING, "é".encode() * 50_000, "X::t", "0")
    cut = format_varbind_value(text, 101)  # the cut falls inside a two-byte character
    assert cut.startswith("éé") and cut.endswith(CUT_MARK) and len(cut) <= 101
    binary = VarBind("1.3.6.1.4.1.9.2", SnmpType.OCTET_STRING, b"\x00\x01" * 50_000, "X::b", "0")
    assert (
        format_varbind_value(binary, 60).startswith("00:01:00:01")
        and len(format_varbind_value(binary, 60)) <= 60
    )
    short = VarBind("1.3.6.1.4.1.9.3", SnmpType.OCTET_STRING, b"up", "X::s", "0")
    assert format_varbind_value(short, 60) == format_varbind_value(short) == "up"
