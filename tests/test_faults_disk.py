"""Fault tests: the state disk fills up while `netalert run` is receiving traps.

The state directory is a 12 MB filesystem (a real tmpfs when the test may mount
one, else SQLite's page limit through a test hook: see tests/support/disk.py).
The agent starts, the disk is filled, 10 linkDown traps arrive (each its own
alert and its own mail). While the disk is full the agent keeps running and
receiving, holds what it could not write, says so on /healthz (503 with the
reason) and in one rate-limited log line naming the database; once space is
back, every alert is stored and mailed exactly once, without a restart.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.disk import Disk, PageLimitDisk, TmpfsDisk, can_mount_tmpfs
from tests.support.fault_checks import MAIL_RULE, assert_exactly_once, mail_config
from tests.support.faults import AgentProcess, alert_indexes, link_down, metric_values, send_traps
from tests.support.order import timing
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.smtp import SmtpServer

pytestmark = timing("disk")  # the agent holds and retries within wall-time bounds

N = 10


def wait_for(what: str, check: object, *, within: float, agent: AgentProcess) -> None:
    """Polls ``check()`` until it is true; fails with the agent's log otherwise."""
    assert callable(check)
    deadline = time.monotonic() + within
    while True:
        try:
            if check():
                return
        except OSError:  # the agent is not answering (yet): the checks below say why
            pass
        assert agent.proc is not None and agent.proc.poll() is None, (
            f"agent exited while waiting for {what}:\n{agent.log()[-4000:]}"
        )
        assert time.monotonic() < deadline, f"{what} not within {within}s:\n{agent.log()[-4000:]}"
        time.sleep(0.1)


@pytest.fixture(params=["tmpfs", "page_limit"])
def disk_agent(
    request: pytest.FixtureRequest, tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path
) -> Iterator[tuple[AgentProcess, Disk]]:
    traps, http = free_udp_port(), free_tcp_port()
    text = mail_config(traps=traps, smtp=smtp_server.port, http=http)
    agent = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    disk: Disk
    if request.param == "tmpfs":
        if not can_mount_tmpfs(tmp_path / "probe"):
            pytest.skip("cannot mount a tmpfs here (not root); the page_limit variant runs")
        disk = TmpfsDisk(agent.state)
    else:
        disk = PageLimitDisk(agent.state, tmp_path)
    agent.env.update(disk.env)
    yield agent, disk
    agent.cleanup()
    disk.close()


def healthz(agent: AgentProcess) -> tuple[int, str]:
    return agent.get("/healthz", timeout=5.0)


def test_disk_full_holds_writes_then_mails_each_alert_once(
    disk_agent: tuple[AgentProcess, Disk], smtp_server: SmtpServer
) -> None:
    agent, disk = disk_agent
    agent.start()
    disk.fill()
    send_traps(agent.traps_port, [link_down(i) for i in range(1, N + 1)], seconds=1.0)

    # every trap was received; the writes wait in memory and /healthz says why
    wait_for(
        "10 traps received",
        lambda: (
            metric_values(agent.get("/metrics")[1], "netalert_traps_received_total").get(
                'version="2c"'
            )
            == N
        ),
        within=15,
        agent=agent,
    )
    wait_for("/healthz 503", lambda: healthz(agent)[0] == 503, within=15, agent=agent)
    status, reason = healthz(agent)
    assert status == 503
    assert "netalert.db" in reason and "full" in reason, reason
    assert agent.metric("netalert_state_writes_held") >= 1
    assert agent.metric("netalert_state_writable") == 0
    time.sleep(2.5)  # several retries fail meanwhile: the error line is not repeated
    log = agent.log()
    assert "Exception in callback" not in log, log
    assert "Traceback" not in log, log
    assert "task_failed" not in log, log
    failures = [line for line in log.splitlines() if "state_write_failed" in line]
    assert len(failures) == 1, failures
    assert str(agent.state / "netalert.db") in failures[0], failures[0]
    assert re.search(r"error=\"?database or disk is full", failures[0]), failures[0]

    disk.free()
    assert_exactly_once(smtp_server, set(range(1, N + 1)), within=30)
    assert alert_indexes(agent, MAIL_RULE) == set(range(1, N + 1))
    assert agent.outbox_count() == 0
    wait_for("/healthz 200", lambda: healthz(agent)[0] == 200, within=10, agent=agent)
    assert agent.metric("netalert_state_writes_held") == 0
    assert agent.metric("netalert_state_writable") == 1
    assert "state_writable" in agent.log()
    code, _ = agent.terminate()
    assert code == 0, agent.log()
    assert "Traceback" not in agent.log(), agent.log()


def test_disk_full_past_the_bound_sheds_oldest_and_counts(
    disk_agent: tuple[AgentProcess, Disk], smtp_server: SmtpServer
) -> None:
    """With room for 3 held writes, 10 alerts' mails shed the oldest (counted); the alerts
    stay in memory, so once space is back their groups are told at the next flush."""
    agent, disk = disk_agent
    agent.config_text = agent.config_text.replace(
        'drain_timeout = "2s"', 'drain_timeout = "2s"\nstate_hold_max = 3'
    ).replace('group_wait = "0s"', 'group_wait = "0s"\ngroup_interval = "1s"')
    agent.start()
    disk.fill()
    send_traps(agent.traps_port, [link_down(i) for i in range(1, N + 1)], seconds=1.0)
    wait_for(
        "writes shed",
        lambda: agent.metric("netalert_state_writes_shed_total") >= 1,
        within=15,
        agent=agent,
    )
    assert agent.metric("netalert_state_writes_held") <= 3
    disk.free()
    assert_exactly_once(smtp_server, set(range(1, N + 1)), within=30)
    code, _ = agent.terminate()
    assert code == 0, agent.log()
