"""Hostile device text through a real agent: labels and summaries stay one clean line.

net-snmp's ``snmptrap`` sends a linkDown whose ``ifAlias`` holds a terminal
escape sequence, CR/LF with a forged header, a NUL, a bidi override, a
zero-width space and thousands of characters. The rule keys its alerts on
``ifAlias`` and writes it into its summary and description. What the agent
shows of that text (the mail's Subject, text and HTML bodies, ``/api/alerts``,
``netalert alerts``, its log) carries no raw control, bidi or zero-width
character and stays bounded; the same trap twice is still one alert; the raw
varbind is still in the JSON, exactly, as hex. The poll path too: snmpd serves
such an ``ifAlias`` (a ``pass`` script), a rule shows it as its value and in
its summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import unicodedata
from email.message import EmailMessage
from pathlib import Path

import pytest

from netalert.alerts.model import MAX_LABEL
from netalert.rules.templates import MAX_DESCRIPTION, MAX_SUMMARY
from tests.support.fault_checks import MAIL_RULE, mail_config, wait_mail
from tests.support.faults import AgentProcess
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer
from tests.support.snmpd import PassScript, SnmpdFactory

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:importSymbols is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:exportSymbols is deprecated:DeprecationWarning"),
]

IF_ALIAS = "1.3.6.1.2.1.31.1.1.1.18"
HOSTILE = (
    "up\x1b[2J\x1b]0;owned\x07 link\r\nBcc: victim@example.org\x00"
    "\u202etxt.exe\u200b\x85\u2028end" + "A" * 3000
)
RAW = HOSTILE.encode()

# The fault tests' mail rule, keyed on the hostile text too and writing it out.
RULE_CHANGES = {
    'key = ["ifIndex"]': 'key = ["ifIndex", "ifAlias"]',
    'summary = "fault-test ifIndex={{ ifIndex }}"': (
        'summary = "port {{ ifAlias }} is down"\n'
        'description = "The link\\n{{ ifAlias }}\\nwent down."'
    ),
}


def dirty(text: str, *, lines: bool = True) -> list[str]:
    """The characters of ``text`` no reader should get raw: controls (but LF and, with
    ``lines``, TAB and CR), format characters (bidi, zero-width), line separators."""
    allowed = "\n\t\r" if lines else ""
    return sorted(
        {
            repr(c)
            for c in text
            if c not in allowed and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
        }
    )


def snmptrap(port: int, env: dict[str, str]) -> None:
    subprocess.run(
        [
            "snmptrap", "-v", "2c", "-c", "public", f"127.0.0.1:{port}", "",
            "1.3.6.1.6.3.1.1.5.3",
            "1.3.6.1.2.1.2.2.1.1.3", "i", "3",
            f"{IF_ALIAS}.3", "x", RAW.hex(),
        ],
        env=env, check=True, timeout=20, capture_output=True,
    )  # fmt: skip


@pytest.fixture
def agent(mail_agent: AgentProcess) -> AgentProcess:
    for old, new in RULE_CHANGES.items():
        assert old in mail_agent.config_text
        mail_agent.config_text = mail_agent.config_text.replace(old, new)
    return mail_agent


def _alerts(agent: AgentProcess) -> list[dict[str, object]]:
    status, body = agent.get("/api/alerts")
    assert status == 200, body
    data = json.loads(body)
    alerts = data["alerts"] if isinstance(data, dict) else data
    return [a for a in alerts if a.get("rule") == MAIL_RULE]


def _count(alert: dict[str, object]) -> int:
    return int(str(alert.get("count", 0)))


def test_hostile_ifalias_is_escaped_and_bounded_everywhere(
    agent: AgentProcess, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    agent.start()
    conf = tmp_path / "snmpconf"
    conf.mkdir()
    env = {**os.environ, "MIBS": "", "SNMPCONFPATH": str(conf), "SNMP_PERSISTENT_DIR": str(conf)}
    snmptrap(agent.traps_port, env)
    (message,) = wait_mail(smtp_server, 1, within=30)

    # the mail: Subject, text and HTML bodies
    mail: EmailMessage = message.parsed()
    subject = str(mail["Subject"])
    assert not dirty(subject, lines=False), subject
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    for part in (text, html):
        body = part.get_content()
        assert not dirty(body), (dirty(body), body[:2000])
        assert "\\u001b[2J" in body, body[:2000]  # the escape shows, visibly
        forged = [ln for ln in body.splitlines() if ln.strip().startswith("Bcc:")]
        assert not forged, forged
        assert len(body) < 4 * MAX_DESCRIPTION

    # the JSON API: labels escaped and bounded, the raw varbind there exactly
    (alert,) = _alerts(agent)
    labels = alert["labels"]
    assert isinstance(labels, dict)
    alias = labels["ifAlias"]
    assert not dirty(alias, lines=False), alias
    assert alias.startswith("up\\u001b[2J\\u001b]0;owned\\u0007 link\\r\\nBcc:"), alias
    assert len(alias) <= MAX_LABEL
    assert agent.metric("netalert_label_values_cut_total") >= 1  # the 3000-character alias
    annotations = alert.get("annotations", alert)
    assert isinstance(annotations, dict)
    summary = str(annotations["summary"])
    assert not dirty(summary, lines=False) and len(summary) <= MAX_SUMMARY, summary
    status, body = agent.get("/api/traps")
    assert status == 200, body
    traps = json.dumps(json.loads(body), ensure_ascii=False)
    assert "ifAlias" in traps and not dirty(traps, lines=False), traps[:2000]

    # the same trap again: the same alert (stable labels), counted
    snmptrap(agent.traps_port, env)
    deadline = time.monotonic() + 20
    while _count(alert) < 2:
        assert time.monotonic() < deadline, alert
        time.sleep(0.1)
        (alert,) = _alerts(agent)
    assert alert["labels"] == labels

    # `netalert alerts`, and the log
    shown = subprocess.run(
        [sys.executable, "-m", "netalert", "alerts", "-c", str(agent.config)],
        cwd=agent.directory, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert MAIL_RULE in shown.stdout
    assert not dirty(shown.stdout.replace("\n", ""), lines=False), shown.stdout
    # the alert records keep the trap's varbinds exactly: the raw value, as hex
    as_json = subprocess.run(
        [sys.executable, "-m", "netalert", "alerts", "--json", "-c", str(agent.config)],
        cwd=agent.directory, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert RAW.hex() in as_json.stdout, "the trap's varbind is no longer in the JSON as hex"
    assert "\\u001b" in as_json.stdout  # the labels: escaped, and JSON-encoded again
    assert not dirty(agent.log().replace("\n", ""), lines=False)


# --- the poll path: snmpd serves the hostile ifAlias ----------------------------------

POLLED = "up\x1b[2J\x1b]0;owned\x07 link\r\u202etxt.exe\u200b\x7fend" + "A" * 600
# (DisplayString's DISPLAY-HINT "255a" shows the bidi and zero-width characters as U+FFFD)
ESCAPED = "up\\u001b[2J\\u001b]0;owned\\u0007 link\\r"
ALIAS_SCRIPT = f"""#!{sys.executable}
import sys
mode, oid = sys.argv[1], sys.argv[2]
row = "{IF_ALIAS}.1"
wanted = [int(x) for x in oid.strip(".").split(".")]
first = [int(x) for x in row.split(".")]
if (mode == "-g" and wanted == first) or (mode == "-n" and wanted < first):
    sys.stdout.buffer.write(("." + row + "\\nstring\\n").encode() + {POLLED.encode()!r} + b"\\n")
"""
# The fault tests' mail config with this poll rule instead of its trap rule.
POLL_RULE = """[[rules]]
name = "HostileAlias"
expr = "ifAlias != ''"
value = "ifAlias"
severity = "info"
summary = "alias {{ ifAlias }}"

"""
POLL_DEVICE = """
[snmp]
interval = "1s"

[[devices]]
name = "edge"
address = "%s"
collect = ["alias"]

[collect.alias]
walk = ["IF-MIB::ifAlias"]
"""


def test_hostile_polled_text_is_escaped_and_bounded(
    snmpd_factory: SnmpdFactory, smtp_server: SmtpServer, mib_cache: Path, tmp_path: Path
) -> None:
    device = snmpd_factory(passes=[PassScript(f".{IF_ALIAS}", ALIAS_SCRIPT, priority=10)])
    http = free_tcp_port()
    # workers = 1: polled text, no trap, so no trap worker to start
    text = mail_config(traps=free_udp_port(), smtp=smtp_server.port, http=http, workers=1)
    head, rest = text.split("[[rules]]")
    text = head + POLL_RULE + "[smtp]" + rest.split("[smtp]")[1] + POLL_DEVICE % device.address
    agent = AgentProcess(tmp_path / "agent", text, http, mib_cache)
    (tmp_path / "agent").mkdir()
    try:
        agent.start()
        (message,) = wait_mail(smtp_server, 1, within=30)
        status, body = agent.get("/api/alerts")
        assert status == 200, body
        data = json.loads(body)
        (alert,) = [a for a in data["alerts"] if a.get("rule") == "HostileAlias"]
        for shown in (str(alert["value"]), str(alert["summary"])):
            assert not dirty(shown, lines=False), shown
            assert ESCAPED in shown and "\\u007fend" in shown, shown
            assert len(shown) <= MAX_SUMMARY
        assert len(str(alert["value"])) <= MAX_LABEL
        assert agent.metric("netalert_label_values_cut_total") >= 1  # 600 characters and more
        mail = message.parsed()
        for part in (mail.get_body(("plain",)), mail.get_body(("html",))):
            assert part is not None
            content = part.get_content()
            assert not dirty(content) and "\\u001b[2J" in content, content[:2000]
    finally:
        agent.cleanup()
