"""The same traps to `netalert run` with [traps] workers = 1 and workers = 2: the same
alerts and the same mails.

With workers, the trap rules are matched in the worker processes and the agent
applies what they found; with one, the agent matches. Real net-snmp `snmptrap`
sends one sequence (fire, repeat, a `where` that holds or not, a glob rule, a
value, templates, a clearing trap) from 127.0.0.1 and 127.0.0.2, which reach
different workers, to both agents; their alerts (/api/alerts) and mails
(aiosmtpd) are compared after the times in them are blanked.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fault_checks import mail_config, wait_mail
from tests.support.faults import AgentProcess
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.e2e

SOURCES = ("127.0.0.1", "127.0.0.2")
_RULES = """
[[rules]]
name = "AdminUpDown"
trap = "IF-MIB::linkDown"
clear_trap = "IF-MIB::linkUp"
where = "ifAdminStatus == 'up'"
key = ["ifIndex"]
severity = "critical"
labels = { team = "net" }
summary = "{{ device }} port {{ ifIndex }} is {{ ifOperStatus }} (from {{ source }})"

[[rules]]
name = "AnyLink"
trap = "IF-MIB::link*"
key = ["ifIndex"]
value = "ifOperStatus"
severity = "info"

[[routes]]
"""
# (source, trap, ifIndex, ifAdminStatus): before the clearing linkUps
FIRST = [
    (source, "linkDown", index, admin)
    for source in SOURCES
    for index, admin in ((1, 1), (2, 2), (3, 1), (1, 1))
]
THEN = [(source, "linkUp", 1, 1) for source in SOURCES]
_TIME = re.compile(
    r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?( ?(UTC|Z|[+-]\d\d:?\d\d))?"
    r"|\b\d\d:\d\d:\d\d\b|\b\d+(\.\d+)?\s?(ms|s|m|h|d)\b|\b\d{9,}(\.\d+)?\b"
)


def _config(traps: int, smtp: int, http: int, workers: int) -> str:
    text = mail_config(traps=traps, smtp=smtp, http=http)
    text = text.replace(
        "storm_trap_burst = 1000000\n", f"storm_trap_burst = 1000000\nworkers = {workers}\n"
    )
    # the route groups each alert alone and mails it at once
    return text.replace("[[routes]]\n", _RULES, 1)


@pytest.fixture
def agents(tmp_path: Path, smtp_factory: Any, mib_cache: Path) -> Iterator[list[Any]]:
    made = []
    for workers in (1, 2):
        smtp: SmtpServer = smtp_factory("plain")
        traps, http = free_udp_port(), free_tcp_port()
        folder = tmp_path / f"workers-{workers}"
        folder.mkdir()
        text = _config(traps, smtp.port, http, workers)
        made.append((AgentProcess(folder, text, http, mib_cache, traps_port=traps), smtp))
    yield made
    for agent, _ in made:
        agent.cleanup()


def _send(agent: AgentProcess, source: str, trap: str, index: int, admin: int) -> None:
    oid = "1.3.6.1.6.3.1.1.5." + ("3" if trap == "linkDown" else "4")
    oper = "2" if trap == "linkDown" else "1"
    base = "1.3.6.1.2.1.2.2.1"
    done = subprocess.run(
        ["snmptrap", f"--clientaddr={source}", "-v", "2c", "-c", "public",
         f"127.0.0.1:{agent.traps_port}", "", oid,
         f"{base}.1.{index}", "i", str(index), f"{base}.7.{index}", "i", str(admin),
         f"{base}.8.{index}", "i", oper],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()


# what differs from one snmptrap to the next: its source port and sysUpTime
_SENDER = re.compile(r"(?<=127\.0\.0\.[12]):\d+|(?<=sysUpTime\.0 = ).*")


def _blank(text: str) -> str:
    return _TIME.sub("T", _SENDER.sub("S", text))


def _mails(smtp: SmtpServer) -> list[tuple[str, str]]:
    out = []
    for message in smtp.received():
        parsed = message.parsed()
        body = parsed.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        out.append((_blank(str(parsed["Subject"])), _blank(text)))
    return sorted(out)


def _alerts(agent: AgentProcess) -> list[str]:
    """The alerts as /api/alerts shows them, times blanked (each alert as its JSON)."""
    alerts = json.loads(agent.get("/api/alerts")[1])["alerts"]
    return sorted(_blank(json.dumps(a, sort_keys=True)) for a in alerts)


def _settled(agent: AgentProcess, smtp: SmtpServer, mails: int) -> None:
    wait_mail(smtp, mails, within=60)
    time.sleep(1.0)  # nothing else is due: group_wait is 0s


def test_workers_make_the_alerts_and_mails_one_agent_makes(agents: list[Any]) -> None:
    for agent, _ in agents:
        agent.start()
    for agent, _ in agents:
        for sent in FIRST:
            _send(agent, *sent)
    # per source: ports 1, 2, 3 fire FaultLinkDown and AnyLink, 1 (twice) and 3 AdminUpDown
    for agent, smtp in agents:
        _settled(agent, smtp, 2 * (3 + 3 + 2))
    for agent, _ in agents:
        for sent in THEN:
            _send(agent, *sent)
    # per source, the linkUp resolves AdminUpDown of port 1 and fires AnyLink (linkUp)
    (one, one_smtp), (two, two_smtp) = agents
    _settled(one, one_smtp, 2 * (3 + 3 + 2) + 2)
    _settled(two, two_smtp, len(one_smtp.received()))
    assert _alerts(two) == _alerts(one)
    assert _mails(two_smtp) == _mails(one_smtp)
    # per source: 8 firing mails, then AnyLink's linkUp (resolutions are not mailed:
    # send_resolved is off); active: 3 FaultLinkDown, 4 AnyLink, AdminUpDown of port 3
    assert len(_mails(one_smtp)) == 18 and len(_alerts(one)) == 16
    for agent, _ in agents:
        code, _ = agent.terminate()
        assert code == 0, agent.log()[-4000:]


def test_after_a_reload_the_workers_match_the_new_rules(
    tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path
) -> None:
    """A reload adds a trap rule: the next traps, through either worker, fire it too."""
    traps, http = free_udp_port(), free_tcp_port()
    text = _config(traps, smtp_server.port, http, 2)
    agent = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    try:
        agent.start()
        for source in SOURCES:
            _send(agent, source, "linkDown", 1, 2)  # FaultLinkDown and AnyLink
        wait_mail(smtp_server, 4, within=60)
        agent.config.write_text(text.replace("[[rules]]", _AFTER + "[[rules]]", 1))
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while " event=reloaded " not in agent.log():
            assert time.monotonic() < deadline, agent.log()[-4000:]
            time.sleep(0.1)
        for source in SOURCES:
            _send(agent, source, "linkDown", 2, 2)  # ... and now AfterReload
        got = wait_mail(smtp_server, 4 + 6, within=60)
        subjects = sorted(str(m.parsed()["Subject"]) for m in got)
        assert [s for s in subjects if "AfterReload" in s] == [
            f"[FIRING] warning AfterReload on {source}" for source in SOURCES
        ], subjects
        code, _ = agent.terminate()
        assert code == 0, agent.log()[-4000:]
    finally:
        agent.cleanup()


_AFTER = """[[rules]]
name = "AfterReload"
trap = "IF-MIB::linkDown"
key = ["ifIndex"]
severity = "warning"

"""
