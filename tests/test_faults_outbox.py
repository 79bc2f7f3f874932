"""Fault test: mail stuck behind a tarpit still shows as waiting.

The SMTP server accepts the connection and never answers (tests/support/tarpit.py),
so the sender sits in its first attempt for the whole test. 20 alerts make 20
mails; /api/status and /metrics must say 20 are waiting: the count comes from
the outbox itself, not from how far the sender got.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fault_checks import mail_config
from tests.support.faults import AgentProcess, link_down, send_traps
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.tarpit import Tarpit

N = 20


@pytest.fixture
def agent(tmp_path: Path, tarpit: Tarpit, mib_cache: Path) -> Iterator[AgentProcess]:
    traps, http = free_udp_port(), free_tcp_port()
    # workers = 1: the agent receives the traps itself (this test is about the outbox)
    text = mail_config(traps=traps, smtp=tarpit.port, http=http, workers=1).replace(
        'retry_max = "1s"', 'retry_max = "1s"\ntimeout = "60s"'
    )
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    proc.cleanup()


def test_pending_mails_behind_a_tarpit_are_counted(agent: AgentProcess, tarpit: Tarpit) -> None:
    agent.start()
    send_traps(agent.traps_port, [link_down(i) for i in range(1, N + 1)], seconds=0.5)
    agent.wait_outbox(N, within=20)
    deadline = time.monotonic() + 10
    while tarpit.accepted == 0:  # the sender is now stuck waiting for a greeting
        assert time.monotonic() < deadline, agent.log()
        time.sleep(0.05)
    time.sleep(0.5)
    status, body = agent.get("/api/status")
    assert status == 200, body
    assert json.loads(body)["outbox"]["pending"] == N
    assert agent.metric("netalert_outbox_pending") == N
    code, _ = agent.terminate()
    assert code == 0, agent.log()
