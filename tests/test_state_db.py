"""The state database's own promises, on real SQLite files (no agent process needed)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    """Group commit: the mails queued in one event-loop turn are synced together (in the
    sync thread; the sender waits for it before any attempt)."""
    db = open_database(tmp_path)

    async def burst(db: Database) -> tuple[bool, int, bool, int]:
        outbox = Outbox(db)
        for n in range(20):
            enqueue(outbox, n)
        pending = db.writer.unsynced
        before = db.writer.syncs
        await asyncio.wait_for(db.writer.synced(), 10.0)
        return pending, before, db.writer.unsynced, db.writer.syncs

    try:
        assert asyncio.run(burst(db)) == (True, 0, False, 1)
    finally:
        db.close()


class _SlowDisk:
    """A WAL sync that takes until the test lets it go, noting the thread it ran on."""

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail: OSError | None = None

    def __call__(self) -> None:
        self.threads.append(threading.get_ident())
        self.entered.set()
        # bounded: a sync made on the event loop's thread would wait here for nothing
        self.release.wait(2.0)
        if self.fail is not None:
            raise self.fail


@pytest.fixture
def agent_db(tmp_path: Path) -> Iterator[tuple[Database, _SlowDisk]]:
    """A state database written as the agent writes it, on a disk the test holds."""
    db = open_database(tmp_path)
    disk = _SlowDisk()
    db.writer.per_turn = True  # as the agent sets it
    db.writer.max_held = 100
    db.writer._sync = disk  # the disk behind the sync (Database.sync)
    try:
        yield db, disk
    finally:
        disk.release.set()
        db.close()


async def _turn() -> None:
    """Lets the loop run the end of this turn (the commit) and what it scheduled."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_in_the_agent_the_wal_sync_never_holds_the_event_loop(
    agent_db: tuple[Database, _SlowDisk],
) -> None:
    """An fsync of the WAL takes milliseconds on a busy disk, more on a slow one; on the
    event loop it held every trap behind it (at 1,000 traps/s the loop spent half its time
    in fsync). The agent's syncs run in a thread of their own while the loop goes on; a
    mail goes out only once its sync is done (``synced``)."""
    db, disk = agent_db

    async def burst() -> tuple[bool, bool, int]:
        enqueue(Outbox(db), 1)
        await _turn()  # committed, the sync began
        await asyncio.to_thread(disk.entered.wait, 2.0)
        waiter = asyncio.ensure_future(db.writer.synced())
        await _turn()  # the loop runs on while the disk is busy
        waited = not waiter.done()
        disk.release.set()
        await asyncio.wait_for(waiter, 5.0)
        return waited, db.writer.unsynced, db.writer.syncs

    assert asyncio.run(burst()) == (True, False, 1)
    assert disk.threads and threading.get_ident() not in disk.threads


def test_the_commits_made_during_a_sync_share_the_next_one(
    agent_db: tuple[Database, _SlowDisk],
) -> None:
    """Group commit across turns: while one sync runs, the mails of the next turns wait
    for one more sync, not one each."""
    db, disk = agent_db

    async def turns() -> tuple[int, int, bool]:
        outbox = Outbox(db)
        enqueue(outbox, 0)
        await _turn()
        await asyncio.to_thread(disk.entered.wait, 2.0)
        for n in range(1, 4):  # three more turns, each with a mail, while the disk is busy
            enqueue(outbox, n)
            await _turn()
        during = len(disk.threads)
        disk.release.set()
        await asyncio.wait_for(db.writer.synced(), 5.0)
        return during, db.writer.syncs, db.writer.unsynced

    assert asyncio.run(turns()) == (1, 2, False)


def test_a_failed_sync_is_counted_and_nobody_waits_forever(
    agent_db: tuple[Database, _SlowDisk],
) -> None:
    """The commit is made; only the disk's word that it holds it is missing: said and
    counted, and the sender goes on (as before, when the loop made the sync)."""
    db, disk = agent_db
    disk.fail = OSError(5, "Input/output error")
    disk.release.set()

    async def one() -> tuple[int, bool]:
        enqueue(Outbox(db), 1)
        await _turn()
        await asyncio.wait_for(db.writer.synced(), 5.0)
        return db.writer.failures_total, db.writer.unsynced

    assert asyncio.run(one()) == (1, False)


def test_closing_puts_the_last_commits_on_disk(agent_db: tuple[Database, _SlowDisk]) -> None:
    """A mail committed in the last turn before the agent stops is synced by the close,
    even when no sync of it had begun."""
    db, disk = agent_db
    disk.release.set()

    async def last() -> None:
        enqueue(Outbox(db), 1)  # committed at the end of this turn, or by the close

    asyncio.run(last())
    db.close()
    assert not db.writer.unsynced
    assert db.writer.syncs >= 1
