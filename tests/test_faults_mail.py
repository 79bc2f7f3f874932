"""Fault tests, mail path: SMTP down while alerts fire, and kill -9 during the outage.

A real `netalert run` subprocess, fed by real trap datagrams; a trap rule whose
key (ifIndex) makes each trap its own alert, each alert its own group
(``group_by = ["..."]``, ``group_wait = "0s"``), so N traps mean N mails. The
aiosmtpd sink counts what it accepted by Message-ID and by the alert each mail
names. The soak variants (500 alerts, 60 s outage) are in tests/soak/.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fault_checks import MAIL_RULE, assert_exactly_once, mail_config, wait_mail
from tests.support.faults import AgentProcess, alert_indexes, link_down, send_traps
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer

N = 50
OUTAGE = 5.0  # seconds the SMTP server is down, counted from the first trap
STREAM_MAX = 3_000  # traps the mid-burst test sends at most (a minute at 50 a second)


@pytest.fixture
def agent(tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path) -> Iterator[AgentProcess]:
    """The agent of ``mail_agent``, receiving its traps itself (``workers = 1``: these tests
    are about the mail path; a trap worker is another Python start, about a second of CPU)."""
    traps, http = free_udp_port(), free_tcp_port()
    text = mail_config(traps=traps, smtp=smtp_server.port, http=http, workers=1)
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    proc.cleanup()


def test_smtp_down_while_alerts_fire_each_mailed_once(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    agent.start()
    began = time.monotonic()
    send_traps(agent.traps_port, [link_down(i) for i in range(1, N + 1)], seconds=1.0)
    agent.wait_outbox(N, within=60)
    # the sender keeps failing to connect; nothing is dropped or queued twice meanwhile
    time.sleep(max(0.0, began + OUTAGE - time.monotonic()))
    assert agent.outbox_count() == N
    assert "smtp_connect_failed" in agent.log()
    assert smtp_server.received() == []
    assert alert_indexes(agent, MAIL_RULE) == set(range(1, N + 1))

    back = time.monotonic()
    smtp_server.start()
    wait_mail(smtp_server, N, within=20)
    drained = time.monotonic() - back
    assert_exactly_once(smtp_server, set(range(1, N + 1)))
    assert agent.outbox_count() == 0
    assert agent.metric("netalert_mail_sent_total") == N
    # retry_max = 1s: the whole backlog is out within a few seconds of the server's return
    assert drained < 10, drained
    code, _ = agent.terminate()
    assert code == 0, agent.log()


def test_kill9_during_outage_then_restart_each_mailed_once(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    agent.start()
    send_traps(agent.traps_port, [link_down(i) for i in range(1, N + 1)], seconds=1.0)
    agent.wait_outbox(N, within=60)
    agent.kill9()
    assert agent.outbox_count() == N  # committed before any SMTP attempt: survives SIGKILL

    agent.start()  # the server is still down
    time.sleep(2.0)
    # the restarted agent rebuilt its groups from the stored alerts; the
    # notification log keeps it from queueing them a second time
    assert agent.outbox_count() == N
    smtp_server.start()
    assert_exactly_once(smtp_server, set(range(1, N + 1)))
    assert agent.outbox_count() == 0
    code, _ = agent.terminate()
    assert code == 0, agent.log()


def test_kill9_mid_burst_every_recorded_alert_mailed_once(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    """SIGKILL lands while traps are still being turned into alerts and outbox rows.

    Whatever the agent had recorded (an alert stored, its mail maybe not yet
    queued) is mailed exactly once after the restart; traps still in the
    socket buffer at the kill are gone with the process (UDP), so the expected
    set is read from the state database after the kill. The traps (ifIndex 1, 2, ...,
    50 a second) keep coming until the kill, so it lands mid-burst however slowly a
    loaded machine runs the agent or this test.
    """
    smtp_server.stop()
    agent.start()
    stop = threading.Event()
    sent: list[int] = []

    def stream() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for index in range(1, STREAM_MAX + 1):
                if stop.is_set():
                    return
                sock.sendto(link_down(index), ("127.0.0.1", agent.traps_port))
                sent.append(index)
                stop.wait(1 / 50)

    sender = threading.Thread(target=stream)
    sender.start()
    try:
        agent.wait_outbox(N // 3, within=60)
        mid_burst = sender.is_alive()
        agent.kill9()
    finally:
        stop.set()
        sender.join(timeout=10)
    assert mid_burst, f"all {len(sent)} traps were sent before the kill"
    recorded = alert_indexes(agent, MAIL_RULE)
    queued = agent.outbox_count()
    assert N // 3 <= queued <= len(recorded), (queued, len(recorded))
    assert recorded <= set(sent), sorted(recorded - set(sent))

    agent.start()
    agent.wait_outbox(len(recorded), within=60)
    time.sleep(1.0)
    assert agent.outbox_count() == len(recorded)
    smtp_server.start()
    assert_exactly_once(smtp_server, recorded)
    assert agent.outbox_count() == 0
    code, _ = agent.terminate()
    assert code == 0, agent.log()
