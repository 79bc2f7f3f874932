"""Fault test: snmpd restarted while it is being polled must not fake a rate alert.

The device is net-snmp snmpd with a ``pass`` script serving ifInOctets.1 as a
Counter32 growing 1,000 octets/s, slow to answer (150 ms per call) so a poll
is in flight much of the time. Each restart of snmpd is a reboot as far as the
poller can tell: sysUpTime starts again from 0, and the counter comes back
about 2·10⁹ higher than before. Without reboot detection the first rate after
a restart would be ~10⁹ octets/s and ``rate(ifInOctets) > 1000000`` would
fire; the test restarts snmpd three times at different points of the poll
cycle and checks in the state database and the agent's log that it never did,
while the control rule ``rate(ifInOctets) > 100`` (the true rate is 1,000/s)
proves rates were computed all along.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netalert.poll.counters import agent_restarted
from tests.support.faults import AgentProcess
from tests.support.ports import free_tcp_port
from tests.support.smtp import SmtpServer
from tests.support.snmpd import PassScript, Snmpd, SnmpdFactory

IF_IN_OCTETS = ".1.3.6.1.2.1.2.2.1.10"

# The counter restarts with each snmpd process (each has its own start mark) and
# comes back 2e9 higher than the previous process left it, like a counter that
# a reboot both reset and moved: only the uptime tells that the device restarted.
COUNTER_SCRIPT = f"""#!{sys.executable}
import os, sys, time, pathlib

OID = "{IF_IN_OCTETS}"
here = pathlib.Path(__file__).resolve().parent


def snmpd_pid():
    pid = os.getppid()
    # net-snmp may run the script through a shell: go up to snmpd itself
    for _ in range(3):
        if pathlib.Path(f"/proc/{{pid}}/comm").read_text().strip() == "snmpd":
            return pid
        pid = int(pathlib.Path(f"/proc/{{pid}}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return os.getppid()


mark = here / f"counter-start-{{snmpd_pid()}}"
if not mark.exists():
    mark.write_text(repr(time.time()))
starts = len(list(here.glob("counter-start-*")))
busy = here / f"busy-{{os.getpid()}}"
busy.touch()  # the test restarts snmpd while such a file exists: mid-poll
time.sleep(0.15)
busy.unlink()
elapsed = time.time() - float(mark.read_text())
value = (2_000_000_000 * (starts - 1) + int(elapsed * 1000)) % 2**32
mode, oid = sys.argv[1], sys.argv[2]
wanted = [int(x) for x in oid.strip(".").split(".")]
first = [int(x) for x in (OID + ".1").strip(".").split(".")]
if (mode == "-g" and wanted == first) or (mode == "-n" and wanted < first):
    print(OID + ".1")
    print("counter")
    print(value)
"""

CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
device_unreachable = false

[snmp]
timeout = "1s"
retries = 0
interval = "1s"

[[devices]]
name = "edge"
address = "{device}"
collect = ["uptime", "octets"]

[collect.uptime]
get = ["SNMPv2-MIB::sysUpTime.0"]

[collect.octets]
walk = ["IF-MIB::ifInOctets"]

[traps]
enabled = false

[[rules]]
name = "FalseRate"
expr = "rate(ifInOctets) > 1000000"
severity = "critical"

[[rules]]
name = "TrueRate"
expr = "rate(ifInOctets) > 100"
severity = "info"

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"

[[routes]]
to = ["noc@example.org"]
group_wait = "0s"
"""


@pytest.fixture
def device(snmpd_factory: SnmpdFactory) -> Snmpd:
    return snmpd_factory(passes=[PassScript(IF_IN_OCTETS, COUNTER_SCRIPT, priority=10)])


@pytest.fixture
def agent(
    tmp_path: Path, device: Snmpd, smtp_server: SmtpServer, mib_cache: Path
) -> Iterator[AgentProcess]:
    http = free_tcp_port()
    text = CONFIG.format(http=http, device=device.address, smtp=smtp_server.port)
    proc = AgentProcess(tmp_path, text, http, mib_cache)
    yield proc
    proc.cleanup()


def fired(agent: AgentProcess, rule: str) -> list[str]:
    return [
        line
        for line in agent.log().splitlines()
        if " event=alert " in line and f"rule={rule}" in line
    ]


def polls(agent: AgentProcess) -> dict[str, float]:
    """``netalert_polls_total`` by result."""
    return {
        result: float(count)
        for result, count in re.findall(
            r'^netalert_polls_total\{result="(\w+)"\} (\S+)$',
            agent.get("/metrics")[1],
            re.MULTILINE,
        )
    }


def wait_mid_poll(device: Snmpd) -> None:
    """Returns while the agent's poll is inside the pass script (snmpd busy answering it)."""
    deadline = time.monotonic() + 10
    while not any(device.directory.glob("busy-*")):
        assert time.monotonic() < deadline, "no poll in flight within 10 s"
        time.sleep(0.005)


def test_snmpd_restarted_mid_poll_gives_no_false_rate_alert(
    agent: AgentProcess, device: Snmpd
) -> None:
    out = device.snmpget(f"{IF_IN_OCTETS}.1")
    assert "Counter32" in out or out.split()[-1].isdigit(), out
    agent.start()
    # the control rule fires once two polls gave a rate: rates are being computed
    deadline = time.monotonic() + 20
    while not fired(agent, "TrueRate"):
        assert time.monotonic() < deadline, agent.log()[-3000:]
        time.sleep(0.1)

    for _ in range(3):
        wait_mid_poll(device)
        device.restart()
        answered = polls(agent).get("ok", 0)
        deadline = time.monotonic() + 60
        while polls(agent).get("ok", 0) < answered + 2:  # two polls of the restarted agent
            assert time.monotonic() < deadline, (polls(agent), agent.log()[-3000:])
            time.sleep(0.1)
    # four snmpd processes served the counter, each start ~2e9 above the last one's
    assert len(list(device.directory.glob("counter-start-*"))) == 4
    value = int(device.snmpget(f"{IF_IN_OCTETS}.1").split()[-1])
    assert 6_000_000_000 % 2**32 <= value < 6_000_000_000 % 2**32 + 60_000, value

    status, body = agent.get("/api/alerts")
    assert status == 200
    rules = {a["rule"] for a in json.loads(body)["alerts"]}
    assert "TrueRate" in rules, rules
    assert "FalseRate" not in rules, rules
    assert agent.query("SELECT COUNT(*) FROM alerts WHERE rule = 'FalseRate'") == [(0,)]
    assert fired(agent, "FalseRate") == []
    # and the poller saw the restarts, rather than never polling across them
    # each restart cut a poll short (it timed out), and the poller went on across them
    done = polls(agent)
    assert done["timeout"] >= 3 and done["ok"] >= 8, done
    code, _ = agent.terminate()
    assert code == 0, agent.log()


@pytest.mark.parametrize(
    ("prev_up", "cur_up", "elapsed", "expected"),
    [
        (181, 194, 3.22, True),  # measured above: polled 1.8 s after a start, restarted again
        (181, 480, 3.0, False),  # the same agent, 3 s later
        (50, 250, 4.0, True),  # started 1.5 s after the previous poll
        (50, 420, 4.0, False),  # 0.3 s short of the wall clock: answer delay, not a restart
    ],
)
def test_restart_soon_after_a_start_is_seen(
    prev_up: int, cur_up: int, elapsed: float, expected: bool
) -> None:
    assert agent_restarted(prev_up, cur_up, elapsed) is expected
