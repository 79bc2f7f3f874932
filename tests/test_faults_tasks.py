"""Fault tests: a stage that fails does not take the agent down.

The fault is real: another process renames a table of the live state database
(``nflog``, which every notification flush reads), as a botched manual repair or a
downgrade would. Every flush then raises ``sqlite3.OperationalError`` from the
trap path (inside the trap socket's callback) and from the ticker task. The agent
must keep running: no "Exception in callback" from asyncio, the ticker restarted
with backoff and counted in ``netalert_task_failures_total{task}``, one log line
per kind of failure; once the table is back, every alert is mailed exactly once.

Also: a malformed ``engine_id`` file (a ``ValueError`` at start) is one line and
exit 1, not a traceback.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fault_checks import assert_exactly_once, mail_config
from tests.support.faults import ROOT, AgentProcess, link_down, metric_values, send_traps
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.shared import python_path
from tests.support.smtp import SmtpServer

N = 5
# a v3 user makes the receiver load (or create) its engine ID from state_dir/engine_id
V3_USER = """
[[traps.users]]
user = "trapper"
auth_protocol = "SHA"
auth_password = "authpass123"
"""


@pytest.fixture
def agent(tmp_path: Path, smtp_server: SmtpServer, mib_cache: Path) -> Iterator[AgentProcess]:
    traps, http = free_udp_port(), free_tcp_port()
    text = mail_config(traps=traps, smtp=smtp_server.port, http=http).replace(
        'group_wait = "0s"', 'group_wait = "0s"\ngroup_interval = "1s"'
    )
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    proc.cleanup()


def rename(agent: AgentProcess, old: str, new: str) -> None:
    db = sqlite3.connect(agent.state / "netalert.db", timeout=10, isolation_level=None)
    try:
        db.execute(f"ALTER TABLE {old} RENAME TO {new}")
    finally:
        db.close()


def task_failures(agent: AgentProcess) -> dict[str, float]:
    return metric_values(agent.get("/metrics")[1], "netalert_task_failures_total")


def test_failing_flush_is_counted_retried_and_survived(
    agent: AgentProcess, smtp_server: SmtpServer
) -> None:
    agent.start()
    rename(agent, "nflog", "nflog_away")
    send_traps(agent.traps_port, [link_down(i) for i in range(1, N + 1)], seconds=0.5)
    deadline = time.monotonic() + 15
    while True:
        assert agent.proc is not None and agent.proc.poll() is None, agent.log()
        try:
            if task_failures(agent).get('task="ticker"', 0) >= 2:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, agent.log()
        time.sleep(0.1)
    failures = task_failures(agent)
    assert failures.get('task="traps"', 0) >= 1, failures
    log = agent.log()
    assert "Exception in callback" not in log, log
    assert "Traceback" not in log, log
    ticker_lines = [
        line for line in log.splitlines() if "task_failed" in line and "task=ticker" in line
    ]
    assert len(ticker_lines) == 1, ticker_lines  # retried, counted, said once
    assert "nflog" in ticker_lines[0], ticker_lines[0]
    assert agent.get("/healthz")[0] in (200, 503)  # answering

    rename(agent, "nflog_away", "nflog")
    assert_exactly_once(smtp_server, set(range(1, N + 1)), within=30)
    code, _ = agent.terminate()
    assert code == 0, agent.log()


def test_bad_engine_id_file_is_one_line_and_exit_1(tmp_path: Path, mib_cache: Path) -> None:
    traps, http = free_udp_port(), free_tcp_port()
    text = mail_config(traps=traps, smtp=9, http=http) + V3_USER
    agent = AgentProcess(tmp_path, text, http, mib_cache)
    agent.config.write_text(agent.config_text)
    agent.state.mkdir()
    engine_file = agent.state / "engine_id"
    engine_file.write_text("not hex at all\n")
    env = {**os.environ, "NOTIFY_SOCKET": "", "PYTHONPATH": python_path(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "netalert", "run", "-c", str(agent.config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output, output
    errors = [line for line in done.stderr.splitlines() if not line.startswith("level=")]
    assert len(errors) == 1, done.stderr
    assert str(engine_file) in errors[0], errors[0]
