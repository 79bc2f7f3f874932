"""`netalert run` with [traps] workers = 2: real senders, real workers, mail at aiosmtpd.

The sources 127.0.0.1 and 127.0.0.2 reach different workers (the kernel steers
by source address), so every check below crosses both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fault_checks import assert_exactly_once, mail_config
from tests.support.faults import AgentProcess, metric_values
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.procs import trap_workers
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.e2e

ENGINE = "8000000001020304"
SOURCES = ("127.0.0.1", "127.0.0.2")
USER = ["-v", "3", "-u", "shaaes", "-l", "authPriv", "-a", "SHA", "-A", "auth-shaaes"]
USER += ["-x", "AES", "-X", "priv-shaaes"]
_WORKERS = f"""
workers = 2

[[traps.users]]
user = "shaaes"
auth_protocol = "SHA"
auth_password = "auth-shaaes"
priv_protocol = "AES-128"
priv_password = "priv-shaaes"
engine_ids = ["{ENGINE}"]
"""


@pytest.fixture
def agent(tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path) -> Iterator[AgentProcess]:
    traps, http = free_udp_port(), free_tcp_port()
    text = mail_config(traps=traps, smtp=smtp_server.port, http=http)
    text = text.replace("storm_trap_burst = 1000000\n", "storm_trap_burst = 1000000\n" + _WORKERS)
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    proc.cleanup()


def _link_down(index: int) -> list[str]:
    return ["1.3.6.1.2.1.2.2.1.1", "i", str(index), "1.3.6.1.2.1.2.2.1.8", "i", "2"]


def _send(agent: AgentProcess, source: str, index: int, *argv: str) -> None:
    target = f"127.0.0.1:{agent.traps_port}"
    tail = ["", "1.3.6.1.6.3.1.1.5.3", *_link_down(index)]
    if argv[1:3] == ("-v", "1"):  # v1: enterprise, agent-addr, generic linkDown, uptime
        tail = ["1.3.6.1.4.1.8072.3.2.10", source, "2", "0", "4242", *_link_down(index)]
    done = subprocess.run(
        [argv[0], f"--clientaddr={source}", *argv[1:], target, *tail],
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr.decode()  # snmpinform: 1 without a Response


SENDERS = [
    ("snmptrap", "-v", "1", "-c", "public"),
    ("snmptrap", "-v", "2c", "-c", "public"),
    ("snmptrap", *USER, "-e", f"0x{ENGINE}"),
    ("snmpinform", "-v", "2c", "-c", "public", "-t", "3", "-r", "0"),
    ("snmpinform", *USER, "-t", "3", "-r", "0"),
]


def _workers(agent: AgentProcess) -> list[int]:
    """The agent's worker processes."""
    assert agent.proc is not None
    return trap_workers(agent.proc.pid)


def test_every_version_reaches_smtp_through_two_workers(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    agent.start()
    assert len(_workers(agent)) == 2
    indexes: set[int] = set()
    for n, source in enumerate(SOURCES):
        for m, sender in enumerate(SENDERS):
            index = 100 * (n + 1) + m
            _send(agent, source, index, *sender)
            indexes.add(index)
    assert_exactly_once(smtp_server, indexes)
    body = agent.get("/metrics")[1]
    assert metric_values(body, "netalert_trap_workers") == {"": 2.0}
    received = metric_values(body, "netalert_traps_received_total")
    assert received == {'version="1"': 2.0, 'version="2c"': 4.0, 'version="3"': 4.0}
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-4000:]


def test_a_killed_worker_is_restarted_and_later_traps_arrive(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    agent.start()
    victim, survivor = _workers(agent)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while metric_values(agent.get("/metrics")[1], "netalert_trap_worker_restarts_total") != {
        "": 1.0
    }:
        assert time.monotonic() < deadline, agent.log()[-4000:]
        time.sleep(0.1)
    for n, source in enumerate(SOURCES):  # one of them reaches the new worker
        _send(agent, source, n + 1, *SENDERS[1])
    assert_exactly_once(smtp_server, {1, 2})
    now = _workers(agent)
    assert survivor in now and victim not in now and len(now) == 2
    assert " event=trap_worker_exited " in agent.log()
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-4000:]
