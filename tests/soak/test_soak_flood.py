"""Soak: 50,000 traps in 5 s; /healthz answers within 100 ms throughout; the storm is summarised.

The issue's scale of tests/test_faults_flood.py: 10,000 traps/s from one source
(a separate sender process), /healthz probed every 50 ms over a new connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fault_checks import check_flood, flood_config
from tests.support.faults import AgentProcess, flood
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer


@pytest.fixture
def agent(tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path) -> Iterator[AgentProcess]:
    http, traps = free_tcp_port(), free_udp_port()
    text = flood_config(traps=traps, smtp=smtp_server.port, http=http)
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    proc.cleanup()


@pytest.mark.timeout(300)
def test_50000_traps_in_5s(agent: AgentProcess) -> None:
    agent.start()
    report = flood(agent, agent.traps_port, 50_000, 5.0)
    figures = check_flood(agent, report, 50_000)
    print(f"\nflood 50,000 in 5 s: {figures}")
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]
