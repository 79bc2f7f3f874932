"""DeviceUnreachable as a real ``netalert run`` shows it, against a real snmpd that stops.

One lost poll must not page anybody: the alert fires after ``[agent]
unreachable_after`` consecutive polls without an answer (default 2), with
``unreachable_severity`` (default critical). While the device does not answer,
the status page shows no response time (the last one is stale), and every poll,
answered or not, lands in ``netalert_poll_duration_seconds``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.faults import AgentProcess, metric_values
from tests.support.ports import free_tcp_port
from tests.support.smtp import SmtpServer
from tests.support.snmpd import Snmpd, SnmpdFactory

CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
{agent}

[snmp]
timeout = "300ms"
retries = 0
interval = "1s"
jitter = 0.0

[[devices]]
name = "edge"
address = "{device}"
collect = ["system"]

[collect.system]
get = ["SNMPv2-MIB::sysName.0"]

[traps]
enabled = false

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"

[[routes]]
to = ["noc@example.org"]
group_wait = "0s"
"""

AgentFactory = Callable[[str], AgentProcess]


@pytest.fixture
def device(snmpd_factory: SnmpdFactory) -> Snmpd:
    return snmpd_factory(sys_name="edge")


@pytest.fixture
def agent_factory(
    tmp_path: Path, device: Snmpd, smtp_server: SmtpServer, mib_cache: Path
) -> Iterator[AgentFactory]:
    made: list[AgentProcess] = []

    def make(agent_lines: str) -> AgentProcess:
        http = free_tcp_port()
        text = CONFIG.format(
            http=http, agent=agent_lines, device=device.address, smtp=smtp_server.port
        )
        proc = AgentProcess(tmp_path, text, http, mib_cache)
        made.append(proc)
        proc.start()
        return proc

    yield make
    for proc in made:
        proc.cleanup()


def api(agent: AgentProcess, path: str) -> Any:
    status, body = agent.get(path)
    assert status == 200, body
    return json.loads(body)


def wait_for(what: Callable[[], Any], agent: AgentProcess, within: float = 15.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = what()
        if found:
            return found
        assert time.monotonic() < deadline, agent.log()[-3000:]
        time.sleep(0.05)


def unreachable(agent: AgentProcess) -> list[dict[str, Any]]:
    alerts = api(agent, "/api/alerts")["alerts"]
    return [a for a in alerts if a["rule"] == "DeviceUnreachable" and a["state"] == "firing"]


def edge(agent: AgentProcess) -> dict[str, Any]:
    devices = {d["name"]: d for d in api(agent, "/api/status")["devices"]}
    return dict(devices["edge"])


def test_unreachable_waits_for_two_lost_polls_and_hides_the_stale_response_time(
    agent_factory: AgentFactory, device: Snmpd, smtp_server: SmtpServer
) -> None:
    agent = agent_factory("")
    answered = wait_for(lambda: (d := edge(agent))["response_ms"] is not None and d, agent)
    assert answered["reachable"] is True and answered["result"] == "ok"

    device.stop()
    (alert,) = wait_for(lambda: unreachable(agent), agent)
    # it fired on the second poll without an answer, not on the first
    assert alert["summary"].startswith("edge did not answer 2 SNMP polls in a row ("), alert
    assert alert["severity"] == "critical" and alert["labels"]["severity"] == "critical"
    status = edge(agent)
    assert (status["reachable"], status["result"], status["response_ms"]) == (
        False,
        "timeout",
        None,
    )
    assert "no answer within 0.3s" in status["last_error"]
    mails = wait_for(lambda: smtp_server.received(), agent)
    assert "DeviceUnreachable" in str(mails[0].parsed()["Subject"])

    body = agent.get("/metrics")[1]
    polls = metric_values(body, "netalert_polls_total")
    assert polls['result="timeout"'] >= 2 and polls['result="ok"'] >= 1, polls
    count = metric_values(body, "netalert_poll_duration_seconds_count")[""]
    assert count == sum(polls.values()), (count, polls)
    buckets = dict(
        re.findall(r'^netalert_poll_duration_seconds_bucket\{le="(.+?)"\} (\S+)$', body, re.M)
    )
    assert float(buckets["+Inf"]) == count, buckets
    assert metric_values(body, "netalert_poll_duration_seconds_sum")[""] > 0

    device.start()
    wait_for(lambda: not unreachable(agent), agent)
    assert wait_for(lambda: (d := edge(agent))["response_ms"] is not None and d, agent)
    code, _ = agent.terminate()
    assert code == 0, agent.log()


def test_unreachable_after_and_severity_are_configurable(
    agent_factory: AgentFactory, device: Snmpd
) -> None:
    agent = agent_factory('unreachable_after = 1\nunreachable_severity = "warning"')
    wait_for(lambda: edge(agent)["reachable"], agent)
    device.stop()
    (alert,) = wait_for(lambda: unreachable(agent), agent)
    assert alert["summary"].startswith("edge did not answer 1 SNMP poll ("), alert
    assert alert["severity"] == "warning" and alert["labels"]["severity"] == "warning"
