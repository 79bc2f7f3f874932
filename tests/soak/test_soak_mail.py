"""Soak: 500 alerts while the SMTP server is down for 60 s; and kill -9 during that outage.

Like tests/test_faults_mail.py, at the issue's scale: a real `netalert run`,
500 linkDown traps (distinct ifIndex: 500 alerts, 500 mails), the aiosmtpd sink
stopped for 60 s from the first trap. Each alert must then arrive exactly once,
counted by Message-ID and by the alert each mail names. ``retry_max = "5s"``
bounds how long the agent takes to notice the server is back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fault_checks import MAIL_RULE, assert_exactly_once, mail_config
from tests.support.faults import AgentProcess, alert_indexes, link_down, send_traps
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer

N = 500
OUTAGE = 60.0


@pytest.fixture
def agent(tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path) -> Iterator[AgentProcess]:
    traps, http = free_udp_port(), free_tcp_port()
    text = mail_config(traps=traps, smtp=smtp_server.port, http=http, retry_max="5s")
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    proc.cleanup()


def traps(first: int, last: int) -> list[bytes]:
    return [link_down(i) for i in range(first, last + 1)]


@pytest.mark.timeout(300)
def test_500_alerts_during_60s_outage_each_mailed_once(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    agent.start()
    began = time.monotonic()
    send_traps(agent.traps_port, traps(1, N), seconds=50.0)  # 10 alerts/s
    agent.wait_outbox(N, within=30)
    time.sleep(max(0.0, began + OUTAGE - time.monotonic()))
    assert agent.outbox_count() == N
    assert smtp_server.received() == []
    assert alert_indexes(agent, MAIL_RULE) == set(range(1, N + 1))

    back = time.monotonic()
    smtp_server.start()
    assert_exactly_once(smtp_server, set(range(1, N + 1)), within=60, settle=5)
    print(f"\n{N} mails delivered {time.monotonic() - back - 5:.1f}s after the server returned")
    assert agent.outbox_count() == 0
    assert agent.metric("netalert_mail_sent_total") == N
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]


@pytest.mark.timeout(300)
def test_kill9_in_60s_outage_then_restart_each_of_500_mailed_once(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    agent.start()
    began = time.monotonic()
    send_traps(agent.traps_port, traps(1, N // 2), seconds=25.0)
    agent.wait_outbox(N // 2, within=30)
    agent.kill9()  # no drain: whatever is not committed is lost with the process
    assert agent.outbox_count() == N // 2
    agent.start()
    # the device keeps sending; the restarted agent picks up where the first one stopped
    send_traps(agent.traps_port, traps(N // 2 + 1, N), seconds=25.0)
    agent.wait_outbox(N, within=30)
    time.sleep(max(0.0, began + OUTAGE - time.monotonic()))
    assert agent.outbox_count() == N  # nothing queued twice by the restart
    assert smtp_server.received() == []

    smtp_server.start()
    assert_exactly_once(smtp_server, set(range(1, N + 1)), within=60, settle=5)
    assert agent.outbox_count() == 0
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]
