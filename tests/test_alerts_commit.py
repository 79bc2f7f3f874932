"""The alert stage's writes in the agent: one transaction per event-loop turn, however many
traps the turn brought (a real SQLite file; the connection's trace counts the transactions)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from netalert.alerting import Alerting
from netalert.alerts.store import SqliteAlertStore
from netalert.config import load_config_text
from netalert.state import open_database
from tests.test_rules_engine import DEVICES, LINK_DOWN, TREE, trap

TRAPS = 50


def test_the_traps_of_one_loop_turn_are_committed_in_one_transaction(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    db.writer.max_held = 100
    db.writer.per_turn = True  # what the agent sets
    alerting = Alerting(load_config_text(DEVICES + LINK_DOWN), TREE, SqliteAlertStore(db))
    began: list[str] = []
    db.conn.set_trace_callback(lambda sql: began.append(sql) if sql.startswith("BEGIN") else None)
    fired: list[int] = []

    def readable() -> None:  # what the trap receiver's reader callback does with a batch
        for n in range(TRAPS):
            fired.append(len(alerting.on_trap(trap("linkDown", 1 + n, 1000.0), 1000.0)))

    async def main() -> None:
        asyncio.get_running_loop().call_soon(readable)
        for _ in range(3):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert fired == [1] * TRAPS
    assert len(began) == 1, began
    db.close()
    again = Alerting(
        load_config_text(DEVICES + LINK_DOWN), TREE, SqliteAlertStore(open_database(tmp_path))
    )
    assert len(again.table.active()) == TRAPS


def test_without_a_loop_each_call_commits_at_once(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    db.writer.max_held = 100
    db.writer.per_turn = True
    alerting = Alerting(load_config_text(DEVICES + LINK_DOWN), TREE, SqliteAlertStore(db))
    alerting.on_trap(trap("linkDown", 1, 1000.0), 1000.0)
    count = db.conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
    assert count == 1
