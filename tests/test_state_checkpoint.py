"""WAL checkpoints from the checkpointer's own connection, in its own thread."""

from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path

from netalert.metrics import MetricSample
from netalert.state.checkpoint import Checkpointer
from netalert.state.db import Database, open_database


def backlog(db: Path) -> tuple[int, int]:
    """(frames in the WAL, frames copied back) from the -shm index."""
    shm = (db.parent / (db.name + "-shm")).read_bytes()[:136]
    return struct.unpack("=I", shm[16:20])[0], struct.unpack("=I", shm[96:100])[0]


def fill(tmp_path: Path, rows: int) -> Database:
    """A database with ``rows`` rows in its WAL; keep it open (the last close checkpoints)."""
    db = open_database(tmp_path)
    db.conn.execute("PRAGMA wal_autocheckpoint = 0")  # only the checkpointer copies
    with db.transaction() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (data BLOB)")
        conn.executemany("INSERT INTO t VALUES (?)", [(os.urandom(3000),) for _ in range(rows)])
    return db


def samples(checkpointer: Checkpointer) -> dict[str, float]:
    return {s.name: s.value for s in checkpointer.source()() if isinstance(s, MetricSample)}


def test_a_checkpoint_copies_the_log_back_and_counts_it(tmp_path: Path) -> None:
    db = fill(tmp_path, 200)
    assert db.path is not None
    path = db.path
    frames, copied = backlog(path)
    assert frames > 100 and copied == 0
    checkpointer = Checkpointer(path, interval=1.0)
    checkpointer.checkpoint()
    assert backlog(path) == (frames, frames)
    checkpointer.checkpoint()  # nothing new: not counted again
    assert samples(checkpointer) == {
        "netalert_state_checkpoints_total": 1,
        "netalert_state_checkpoint_failures_total": 0,
        "netalert_state_wal_pages": frames,
    }
    checkpointer.close()
    db.close()


async def test_run_checkpoints_every_interval_off_the_loop(tmp_path: Path) -> None:
    db = fill(tmp_path, 50)
    assert db.path is not None
    path = db.path
    checkpointer = Checkpointer(path, interval=0.05)
    task = asyncio.get_running_loop().create_task(checkpointer.run())
    for _ in range(100):
        await asyncio.sleep(0.05)
        if checkpointer.stats.checkpoints:
            break
    frames, copied = backlog(path)
    assert checkpointer.stats.checkpoints == 1 and frames == copied > 0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    checkpointer.checkpoint()  # closed: does nothing, raises nothing
    assert checkpointer.stats.failures == 0
    db.close()
