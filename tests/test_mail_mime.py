"""The fast mail writer (mail/mime.py) against the email package: the same bytes.

Each case builds the mail twice, as a :class:`Draft` and as an
``EmailMessage(policy=email.policy.SMTP)`` with the same calls, gives the
package the boundary the draft chose, and compares the flattened bytes.
"""

from __future__ import annotations

import email
import email.policy
from email import quoprimime
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netalert.mail.bounds import MailLimits
from netalert.mail.mime import _ONE_ID, Draft, _qp_line
from netalert.mail.render import MailTemplates, render_mail
from netalert.notify.model import Reason
from tests.test_mail_render import FORGED, SENDER, T0, make_alert, make_notification

HEADERS = [
    ("Subject", "[FIRING] warning LinkDown on core-sw1"),
    ("From", SENDER),
    ("To", "noc@example.net, ops@example.net"),
    ("Date", "Mon, 21 Sep 2026 14:13:20 +0000"),
    ("Message-ID", "<na.0123456789abcdef01234567@example.org>"),
    ("Auto-Submitted", "auto-generated"),
    ("X-Netalert-State", "firing"),
]


def both(headers: list[tuple[str, str]], text: str, html: str | None) -> tuple[bytes, bytes]:
    """(the draft's bytes, the package's bytes with the draft's boundary)."""
    draft = Draft()
    msg = EmailMessage(policy=email.policy.SMTP)
    for name, value in headers:
        draft[name] = value
        msg[name] = value
    draft.set_content(text)
    msg.set_content(text)
    if html is not None:
        draft.add_alternative(html, subtype="html")
        msg.add_alternative(html, subtype="html")
    data = draft.as_bytes()
    if html is not None:
        boundary = email.message_from_bytes(data, policy=email.policy.SMTP).get_boundary()
        assert boundary is not None
        msg.set_boundary(boundary)
    return data, msg.as_bytes()


TEXT = "FIRING: 1 firing\n\n  Value:    down\n"
HTML = "<p><strong>FIRING</strong>: 1 firing</p>\n"


@pytest.mark.parametrize(
    "header",
    [
        ("Subject", "[FIRING:2] critical LinkDown (+1 more) on core-sw1"),
        ("Subject", "[FIRING] warning Lien coupé sur cœur-sw1"),  # RFC 2047 by the package
        ("Subject", "x" * 120),  # folded by the package
        ("Subject", "=?utf-8?q?looks_encoded?="),  # decoded, then encoded again
        ("Subject", "two  spaces"),
        ("Subject", "tab\there"),
        ("Subject", ""),
        ("X-Netalert-Device", "Gi0/1 Bcc: victim@evil.example <script>"),
        ("X-Netalert-Rule", 'rule (with) "quotes" and ; , <a@b>'),
        ("In-Reply-To", "<na.0123456789abcdef01234567@example.org>"),
        ("References", "<na.0123456789abcdef01234567@a-very-long-domain.example.org.invalid>"),
        ("From", '"net, alert" <alerts@example.org>'),
        ("To", "a@example.org, b@example.org, c@example.org, d@example.org, e@example.org"),
        ("Message-ID", "<na.0123@netalert.invalid>"),
        ("Message-ID", "<na.0123@->"),
        ("Message-ID", "<a@b> <c@d>"),
        ("Message-ID", '<"odd id"@example.org>'),
        ("Date", "Fri, 21 Sep 2026 14:13:20 +0000"),  # the package corrects the weekday
    ],
)
def test_each_header_as_the_package_writes_it(header: tuple[str, str]) -> None:
    headers = [h for h in HEADERS if h[0] != header[0]] + [header]
    data, expected = both(headers, TEXT, HTML)
    assert data == expected


def test_a_second_subject_is_refused_like_the_package_does() -> None:
    draft = Draft()
    draft["Subject"] = "one"
    with pytest.raises(ValueError, match="at most 1 Subject"):
        draft["Subject"] = "two"


@pytest.mark.parametrize(
    ("text", "html"),
    [
        (TEXT, HTML),
        ("", ""),
        ("no newline at the end", "<p>x</p>"),
        ("ünïcödé body\n", "<p>ünïcödé</p>\n"),  # 8bit
        ("long " * 40 + "\n", "<td>" + "x" * 300 + "</td>\n"),  # quoted-printable
        ("ü" * 200 + "\n", "€" * 300),  # long non-ASCII lines: base64
        ("a\r\nb\rc\n\n\n", "<br>\r\n"),
        ("--===============0000000000000000000==\n", HTML),
    ],
)
def test_bodies_encoded_as_the_package_encodes_them(text: str, html: str) -> None:
    data, expected = both(HEADERS, text, html)
    assert data == expected


def test_a_single_part_goes_through_the_package() -> None:
    data, expected = both(HEADERS, TEXT, None)
    assert data == expected


def test_a_header_with_a_line_break_is_refused_like_the_package_does() -> None:
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        Draft()["Subject"] = "a\r\nBcc: victim@evil.example"


@pytest.mark.parametrize("value", ["\n", "x\n", "x\r", "\r\n"])
def test_a_lone_trailing_line_break_is_refused_where_the_package_is_lenient(value: str) -> None:
    # EmailMessage takes "x\n" and writes "Subject: x\n\r\n", which a reader takes as the
    # end of the header block (every later header becomes body); the draft refuses it.
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        Draft()["Subject"] = value


_LINE = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF, exclude_categories=["Cs"]))


@settings(max_examples=300, deadline=None)
@given(
    subject=_LINE.filter(lambda s: not any(c in s for c in "\r\n\x0b\x0c\x1c\x1d\x1e\x85")),
    device=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=90),
    text=st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF, exclude_categories=["Cs"])),
    html=st.text(st.characters(min_codepoint=1, max_codepoint=0x10FF, exclude_categories=["Cs"])),
)
def test_any_header_and_body(subject: str, device: str, text: str, html: str) -> None:
    headers = [("Subject", subject), *HEADERS[1:], ("X-Netalert-Device", device)]
    data, expected = both(headers, text, html)
    assert data == expected


@pytest.mark.parametrize("descr", [b"Gi0/1", FORGED, "Lien coupé".encode(), b"\xff\xfe" * 40])
def test_rendered_mails_are_the_packages_bytes(descr: bytes) -> None:
    alerts = [make_alert(fp=f"{i:016x}", descr=descr, summary=f"alert {i}") for i in range(3)]
    for notification in (
        make_notification(*alerts),
        make_notification(*alerts, reason=Reason.REPEAT, created=T0 + 600),
    ):
        rendered = render_mail(
            notification,
            templates=MailTemplates(),
            sender=SENDER,
            status_url="https://netalert.example.org/",
            limits=MailLimits(max_alerts=2),
        )
        assert rendered.data == rendered.message.as_bytes()
        parsed = email.message_from_bytes(rendered.data, policy=email.policy.SMTP)
        assert parsed["Message-ID"] == rendered.draft.get("Message-ID")
        assert parsed.get_body(("plain",)) is not None


# Lines around the 78-character width, mostly ASCII with what quoted-printable escapes
# ("=", white space at a line's end, non-ASCII, controls that split a line in str but
# not in bytes): bodies of fewer and of more lines than the encoder looks at to choose.
_QP_LINE = st.lists(
    st.sampled_from(["word ", "=", " ", "\t", "x" * 20, "y" * 70, "é", "\x85", "\x0c", "€"]),
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_QP_LINE, max_size=25), end=st.sampled_from(["", "\n", "\r\n", "  \n"]))
def test_long_line_bodies_encoded_as_the_package_encodes_them(lines: list[str], end: str) -> None:
    text = "\n".join(lines) + end
    data, expected = both(HEADERS, text, text.replace("word", "<b>word</b>"))
    assert data == expected


@settings(max_examples=500, deadline=None)
@given(st.from_regex(_ONE_ID, fullmatch=True))
def test_a_plain_message_id_reads_as_the_package_reads_it(value: str) -> None:
    draft = Draft()
    draft["Message-ID"] = value
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Message-ID"] = value
    assert draft.get("Message-ID") == str(msg["Message-ID"]) == value


@settings(max_examples=1000, deadline=None)
@given(
    st.text(st.sampled_from('ab =\t."<>é'), max_size=40).flatmap(
        lambda tail: st.integers(0, 90).map(lambda n: ("x" * n + tail).encode())
    )
)
def test_a_line_quoted_printable_as_the_package_writes_it(line: bytes) -> None:
    # around the width: a line that fits once "=" is escaped, one that ends in white space
    assert _qp_line(line) == quoprimime.body_encode(line.decode("latin-1"), 78)
