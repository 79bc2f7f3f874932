"""Fault tests, alerts without end: caps, a default resolve_after, retention.

A real `netalert run` subprocess gets real v2c linkDown datagrams; the many
"devices" of the cap test are loopback source addresses (127.0.x.y) the
sending socket binds to, as spoofed sources would look. Mail goes to the
aiosmtpd sink; what the agent keeps is read from its SQLite database.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.fault_checks import wait_mail
from tests.support.faults import AgentProcess, link_down, metric_values
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import ReceivedMessage, SmtpServer

_CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
drain_timeout = "2s"

[traps]
# the agent receives the traps itself: not a test of the trap workers (each a Python
# start; their tests: test_traps_workers*.py)
workers = 1
listen = ["127.0.0.1:{traps}"]
allow = ["127.0.0.0/8"]

[limits]
{limits}

{rules}

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"
retry_max = "1s"

[[routes]]
to = ["noc@example.org"]
group_by = {group_by}
group_wait = "{group_wait}"
group_interval = "1s"
"""


def _rule(name: str, extra: str = "") -> str:
    return (
        f'[[rules]]\nname = "{name}"\ntrap = "IF-MIB::linkDown"\nkey = ["ifIndex"]\n'
        f'severity = "warning"\nsummary = "limits-test {name}"\n{extra}\n'
    )


AgentFactory = Callable[..., AgentProcess]


@pytest.fixture
def make_agent(tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path) -> Iterator[AgentFactory]:
    made: list[AgentProcess] = []

    def make(
        *, limits: str, rules: str, group_by: str = '["device"]', group_wait: str = "0s"
    ) -> AgentProcess:
        traps, http = free_udp_port(), free_tcp_port()
        text = _CONFIG.format(
            http=http,
            traps=traps,
            smtp=smtp_server.port,
            limits=limits,
            rules=rules,
            group_by=group_by,
            group_wait=group_wait,
        )
        agent = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.cleanup()


def _sources(count: int) -> list[str]:
    """``count`` loopback addresses from 127.0.1.1 on (Linux routes all of 127/8 to lo)."""
    return [f"127.0.{1 + n // 250}.{1 + n % 250}" for n in range(count)]


def send_from(port: int, data: bytes, sources: list[str]) -> None:
    """Sends ``data`` to 127.0.0.1:``port`` once from each address in ``sources``."""
    for address in sources:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((address, 0))
            sock.sendto(data, ("127.0.0.1", port))


def _rows(agent: AgentProcess, rule: str) -> list[tuple[dict[str, str], str, int]]:
    rows = agent.query(f"SELECT labels, state, count FROM alerts WHERE rule = '{rule}'")
    return [(json.loads(str(labels)), str(state), int(count)) for labels, state, count in rows]


def _wait(what: str, check: Callable[[], bool], agent: AgentProcess, *, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert agent.proc is not None and agent.proc.poll() is None, agent.log()[-3000:]
        assert time.monotonic() < deadline, f"not within {within}s: {what}\n{agent.log()[-3000:]}"
        time.sleep(0.1)


def _text(message: ReceivedMessage) -> str:
    body = message.parsed().get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def _metrics(agent: AgentProcess, name: str) -> dict[str, float]:
    status, body = agent.get("/metrics")
    assert status == 200, body
    return metric_values(body, name)


def test_per_rule_cap_makes_one_summary_alert_and_mail(
    make_agent: AgentFactory, smtp_server: SmtpServer
) -> None:
    agent = make_agent(
        limits=(
            'max_active_alerts_per_rule = 20\ntrap_resolve_after = "6s"\n'
            'suppressed_resolve_after = "1s"'
        ),
        rules=_rule("CapLinkDown"),
        group_wait="2s",  # the summary's first mail then tells the count after the burst
    )
    agent.start()
    send_from(agent.traps_port, link_down(1), _sources(300))

    _wait(
        "280 suppressed in /metrics",
        lambda: (
            _metrics(agent, "netalert_alerts_suppressed_total").get('rule="CapLinkDown"') == 280
        ),
        agent,
        within=30,
    )
    # the summary's count reaches the database at the next commit, after the metric
    _wait(
        "the summary's count of 280 stored",
        lambda: any(
            r[0].get("suppressed") == "true" and r[2] == 280 for r in _rows(agent, "CapLinkDown")
        ),
        agent,
        within=30,
    )
    rows = _rows(agent, "CapLinkDown")
    alerts = [r for r in rows if "suppressed" not in r[0]]
    summaries = [r for r in rows if r[0].get("suppressed") == "true"]
    assert len(alerts) == 20, len(alerts)
    assert all(state == "firing" for _, state, _ in alerts)
    assert len(summaries) == 1, summaries
    labels, state, count = summaries[0]
    assert state == "firing" and count == 280, summaries
    assert labels["rule"] == "CapLinkDown" and labels["severity"] == "warning"
    used = _metrics(agent, "netalert_alerts_cap_used")
    assert used == {'rule="CapLinkDown"': 20.0, 'rule="DeviceUnreachable"': 0.0}, used
    caps = _metrics(agent, "netalert_alerts_cap")
    assert caps == {'scope="per_rule"': 20.0, 'scope="total"': 10000.0}, caps

    # 20 alert mails (one group per device) and one summary mail, nothing more
    wait_mail(smtp_server, 21, within=15)
    time.sleep(1.5)
    messages = smtp_server.received()
    assert len(messages) == 21, len(messages)
    texts = [_text(m) for m in messages]
    summary = [text for text in texts if "suppressed" in text]
    assert len(summary) == 1, texts[0]
    assert "280 more alerts of rule CapLinkDown suppressed" in summary[0], summary[0]

    # the 20 alerts expire (trap_resolve_after), the rule is under its cap, nothing
    # more is suppressed for 1s: the summary resolves, each resolution is mailed once
    _wait(
        "every alert resolved",
        lambda: all(state == "resolved" for _, state, _ in _rows(agent, "CapLinkDown")),
        agent,
        within=20,
    )
    wait_mail(smtp_server, 42, within=15)
    time.sleep(1.5)
    assert len(smtp_server.received()) == 42
    # back under the cap: a new source makes a new alert again
    send_from(agent.traps_port, link_down(1), ["127.0.9.9"])
    _wait(
        "an alert for a new source",
        lambda: any(
            labels.get("device") == "127.0.9.9" and state == "firing"
            for labels, state, _ in _rows(agent, "CapLinkDown")
        ),
        agent,
        within=10,
    )
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]


def test_trap_alert_without_resolve_after_resolves_after_the_default(
    make_agent: AgentFactory,
) -> None:
    agent = make_agent(
        limits='trap_resolve_after = "2s"',
        rules=(
            _rule("Expires")
            + _rule("Never", 'resolve_after = "0s"')
            + _rule("Cleared", 'clear_trap = "IF-MIB::linkUp"')
        ),
    )
    agent.start()
    sent = time.monotonic()
    send_from(agent.traps_port, link_down(7), ["127.0.0.1"])
    _wait(
        "three firing alerts",
        lambda: len(agent.query("SELECT 1 FROM alerts")) == 3,
        agent,
        within=10,
    )
    _wait(
        "Expires resolved",
        lambda: [s for _, s, _ in _rows(agent, "Expires")] == ["resolved"],
        agent,
        within=10,
    )
    assert time.monotonic() - sent >= 2.0
    # opting out ("0s") and a clearing trap keep the others firing
    assert [s for _, s, _ in _rows(agent, "Never")] == ["firing"]
    assert [s for _, s, _ in _rows(agent, "Cleared")] == ["firing"]
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]


def test_retention_prunes_resolved_alerts_nflog_and_threads_not_live_ones(
    make_agent: AgentFactory, smtp_server: SmtpServer
) -> None:
    agent = make_agent(
        limits='retention = "1s"\nprune_interval = "1s"',
        rules=_rule("Gone", 'resolve_after = "1s"') + _rule("Stays", 'resolve_after = "0s"'),
        group_by='["rule"]',
    )
    agent.start()
    send_from(agent.traps_port, link_down(3), ["127.0.0.1"])
    # a firing mail per rule, then Gone's resolved mail
    wait_mail(smtp_server, 3, within=15)

    def gone() -> bool:
        alerts = {str(r[0]) for r in agent.query("SELECT rule FROM alerts")}
        nflog = " ".join(str(r[0]) for r in agent.query("SELECT group_key FROM nflog"))
        threads = " ".join(str(r[0]) for r in agent.query("SELECT group_key FROM mail_threads"))
        return "Gone" not in alerts and "Gone" not in nflog and "Gone" not in threads

    _wait("Gone's rows pruned", gone, agent, within=15)
    # what a live group still needs is kept, however old
    assert [s for _, s, _ in _rows(agent, "Stays")] == ["firing"]
    assert "Stays" in " ".join(str(r[0]) for r in agent.query("SELECT group_key FROM nflog"))
    threads = agent.query("SELECT group_key FROM mail_threads")
    assert "Stays" in " ".join(str(r[0]) for r in threads)
    pruned = _metrics(agent, "netalert_pruned_rows_total")
    for table in ("alerts", "nflog", "mail_threads"):
        assert pruned.get(f'table="{table}"', 0) >= 1, pruned
    assert len(smtp_server.received()) == 3
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]
