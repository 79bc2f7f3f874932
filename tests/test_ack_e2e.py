"""[ack] end to end: a real `netalert run` mails an alert, the operator's reply "ack"
lands in a real Dovecot, and the alert stops repeating; the status API shows the ack."""

from __future__ import annotations

import email
import email.policy
import json
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

[ack]
reply_to = "alerts+{{token}}@example.org"
operators = ["oncall@example.org"]
reconnect_max = "1s"

[ack.imap]
host = "127.0.0.1"
port = {imap}
username = "{user}"
password = "{password}"
ca_file = "{ca}"
"""


@pytest.fixture
def agent(
    tmp_path: Path,
    smtp_server: SmtpServer,
    dovecot: Dovecot,
    dovecot_ca_file: Path,
    mib_cache: Path,
) -> Iterator[AgentProcess]:
    http, traps = free_tcp_port(), free_udp_port()
    text = _CONFIG.format(
        http=http,
        traps=traps,
        smtp=smtp_server.port,
        imap=dovecot.tls_port,
        user=dovecot.user,
        password=dovecot.password,
        ca=dovecot_ca_file,
    )
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
