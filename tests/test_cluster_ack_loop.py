"""The reply path of a cluster node's ``[ack]`` never blocks the event loop on PostgreSQL.

The token look-ups, the uses, the acks written and the mailbox position are statements
on the shared database; a slow one (here: a table another session holds locked while it
sleeps in ``pg_sleep``, as a long migration or a vacuum would) must cost the reply its
time, not the whole agent: the loop keeps turning (traps, polls, /healthz).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest

from netalert.ack.store import Ack
from netalert.cluster.ack import PgAckTables
from tests.support.order import TIMING
from tests.test_cluster_pgstore import _migrate

pytestmark = pytest.mark.daemon

HOLD = 0.8  # seconds the other session keeps the table locked
MAX_LAG = 0.3  # seconds the loop may lag meanwhile (a blocked loop lags HOLD)


def _hold(dsn: str, table: str, taken: threading.Event) -> None:
    """Locks ``table`` in another session for HOLD seconds."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        taken.set()
        conn.execute("SELECT pg_sleep(%s)", (HOLD,))


async def _lag_during(
    dsn: str, table: str, call: Callable[[], Awaitable[Any]]
) -> tuple[Any, float]:
    """Runs ``call`` while ``table`` is locked; returns its result and the loop's worst lag."""
    taken = threading.Event()
    holder = threading.Thread(target=_hold, args=(dsn, table, taken))
    holder.start()
    assert await asyncio.to_thread(taken.wait, 10)
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        while not done:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            worst = max(worst, time.monotonic() - before - 0.01)

    tick = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.05)
    started = time.monotonic()
    try:
        result = await call()
    finally:
        done = True
        await tick
        await asyncio.to_thread(holder.join, 10)
    assert time.monotonic() - started >= HOLD / 2, "the statement was not held up"
    return result, worst


@TIMING  # wall-time bound: the loop's lag while each statement waits
def test_reply_statements_leave_the_loop_turning(postgres: str) -> None:
    _migrate(postgres)
    tables = PgAckTables(postgres, refresh=60.0, timeout=5.0)
    ack = Ack("f" * 16, 1.0, "ann@example.org", 2.0, "on it", "mail")

    async def run() -> dict[str, float]:
        lags: dict[str, float] = {}
        token, lags["token"] = await _lag_during(
            postgres, "ack_tokens", lambda: tables.token("nid1")
        )
        assert token is None
        deleted, lags["apply"] = await _lag_during(
            postgres,
            "ack_used",
            lambda: tables.apply("nid1", "ack", 3.0, put=[ack], delete=[]),
        )
        assert deleted == 0
        used, lags["used"] = await _lag_during(
            postgres, "ack_used", lambda: tables.used("nid1", "ack")
        )
        assert used
        _, lags["save_position"] = await _lag_during(
            postgres, "ack_mailbox", lambda: tables.save_position("INBOX", 7, 42)
        )
        position, lags["position"] = await _lag_during(
            postgres, "ack_mailbox", lambda: tables.position("INBOX")
        )
        assert position == (7, 42)
        await tables.stop()
        return lags

    lags = asyncio.run(run())
    slow = {what: round(lag, 2) for what, lag in lags.items() if lag > MAX_LAG}
    assert not slow, f"the loop stood still (seconds) during: {slow}"
