"""Fault test: a trap flood must neither stall the agent nor go unreported.

10,000 v2c linkDown traps in 2 s from one source (5,000/s, a separate sender
process) into a real `netalert run`, while /healthz is probed every 50 ms over
a new connection each time: every probe answers 200 within 100 ms. Storm
control passes the first traps and folds the rest; the folded traps are
reported as storm events with their counts in /api/traps and in
``netalert_storm_folded_total``, and every trap is accounted for. The soak
variant (50,000 in 5 s) is in tests/soak/.
"""

from __future__ import annotations

import pytest

from tests.support.fault_checks import check_flood
from tests.support.faults import AgentProcess, flood
from tests.support.order import LOAD

pytestmark = LOAD  # /healthz latency during a trap flood


@pytest.fixture
def agent(flood_agent: AgentProcess) -> AgentProcess:
    return flood_agent


def test_trap_flood_keeps_healthz_fast_and_is_summarised(agent: AgentProcess) -> None:
    agent.start()
    report = flood(agent, agent.traps_port, 10_000, 2.0)
    figures = check_flood(agent, report, 10_000)
    print(f"flood 10,000 in 2 s: {figures}")
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]
