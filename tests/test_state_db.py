"""The state database's own promises, on real SQLite files (no agent process needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from netalert.mail.outbox import Outbox
from netalert.state import Database, open_database

NORMAL = 1  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def enqueue(outbox: Outbox, n: int) -> None:
    outbox.enqueue_raw(
        b"Subject: x\r\n\r\nbody\r\n", sender="a@example.org", recipients=[f"b{n}@example.org"]
    )


def test_a_queued_mail_is_on_disk_when_enqueue_returns(tmp_path: Path) -> None:
    """WAL with synchronous=NORMAL may lose the last commits on power loss; an outbox row
    that lost its commit is a lost alert mail. Outside an event loop (the CLI), every
    enqueue is followed by an fsync of the WAL."""
    db = open_database(tmp_path)
    try:
        outbox = Outbox(db)
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == NORMAL
        enqueue(outbox, 1)
        enqueue(outbox, 2)
        assert db.writer.syncs == 2
        assert not db.writer.unsynced
    finally:
        db.close()


def test_in_the_agent_a_burst_of_mails_costs_one_sync(tmp_path: Path) -> None:
    """Group commit: the mails queued in one event-loop turn are synced together, before
    the loop runs anything else (the sender, which also syncs before any attempt)."""
    db = open_database(tmp_path)

    async def burst(db: Database) -> tuple[bool, int, bool, int]:
        outbox = Outbox(db)
        for n in range(20):
            enqueue(outbox, n)
        pending = db.writer.unsynced
        before = db.writer.syncs
        await asyncio.sleep(0)
        return pending, before, db.writer.unsynced, db.writer.syncs

    try:
        assert asyncio.run(burst(db)) == (True, 0, False, 1)
    finally:
        db.close()
