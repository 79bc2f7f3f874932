"""[ack] pure parts: tokens, commands, the loop/sender/authentication checks."""

from __future__ import annotations

import email
import time

import pytest

from netalert.ack.commands import Verb, parse_command
from netalert.ack.policy import authenticated, from_address, is_operator, loop_reason
from netalert.ack.token import TOKEN_CHARS, mac, make_token, parse_token, token_pattern
from netalert.config import load_config_text
from netalert.errors import ConfigError, NetalertError

KEY = b"k" * 32


def test_token_round_trip_and_binding_to_its_alerts() -> None:
    nid, token = make_token(KEY, ["b", "a"], 2_000_000_000)
    assert len(token) == TOKEN_CHARS and token == token.lower()
    parsed = parse_token(token.upper())
    assert parsed is not None and parsed.nid == nid and parsed.expires == 2_000_000_000
    assert parsed.mac == mac(KEY, nid, 2_000_000_000, ["a", "b"])
    assert parsed.mac != mac(KEY, nid, 2_000_000_000, ["a", "b", "c"])
    assert parsed.mac != mac(b"x" * 32, nid, 2_000_000_000, ["a", "b"])
    assert parsed.mac != mac(KEY, nid, 2_000_000_001, ["a", "b"])
    assert parse_token(token[:-1]) is None
    assert parse_token("1" * TOKEN_CHARS) is None
    found = token_pattern("alerts+{token}@example.org").search(f"Alerts+{token}@example.org")
    assert found is not None and found.group(1).lower() == token


@pytest.mark.parametrize(
    ("body", "verb", "comment", "seconds"),
    [
        ("ack", Verb.ACK, "", 0),
        ("  Ack. looking\n> quoted", Verb.ACK, "looking", 0),
        ("> ack\n\nUNACK\n", Verb.UNACK, "", 0),
        ("silence 2h planned work", Verb.SILENCE, "planned work", 7200),
        ("Silence 30M", Verb.SILENCE, "", 1800),
        ("silence soon", Verb.HELP, "", 0),
        ("resolve", Verb.RESOLVE, "", 0),
        ("resolve them all", Verb.HELP, "", 0),
        ("thanks!", Verb.HELP, "", 0),
        ("On Mon, netalert wrote:\n> ack", Verb.HELP, "", 0),
        ("", Verb.HELP, "", 0),
    ],
)
def test_commands(body: str, verb: Verb, comment: str, seconds: float) -> None:
    command = parse_command(body)
    assert (command.verb, command.comment, command.seconds) == (verb, comment, seconds)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ("", None),
        ("Auto-Submitted: no\n", None),
        ("Auto-Submitted: auto-replied\n", "Auto-Submitted: auto-replied"),
        ("X-Autoreply: yes\n", "X-Autoreply"),
        ("Precedence: junk\n", "Precedence: junk"),
        ("Precedence: first-class\n", None),
        ("Return-Path: <>\n", "null return path"),
        ("Return-Path: <a@example.org>\n", None),
    ],
)
def test_loop_signals(headers: str, reason: str | None) -> None:
    msg = email.message_from_string(f"From: a@example.org\n{headers}\nack\n")
    assert loop_reason(msg) == reason


def test_senders_and_operators() -> None:
    one = email.message_from_string("From: A <A@Example.org>\n\nx")
    two = email.message_from_string("From: a@example.org, b@example.org\n\nx")
    assert from_address(one) == "a@example.org"
    assert from_address(two) is None
    ops = ["a@example.org", "*@noc.example.org"]
    assert is_operator("a@example.org", ops) and is_operator("x@noc.example.org", ops)
    assert not is_operator("b@example.org", ops)
    assert not is_operator("x@sub.noc.example.org", ops)


@pytest.mark.parametrize(
    ("results", "ok"),
    [
        ("mx.example.org; dkim=pass header.d=example.org", True),
        ("mx.example.org 1; dmarc=pass (p=reject) header.from=example.org", True),
        ("MX.example.org; dkim=pass header.d=evil.example", False),
        ("mx.evil.example; dkim=pass header.d=example.org", False),
        ("mx.example.org; dkim=fail header.d=example.org; spf=pass", False),
        ("mx.example.org (dkim=pass header.d=example.org); none", False),
    ],
)
def test_authentication_results(results: str, ok: bool) -> None:
    msg = email.message_from_string(f"Authentication-Results: {results}\nFrom: a@example.org\n\nx")
    assert authenticated(msg, "mx.example.org", "a@example.org") is ok


def test_config_errors_name_the_key() -> None:
    base = '[ack.imap]\nhost = "h"\nusername = "u"\n[ack]\n'
    with pytest.raises(ConfigError) as bad:
        load_config_text(base + 'reply_to = "alerts@example.org"\noperators = ["a@b.c"]\n')
    assert "ack.reply_to" in str(bad.value.problems)
    with pytest.raises(ConfigError) as empty:
        load_config_text(base + 'reply_to = "a+{token}@example.org"\noperators = []\n')
    assert "operators is empty" in str(empty.value.problems)
    with pytest.raises(ConfigError):
        load_config_text(base + 'reply_to = "a+{token}@example.org"\noperators = ["x*@b.c"]\n')


def _html_reply(html: str, charset: str = "utf-8") -> email.message.Message:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg.set_content(html, subtype="html", charset=charset)
    return msg


@pytest.mark.parametrize(
    ("html", "verb", "comment"),
    [
        # a phone app's top-posted reply: the command, then the quote of the alert mail
        (
            "<html><head><style>p { color: red } ack</style><title>ack</title></head><body>"
            '<div dir="ltr">Ack&nbsp;on it &amp; <b>more</b></div><br>'
            '<div class="gmail_quote"><div>On Mon, netalert wrote:</div>'
            "<blockquote>silence 2h</blockquote></div></body></html>",
            Verb.ACK,
            "on it & more",
        ),
        # the quote first, the command under it
        ('<blockquote type="cite"><p>ack</p></blockquote><p>silence 2h</p>', Verb.SILENCE, ""),
        ("<p>unack<br>thanks</p>", Verb.UNACK, ""),
        ("<p>thanks, looking</p><blockquote>ack</blockquote>", Verb.HELP, ""),
        ("<!-- ack --><script>ack</script><p>resolve</p>", Verb.RESOLVE, ""),
    ],
)
def test_command_of_an_html_only_reply(html: str, verb: Verb, comment: str) -> None:
    from netalert.ack.body import message_body

    command = parse_command(message_body(_html_reply(html)))
    assert (command.verb, command.comment) == (verb, comment)


def test_html_reply_in_its_charset_and_text_plain_first() -> None:
    from email.message import EmailMessage

    from netalert.ack.body import message_body

    latin = _html_reply("<p>ack d\u00e9j\u00e0 vu</p>", charset="iso-8859-1")
    assert parse_command(message_body(latin)).comment == "d\u00e9j\u00e0 vu"
    both = EmailMessage()
    both["From"] = "a@example.org"
    both.set_content("unack\n")
    both.add_alternative("<p>ack</p>", subtype="html")
    assert parse_command(message_body(both)).verb is Verb.UNACK


def test_reconnect_backoff_doubles_from_one_second_up_to_reconnect_max() -> None:
    from netalert.ack.reader import reconnect_delay

    assert [reconnect_delay(n, 30.0) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert reconnect_delay(10_000, 300.0) == 300.0
    assert reconnect_delay(1, 0.5) == 0.5


@pytest.mark.parametrize(
    "html",
    [
        "<p>ack</p><![&##?x#<?<!--\n",
        "<p>ack</p><![script&#!<?b=/\np&#x>",
        "<p>ack</p><![<![CDATA[#<![CDATA[b",
    ],
)
def test_malformed_html_keeps_what_came_before(html: str) -> None:
    # html.parser raises AssertionError on some "<![" sections: a reply must not
    # break the reader (it would fetch the same message again and again).
    from netalert.ack.body import message_body

    assert parse_command(message_body(_html_reply(html))).verb is Verb.ACK


@pytest.mark.parametrize(
    "html",
    ["<a" * 128_000, "<" * 256_000, "<!" * 128_000, "<?" * 128_000, "<blockquote>" * 20_000],
)
def test_html_text_is_linear_on_hostile_markup(html: str) -> None:
    # A reply is read on the agent's loop: html.parser took seconds on 64 KB of "<a".
    from netalert.ack.body import html_text

    started = time.monotonic()
    text = html_text("<p>ack</p>" + html)
    assert time.monotonic() - started < 5.0
    assert text.split()[0] == "ack"


def test_an_unknown_alert_id_says_where_the_ids_are() -> None:
    # the message points at where the ids are: the ID column of `netalert alerts`
    from netalert.ack.cli import find_alert
    from netalert.alerts.model import Alert, AlertState

    alert = Alert(
        fingerprint="881f1c388cc3ad0d",
        rule="LinkDown",
        severity="warning",
        device="sw1",
        labels={},
        annotations={},
        state=AlertState.FIRING,
        starts_at=1.0,
        ends_at=None,
        updated_at=1.0,
        value="linkDown",
        count=1,
        flapping=False,
        silenced=False,
        source="trap",
    )
    assert find_alert([alert], "881f1c") is alert
    with pytest.raises(NetalertError) as unknown:
        find_alert([alert], "ffffff")
    assert str(unknown.value) == (
        "no firing alert with id 'ffffff' (the ID column of `netalert alerts`, or the"
        " fingerprint of `netalert alerts --json`, or 6 or more of its first characters)"
    )
    with pytest.raises(NetalertError) as short:
        find_alert([alert], "881f")
    assert str(short.value) == (
        "alert id '881f' is too short: give 6 or more characters of its fingerprint"
        " (the ID column of `netalert alerts`)"
    )
