"""Fault tests: the trap → committed outbox path under a burst, in a real `netalert run`.

The agent receives a burst of v2c linkDown traps, each a new alert in its own
group (``group_by = ["..."]``, ``group_wait = "0s"``), so each trap becomes one
mail. The SMTP server accepts the connection and never greets, so the sender
sits waiting on its first message and writes nothing meanwhile: every
transaction the test sees is the intake's.

The -shm file's WAL index tells how much of the log was copied back into the
database (checkpointed). /metrics tells what the garbage collector froze.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faults import AgentProcess, link_down, send_traps
from tests.support.order import LOAD
from tests.support.ports import free_tcp_port, free_udp_port

BURST = 300
RULE = "BurstLinkDown"

_CONFIG = """
[agent]
state_dir = "state"
http = "127.0.0.1:{http}"
drain_timeout = "1s"

[traps]
listen = ["127.0.0.1:{traps}"]
allow = ["127.0.0.0/8"]
# storm control out of the way: every trap must become an alert
storm_rate = 1000000.0
storm_burst = 1000000
storm_trap_rate = 1000000.0
storm_trap_burst = 1000000

[[rules]]
name = "{rule}"
trap = "IF-MIB::linkDown"
key = ["ifIndex"]
severity = "warning"
summary = "burst ifIndex={{{{ ifIndex }}}}"

[smtp]
host = "127.0.0.1"
port = {smtp}
from = "netalert <netalert@example.org>"
timeout = "60s"

[[routes]]
to = ["noc@example.org"]
group_by = ["..."]
group_wait = "0s"
"""


@pytest.fixture
def silent_smtp() -> Iterator[int]:
    """A TCP port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.fixture
def agent(tmp_path: Path, silent_smtp: int, mib_cache: Path) -> Iterator[AgentProcess]:
    http, traps = free_tcp_port(), free_udp_port()
    text = _CONFIG.format(http=http, traps=traps, smtp=silent_smtp, rule=RULE)
    proc = AgentProcess(tmp_path, text, http, mib_cache, traps_port=traps)
    yield proc
    proc.cleanup()


def wal_commits(db: Path) -> tuple[int, tuple[int, int]]:
    """Commit frames in the current generation of ``db``'s WAL, and that generation's salts."""
    data = (db.parent / (db.name + "-wal")).read_bytes()
    if len(data) < 32:
        return 0, (0, 0)
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = struct.unpack(">II", data[16:24])
    commits = 0
    offset = 32
    while offset + 24 + page_size <= len(data):
        _page, size_after, salt1, salt2 = struct.unpack(">4I", data[offset : offset + 16])
        if (salt1, salt2) != salts:
            break  # a frame of an earlier generation: the log was rewound before it
        commits += size_after != 0
        offset += 24 + page_size
    return commits, salts


def wal_backlog(db: Path) -> tuple[int, int]:
    """(frames in the WAL, frames of them copied into the database) from the -shm index."""
    shm = (db.parent / (db.name + "-shm")).read_bytes()[:136]
    max_frame = struct.unpack("=I", shm[16:20])[0]
    backfilled = struct.unpack("=I", shm[96:100])[0]
    return max_frame, backfilled


def outbox_rows(agent: AgentProcess) -> int:
    return int(agent.query("SELECT COUNT(*) FROM outbox")[0][0])


def wait_rows(agent: AgentProcess, count: int, *, within: float) -> None:
    deadline = time.monotonic() + within
    while outbox_rows(agent) < count:
        assert agent.proc is not None and agent.proc.poll() is None, agent.log()[-3000:]
        assert time.monotonic() < deadline, (outbox_rows(agent), agent.log()[-3000:])
        time.sleep(0.05)


@LOAD  # how many traps one loop turn finds depends on the CPU the agent gets
def test_a_burst_commits_per_loop_turn_not_per_trap(agent: AgentProcess) -> None:
    agent.start()
    db = agent.state / "netalert.db"
    send_traps(agent.traps_port, [link_down(10_000 + i) for i in range(3)])
    wait_rows(agent, 3, within=20)
    reader = sqlite3.connect(db, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM alerts").fetchone()  # holds the log from rewinding
        before, salts = wal_commits(db)
        send_traps(agent.traps_port, [link_down(1 + i) for i in range(BURST)])
        wait_rows(agent, 3 + BURST, within=60)
        time.sleep(0.5)  # alert rows written after the last mail's, if any
        after, salts_after = wal_commits(db)
    finally:
        reader.execute("COMMIT")
        reader.close()
    commits = after if salts_after != salts else after - before
    print(f"{BURST} traps -> {commits} transactions")
    # before: one transaction for each trap's alert and another for its mail (2 per trap)
    assert commits <= BURST // 5, commits
    # every mail committed with its notification-log entry, and its alert
    firing: set[str] = set()
    for (told,) in agent.query("SELECT firing FROM nflog"):
        firing |= set(json.loads(str(told)))
    alerts = {fp for (fp,) in agent.query(f"SELECT fingerprint FROM alerts WHERE rule = '{RULE}'")}
    assert len(firing) == 3 + BURST and firing <= alerts
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]


def test_a_burst_of_alerts_is_frozen_out_of_the_collectors_walk(agent: AgentProcess) -> None:
    agent.start()
    start = agent.metric("netalert_gc_frozen_objects")
    send_traps(agent.traps_port, [link_down(1 + i) for i in range(BURST)])
    wait_rows(agent, BURST, within=60)
    # each alert keeps tracked objects: within a few ticks they are frozen too
    deadline = time.monotonic() + 5
    frozen = agent.metric("netalert_gc_frozen_objects")
    while frozen < start + BURST and time.monotonic() < deadline:
        time.sleep(0.2)
        frozen = agent.metric("netalert_gc_frozen_objects")
    assert frozen >= start + BURST, (start, frozen)
    status, body = agent.get("/metrics")
    assert status == 200
    counts = re.search(r"^netalert_gc_pause_seconds_count (\S+)$", body, re.MULTILINE)
    assert counts is not None and float(counts.group(1)) >= 1, body[-2000:]
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]


def test_the_wal_is_checkpointed_when_the_agent_is_idle(agent: AgentProcess) -> None:
    agent.start()
    db = agent.state / "netalert.db"
    send_traps(agent.traps_port, [link_down(1 + i) for i in range(BURST)])
    wait_rows(agent, BURST, within=60)
    deadline = time.monotonic() + 5
    frames, backfilled = wal_backlog(db)
    while backfilled < frames and time.monotonic() < deadline:
        time.sleep(0.1)
        frames, backfilled = wal_backlog(db)
    print(f"WAL: {frames} frames, {backfilled} checkpointed")
    # before: SQLite checkpoints only inside a commit, once 1,000 pages are waiting
    assert frames > 0 and backfilled == frames, (frames, backfilled)
    assert agent.metric("netalert_state_checkpoints_total") >= 1
    code, _ = agent.terminate()
    assert code == 0, agent.log()[-3000:]
