"""A stop with a saturated event loop is clean: no traceback from the poll scheduler.

1,000 devices polled every 100 ms (against a loopback port nothing answers) keep the
agent's loop busy, so at SIGTERM the scheduler has handed out runs whose tasks have
not started yet. Stopping cancels them; that used to log one "Error running job ...
CancelledError" traceback per device (APScheduler's executor reports every
cancelled task as a failed job). A stop must leave one closing line of the poller
instead, with the cancelled runs counted in it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faults import AgentProcess
from tests.support.ports import free_tcp_port, free_udp_port

DEVICES = 1000


def busy_config(*, state: Path, http: int, dead: int) -> str:
    devices = "".join(
        f'[[devices]]\nname = "d{i}"\naddress = "127.0.0.1"\ncollect = ["sys"]\n'
        for i in range(DEVICES)
    )
    return f"""[agent]
state_dir = "{state}"
http = "127.0.0.1:{http}"

[snmp]
port = {dead}
interval = "100ms"
timeout = "1s"
retries = 0
max_in_flight = 4

[collect.sys]
get = ["SNMPv2-MIB::sysUpTime.0"]

[traps]
enabled = false

[smtp]
host = "127.0.0.1"
port = {free_tcp_port()}

[[routes]]
to = ["noc@example.org"]

{devices}"""


@pytest.fixture
def busy_agent(tmp_path: Path, mib_cache: Path) -> Iterator[AgentProcess]:
    http, dead = free_tcp_port(), free_udp_port()
    text = busy_config(state=tmp_path / "state", http=http, dead=dead)
    proc = AgentProcess(tmp_path, text, http, mib_cache)
    yield proc
    proc.cleanup()


def test_stop_with_a_busy_loop_logs_no_traceback(busy_agent: AgentProcess) -> None:
    busy_agent.start()
    time.sleep(3.0)  # every device has been due many times; the loop is behind
    code, _ = busy_agent.terminate(within=30.0)
    log = busy_agent.log()
    assert code == 0, log[-4000:]
    noisy = [
        line
        for line in log.splitlines()
        if any(word in line for word in ("Traceback", "Error running job", "CancelledError"))
    ]
    assert not noisy, f"{len(noisy)} lines, the first: {noisy[0][:2000]}"
    stopped = re.findall(r"^.*event=poller_stopped .*$", log, re.MULTILINE)
    assert len(stopped) == 1, stopped
    assert re.search(r" cancelled=\d+", stopped[0]), stopped[0]
