"""[ack] end to end: a real `netalert run` mails an alert, the operator's reply "ack"
lands in a real Dovecot, and the alert stops repeating; the status API shows the ack."""

from __future__ import annotations

import email
import email.policy
import json
import re
import signal
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support.dovecot import Dovecot
from tests.support.faults import AgentProcess, link_down, send_traps
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer

_CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
drain_timeout = "1s"

[traps]
# the agent receives the traps itself: not a test of the trap workers (each a Python
# start; their tests: test_traps_workers*.py)
workers = 1
listen = ["127.0.0.1:{traps}"]
allow = ["127.0.0.0/8"]

[[rules]]
name = "AckLinkDown"
trap = "IF-MIB::linkDown"
key = ["ifIndex"]
severity = "warning"
summary = "ack-test ifIndex={{{{ ifIndex }}}}"

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"

[[routes]]
to = ["noc@example.org"]
group_wait = "0s"
group_interval = "1s"
repeat_interval = "2s"
"""

_ACK = """
[ack]
reply_to = "alerts+{{token}}@example.org"
operators = [{operators}]
reconnect_max = "1s"

[ack.imap]
host = "127.0.0.1"
port = {imap}
username = "{user}"
password = "{password}"
ca_file = "{ca}"
"""


def _config(
    http: int,
    traps: int,
    smtp: SmtpServer,
    dovecot: Dovecot,
    ca: Path,
    operators: list[str] | None,
) -> str:
    """The agent's config; without [ack] when ``operators`` is None."""
    text = _CONFIG.format(http=http, traps=traps, smtp=smtp.port)
    if operators is None:
        return text
    return text + _ACK.format(
        operators=", ".join(f'"{o}"' for o in operators),
        imap=dovecot.tls_port,
        user=dovecot.user,
        password=dovecot.password,
        ca=ca,
    )


@pytest.fixture
def agent(
    tmp_path: Path,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    dovecot_ca_file: Path,
    mib_cache: Path,
) -> Iterator[AgentProcess]:
    http, traps = free_tcp_port(), free_udp_port()
    text = _config(http, traps, smtp_server, dovecot, dovecot_ca_file, ["oncall@example.org"])
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    proc.cleanup()


def _alert_mails(server: SmtpServer) -> list[email.message.Message]:
    out = []
    for received in list(server.messages):
        msg = email.message_from_bytes(received.data, policy=email.policy.default)
        if msg.get("X-Netalert-State") == "firing":
            out.append(msg)
    return out


def _until(what, within: float, why: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.1)


def test_reply_ack_stops_the_repeats_and_shows_on_the_status_api(
    agent: AgentProcess, smtp_server: SmtpServer, dovecot: Dovecot
) -> None:
    agent.start()
    send_traps(agent.traps_port, [link_down(3)])
    # the alert repeats every 2 s while nobody acks it
    _until(lambda: len(_alert_mails(smtp_server)) >= 2, 30, "no repeat before the ack")
    first = _alert_mails(smtp_server)[0]
    reply_to = str(first["Reply-To"])
    assert reply_to.startswith("alerts+") and str(first["Auto-Submitted"]) == "auto-generated"
    reply = EmailMessage()
    reply["From"] = "On Call <oncall@example.org>"
    reply["To"] = reply_to
    reply["Subject"] = f"Re: {first['Subject']}"
    reply["In-Reply-To"] = str(first["Message-ID"])
    reply["References"] = f"{first.get('References', '')} {first['Message-ID']}".strip()
    reply["Return-Path"] = "<oncall@example.org>"
    reply.set_content("ack on it\n\n> [FIRING] warning AckLinkDown\n")
    dovecot.deliver(reply.as_bytes())

    def acked() -> bool:
        status, body = agent.get("/api/alerts")
        return status == 200 and any(a["ack"] for a in json.loads(body)["alerts"])

    _until(acked, 30, f"no ack on /api/alerts:\n{agent.log()[-3000:]}")
    _until(
        lambda: any(
            m.get("Auto-Submitted") == "auto-replied"
            for m in map(
                lambda r: email.message_from_bytes(r.data, policy=email.policy.default),
                list(smtp_server.messages),
            )
        ),
        15,
        "no confirmation mailed",
    )
    time.sleep(1.5)  # a repeat being mailed right now is let through
    before = len(_alert_mails(smtp_server))
    time.sleep(5.0)  # more than two repeat_intervals
    assert len(_alert_mails(smtp_server)) == before, "the acknowledged alert still repeats"
    assert "event=ack_audit" in agent.log()


def _reply(alert_mail: email.message.Message, body: str) -> bytes:
    reply = EmailMessage()
    reply["From"] = "On Call <oncall@example.org>"
    reply["To"] = str(alert_mail["Reply-To"])
    reply["Subject"] = f"Re: {alert_mail['Subject']}"
    reply["Message-ID"] = f"<reply.{time.time_ns()}@example.org>"
    reply["In-Reply-To"] = str(alert_mail["Message-ID"])
    reply["References"] = f"{alert_mail['References']} {alert_mail['Message-ID']}"
    reply["Return-Path"] = "<oncall@example.org>"
    reply.set_content(f"{body}\n\n> {alert_mail['Subject']}\n")
    return reply.as_bytes()


def _text(msg: email.message.Message) -> str:
    part = msg.get_body(("plain",))  # type: ignore[attr-defined]
    return str(part.get_content()) if part is not None else ""


def test_reload_adds_changes_and_removes_ack(
    tmp_path: Path,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    dovecot_ca_file: Path,
    mib_cache: Path,
) -> None:
    http, traps = free_tcp_port(), free_udp_port()

    def config(operators: list[str] | None) -> str:
        return _config(http, traps, smtp_server, dovecot, dovecot_ca_file, operators)

    agent = AgentProcess(tmp_path, config(None), http, mib_cache, traps_port=traps)

    def reload(operators: list[str] | None, count: int) -> None:
        agent.config.write_text(config(operators))
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGHUP)
        _until(
            lambda: agent.log().count("event=reloaded ") >= count,
            30,
            f"reload {count} not done:\n{agent.log()[-3000:]}",
        )

    def metrics() -> str:
        status, body = agent.get("/metrics")
        assert status == 200
        return body

    def ack_source() -> bool:  # the ack stage's own samples (the families are always declared)
        return re.search(r"^netalert_ack_imap_connected ", metrics(), re.MULTILINE) is not None

    def acked() -> bool:
        status, body = agent.get("/api/alerts")
        return status == 200 and any(a["ack"] for a in json.loads(body)["alerts"])

    try:
        agent.start()
        send_traps(traps, [link_down(3)])
        _until(lambda: _alert_mails(smtp_server), 30, "no alert mail")
        assert all(m["Reply-To"] is None for m in _alert_mails(smtp_server))
        assert not ack_source()

        # [ack] added: the repeats carry a Reply-To, and a reply to one acks the alert.
        reload(["oncall@example.org"], 1)
        _until(
            lambda: any(m["Reply-To"] for m in _alert_mails(smtp_server)),
            30,
            f"no signed mail after the reload:\n{agent.log()[-3000:]}",
        )
        signed = next(m for m in _alert_mails(smtp_server) if m["Reply-To"])
        dovecot.deliver(_reply(signed, "ack on it"))
        _until(acked, 30, f"no ack on /api/alerts:\n{agent.log()[-3000:]}")
        assert "netalert_ack_imap_connected 1" in metrics()

        # [ack] changed (another operator): the new reader refuses the old one.
        reload(["boss@example.org"], 2)
        dovecot.deliver(_reply(signed, "unack"))
        _until(
            lambda: 'netalert_ack_replies_total{result="not_operator"} 1' in metrics(),
            30,
            f"the changed [ack] was not applied:\n{agent.log()[-3000:]}",
        )
        assert acked()

        # [ack] removed: the reader stops, its metrics go, mails carry no Reply-To.
        ready = agent.log().count("event=ack_imap_ready")
        reload(None, 3)
        assert not ack_source(), "the removed ack stage still reports its metrics"
        assert 'netalert_ack_replies_total{result="not_operator"} 0' in metrics()
        send_traps(traps, [link_down(9)])
        _until(
            lambda: any("ifIndex=9" in _text(m) for m in _alert_mails(smtp_server)),
            30,
            f"no mail of the new alert:\n{agent.log()[-3000:]}",
        )
        late = [m for m in _alert_mails(smtp_server) if "ifIndex=9" in _text(m)]
        assert all(m["Reply-To"] is None for m in late)
        unread = dovecot.deliver(_reply(signed, "unack"))
        time.sleep(3.0)  # a reader would have taken it out of new/ by now
        assert unread.exists(), "a reader still reads the mailbox"
        assert agent.log().count("event=ack_imap_ready") == ready
    finally:
        agent.cleanup()


def test_reload_with_an_unusable_key_leaves_no_ack_stage(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    agent.start()
    send_traps(agent.traps_port, [link_down(3)])
    _until(lambda: any(m["Reply-To"] for m in _alert_mails(smtp_server)), 30, "no signed mail")
    short = agent.directory / "short.key"
    short.write_text("too short\n")
    text = agent.config_text.replace(
        'reconnect_max = "1s"\n', f'reconnect_max = "1s"\nsecret_file = "{short}"\n'
    )
    assert text != agent.config_text
    agent.config.write_text(text)
    assert agent.proc is not None
    agent.proc.send_signal(signal.SIGHUP)
    _until(lambda: "event=reloaded " in agent.log(), 30, f"no reload:\n{agent.log()[-3000:]}")
    assert "event=ack_failed" in agent.log()
    # No stage: the mails are not signed with a key whose replies nobody reads.
    send_traps(agent.traps_port, [link_down(9)])
    _until(
        lambda: any("ifIndex=9" in _text(m) for m in _alert_mails(smtp_server)),
        30,
        f"no mail of the new alert:\n{agent.log()[-3000:]}",
    )
    late = [m for m in _alert_mails(smtp_server) if "ifIndex=9" in _text(m)]
    assert all(m["Reply-To"] is None for m in late), "mails still signed by the failed stage"
    status, body = agent.get("/metrics")
    assert status == 200 and not re.search(r"^netalert_ack_imap_connected ", body, re.MULTILINE)
