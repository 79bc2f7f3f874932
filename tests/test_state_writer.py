"""The state writer on a real SQLite file whose size is capped (PRAGMA max_page_count):
the cap makes SQLite answer "database or disk is full" exactly as a full disk does."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from netalert.errors import StateCorruptError, StateError, StateWriteError
from netalert.state import Database, open_database

ROW = b"x" * 20_000  # overflow pages for every row: a capped database refuses it


@pytest.fixture
def db(tmp_path: Path) -> Database:
    db = open_database(tmp_path)
    db.conn.execute("CREATE TABLE t (n INTEGER, data BLOB)")
    return db


def insert(n: int) -> object:
    return lambda conn: conn.execute("INSERT INTO t VALUES (?, ?)", (n, ROW))


def stored(db: Database) -> list[int]:
    return [int(r[0]) for r in db.conn.execute("SELECT n FROM t ORDER BY rowid")]


def fill(db: Database) -> None:
    pages = db.conn.execute("PRAGMA page_count").fetchone()[0]
    db.conn.execute(f"PRAGMA max_page_count = {pages}")


def free(db: Database) -> None:
    db.conn.execute("PRAGMA max_page_count = 4294967294")


def test_without_hold_a_full_disk_raises_at_once(db: Database) -> None:
    fill(db)
    with pytest.raises(StateWriteError, match="full"):
        db.writer.write("t", insert(1))  # type: ignore[arg-type]
    assert db.writer.held == 0


def test_held_writes_commit_in_order_once_space_returns(db: Database) -> None:
    db.writer.max_held = 10
    committed: list[int] = []
    assert db.writer.write("t", insert(0))  # type: ignore[arg-type]
    fill(db)
    for n in (1, 2, 3):
        held = db.writer.write("t", insert(n), on_commit=lambda n=n: committed.append(n))  # type: ignore[arg-type]
        assert held is False
    assert db.writer.held == 3 and db.writer.holding
    problem = db.writer.problem()
    assert problem is not None and "netalert.db" in problem and "full" in problem
    assert db.writer.retry(force=True) is False  # still full: nothing lost, nothing reordered
    assert stored(db) == [0]
    free(db)
    assert db.writer.retry(force=True) is True
    assert stored(db) == [0, 1, 2, 3]
    assert committed == [1, 2, 3]
    assert db.writer.problem() is None


def test_past_the_bound_the_oldest_is_shed_and_counted(db: Database) -> None:
    db.writer.max_held = 2
    shed: list[int] = []
    fill(db)
    for n in (1, 2, 3, 4):
        db.writer.write("t", insert(n), on_shed=lambda n=n: shed.append(n))  # type: ignore[arg-type]
    assert shed == [1, 2]
    assert db.writer.shed_total == 2 and db.writer.held == 2
    free(db)
    assert db.writer.retry(force=True)
    assert stored(db) == [3, 4]


def test_retry_waits_for_the_backoff(db: Database) -> None:
    db.writer.max_held = 5
    fill(db)
    db.writer.write("t", insert(1))  # type: ignore[arg-type]
    free(db)
    assert db.writer.retry() is False  # the first wait (0.5 s) has not passed
    assert db.writer.retry(force=True) is True


def test_a_refused_write_is_not_held(db: Database) -> None:
    db.conn.execute("CREATE TABLE u (n INTEGER PRIMARY KEY)")
    db.writer.max_held = 5
    db.writer.write("u", lambda conn: conn.execute("INSERT INTO u VALUES (1)"))
    with pytest.raises(StateError) as caught:
        db.writer.write("u", lambda conn: conn.execute("INSERT INTO u VALUES (1)"))
    assert not isinstance(caught.value, StateWriteError)
    assert db.writer.held == 0


def test_a_damaged_database_is_never_held(db: Database) -> None:
    db.writer.max_held = 5

    def damaged(conn: sqlite3.Connection) -> None:
        exc = sqlite3.DatabaseError("database disk image is malformed")
        exc.sqlite_errorcode = 11  # type: ignore[attr-defined]
        raise exc

    with pytest.raises(StateCorruptError, match="--recover"):
        db.writer.write("t", damaged)
    assert db.writer.held == 0


# ---- one transaction per event-loop turn (the agent: per_turn) -----------------------------


def transactions(db: Database) -> list[str]:
    """Collects every transaction the connection begins from now on."""
    began: list[str] = []
    db.conn.set_trace_callback(lambda sql: began.append(sql) if sql.startswith("BEGIN") else None)
    return began


def run_turns(body: Callable[[], None]) -> None:
    """Runs ``body`` as one callback of an event loop, then the loop's next turns."""

    async def main() -> None:
        asyncio.get_running_loop().call_soon(body)
        for _ in range(3):
            await asyncio.sleep(0)

    asyncio.run(main())


def test_the_writes_of_one_loop_turn_commit_in_one_transaction(db: Database) -> None:
    db.writer.max_held = 10
    db.writer.per_turn = True
    began = transactions(db)
    committed: list[int] = []
    results: list[bool] = []

    def turn() -> None:
        for n in range(5):
            results.append(
                db.writer.write("t", insert(n), on_commit=lambda n=n: committed.append(n))  # type: ignore[arg-type]
            )
        assert began == [] and committed == []  # at the end of the turn, not before

    run_turns(turn)
    assert len(began) == 1
    assert results == [False] * 5
    assert stored(db) == [0, 1, 2, 3, 4] and committed == [0, 1, 2, 3, 4]


def test_a_turn_that_cannot_be_written_is_held_in_order(db: Database) -> None:
    db.writer.max_held = 10
    db.writer.per_turn = True
    db.writer.write("t", insert(0))  # type: ignore[arg-type]  # outside a loop: at once
    fill(db)
    run_turns(lambda: [db.writer.write("t", insert(n)) for n in (1, 2, 3)])  # type: ignore[arg-type]
    assert db.writer.held == 3 and stored(db) == [0]
    free(db)
    assert db.writer.retry(force=True)
    assert stored(db) == [0, 1, 2, 3]


def test_a_refused_write_in_a_turn_drops_only_itself(db: Database) -> None:
    db.conn.execute("CREATE TABLE u (n INTEGER PRIMARY KEY)")
    db.writer.max_held = 10
    db.writer.per_turn = True
    shed: list[str] = []

    def turn() -> None:
        db.writer.write("t", insert(1))  # type: ignore[arg-type]
        db.writer.write("u", lambda conn: conn.execute("INSERT INTO u VALUES (1)"))
        db.writer.write(
            "u",
            lambda conn: conn.execute("INSERT INTO u VALUES (1)"),
            on_shed=lambda: shed.append("dup"),
        )
        db.writer.write("t", insert(2))  # type: ignore[arg-type]

    run_turns(turn)
    assert stored(db) == [1, 2] and shed == ["dup"]
    assert [r[0] for r in db.conn.execute("SELECT n FROM u")] == [1]
    assert db.writer.held == 0


def test_closing_the_database_writes_the_turn_first(db: Database, tmp_path: Path) -> None:
    db.writer.max_held = 10
    db.writer.per_turn = True

    async def main() -> None:
        db.writer.write("t", insert(7))  # type: ignore[arg-type]
        db.close()  # the loop never got to the end of this turn

    asyncio.run(main())
    assert stored(open_database(tmp_path)) == [7]


# ---- committed(): the cluster's trap handler acknowledges only what is on disk ---------------


def test_committed_returns_once_the_turn_is_written(db: Database) -> None:
    db.writer.max_held = 10
    db.writer.per_turn = True
    seen: list[list[int]] = []

    async def main() -> None:
        await db.writer.committed()  # nothing written: at once
        db.writer.write("t", insert(1))  # type: ignore[arg-type]
        db.writer.write("t", insert(2))  # type: ignore[arg-type]
        assert stored(db) == []  # the turn has not ended
        await db.writer.committed()
        seen.append(stored(db))
        await db.writer.committed()  # nothing new: at once

    asyncio.run(main())
    assert seen == [[1, 2]]


def test_committed_waits_for_held_writes(db: Database) -> None:
    db.writer.max_held = 10
    db.writer.per_turn = True

    async def main() -> None:
        fill(db)
        db.writer.write("t", insert(1))  # type: ignore[arg-type]
        waiting = asyncio.ensure_future(db.writer.committed())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiting.done() and db.writer.held == 1  # held: not committed
        free(db)
        assert db.writer.retry(force=True)
        await asyncio.wait_for(waiting, 1.0)

    asyncio.run(main())
    assert stored(db) == [1]


def test_committed_returns_for_a_write_refused_for_good(db: Database) -> None:
    db.conn.execute("CREATE TABLE u (n INTEGER PRIMARY KEY)")
    db.conn.execute("INSERT INTO u VALUES (1)")
    db.writer.max_held = 10
    db.writer.per_turn = True

    async def main() -> None:
        db.writer.write("u", lambda conn: conn.execute("INSERT INTO u VALUES (1)"))
        await asyncio.wait_for(db.writer.committed(), 1.0)  # dropped: nothing to wait for

    asyncio.run(main())
    assert db.writer.held == 0
