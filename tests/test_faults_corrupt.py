"""Fault tests: a damaged state database stops `netalert run` with one clear line.

The database is made by the agent's own stages (alerts, outbox, notification
log, silences), then damaged the ways disks and people damage files: a page
overwritten with garbage, the file truncated to 0 bytes. `netalert run` exits 1
within seconds with one line that names the file and says what to do, and no
traceback; ``netalert run --recover`` moves the damaged file aside as
``netalert.db.corrupt-TIMESTAMP`` (saying so in the log) and starts fresh.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netalert.alerts.store import SqliteAlertStore
from netalert.mail.outbox import Outbox
from netalert.notify.nflog import NotificationLog
from netalert.notify.silences import SilenceStore
from netalert.state import open_database
from tests.support.faults import ROOT, AgentProcess
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.shared import python_path

CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"

[traps]
# the agent receives the traps itself: not a test of the trap workers (each a Python
# start; their tests: test_traps_workers*.py)
workers = 1
listen = ["127.0.0.1:{traps}"]
allow = ["127.0.0.0/8"]

[smtp]
host = "127.0.0.1"
port = 9
"""
PAGE = 4096


def make_state(state: Path) -> Path:
    """A state database as an agent leaves it: every table, a few rows."""
    db = open_database(state)
    SqliteAlertStore(db)
    outbox = Outbox(db)
    NotificationLog(db)
    SilenceStore(db)
    for n in range(20):
        outbox.enqueue_raw(
            b"Subject: x\r\n\r\n" + bytes(2000),
            sender="a@example.org",
            recipients=[f"r{n}@example.org"],
            message_id=f"<m{n}@test>",
        )
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return state / "netalert.db"


def run_agent(directory: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "NOTIFY_SOCKET": "", "PYTHONPATH": python_path(ROOT)}
    config = directory / "config.toml"
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "netalert", "run", "-c", str(config), *args],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=directory,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the agent kept running on the damaged database: {exc.stderr!r}")
    return done, time.monotonic() - started


def one_line(done: subprocess.CompletedProcess[str], db: Path) -> str:
    """Exit 1, no traceback, exactly one error line naming ``db`` and ``--recover``."""
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output, output
    errors = [line for line in done.stderr.splitlines() if not line.startswith("level=")]
    assert len(errors) == 1, done.stderr
    [line] = errors
    assert line.startswith("netalert: "), line
    assert str(db) in line, line
    assert "--recover" in line, line
    return line


@pytest.fixture
def agent(tmp_path: Path, mib_cache: Path) -> Iterator[AgentProcess]:
    http = free_tcp_port()
    text = CONFIG.format(http=http, traps=free_udp_port())
    proc = AgentProcess(tmp_path, text, http, mib_cache)
    proc.config.write_text(text)
    shutil.copytree(mib_cache, proc.state / "mibs")
    yield proc
    proc.cleanup()


def test_damaged_page_is_one_line_and_exit_1(agent: AgentProcess) -> None:
    db = make_state(agent.state)
    with db.open("r+b") as fh:  # the schema_versions table's page and the next ones
        fh.seek(PAGE)
        fh.write(b"\xa5" * PAGE * 3)
    done, took = run_agent(agent.directory)
    line = one_line(done, db)
    assert "damaged" in line, line
    assert took < 15, took


def test_empty_database_file_is_reported_not_reused(agent: AgentProcess) -> None:
    db = make_state(agent.state)
    db.write_bytes(b"")  # what a lost write or a botched copy leaves
    done, _ = run_agent(agent.directory)
    line = one_line(done, db)
    assert "0 bytes" in line, line


def test_recover_moves_the_damaged_file_aside_and_starts_fresh(agent: AgentProcess) -> None:
    db = make_state(agent.state)
    with db.open("r+b") as fh:
        fh.seek(PAGE)
        fh.write(b"\xa5" * PAGE * 3)
    damaged = db.read_bytes()
    agent.args = ["--recover"]
    agent.start()
    moved = sorted(agent.state.glob("netalert.db.corrupt-*"))
    assert [p.name for p in moved if not p.name.endswith(("-wal", "-shm"))], moved
    [kept] = [p for p in moved if not p.name.endswith(("-wal", "-shm"))]
    assert kept.read_bytes() == damaged
    log = agent.log()
    assert "state_recovered" in log and kept.name in log, log
    assert agent.outbox_count() == 0  # a fresh database with every table
    code, _ = agent.terminate()
    assert code == 0, agent.log()

    assert agent.query("PRAGMA quick_check") == [("ok",)]


def test_recover_on_a_healthy_database_changes_nothing(agent: AgentProcess) -> None:
    make_state(agent.state)
    agent.args = ["--recover"]
    agent.start()
    code, _ = agent.terminate()
    assert code == 0, agent.log()
    assert list(agent.state.glob("netalert.db.corrupt-*")) == []
    assert "state_recovered" not in agent.log()
    assert agent.outbox_count() == 20
