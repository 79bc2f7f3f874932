"""Soak: 50,000 traps in 5 s; /healthz answers within 100 ms throughout; the storm is summarised.

The issue's scale of tests/test_faults_flood.py: 10,000 traps/s from one source
(a separate sender process), /healthz probed every 50 ms over a new connection.
"""

from __future__ import annotations

import pytest

from tests.support.fault_checks import check_flood
from tests.support.faults import AgentProcess, flood


@pytest.fixture
def agent(flood_agent: AgentProcess) -> AgentProcess:
    return flood_agent


@pytest.mark.timeout(300)
def test_50000_traps_in_5s(agent: AgentProcess) -> None:
    agent.start()
    report = flood(agent, agent.traps_port, 50_000, 5.0)
    figures = check_flood(agent, report, 50_000)
    print(f"\nflood 50,000 in 5 s: {figures}")
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]
