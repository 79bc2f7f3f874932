"""The reply path of a cluster node's ``[ack]`` never blocks the event loop on PostgreSQL.

The token look-ups, the uses, the acks written, the silences a reply makes (and their
expiry) and the mailbox position are statements
on the shared database; a slow one (here: a table another session holds locked while it
sleeps in ``pg_sleep``, as a long migration or a vacuum would) must cost the reply its
time, not the whole agent: the loop keeps turning (traps, polls, /healthz).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest

from netalert.ack.config import AckConfig
from netalert.ack.handler import ReplyHandler
from netalert.ack.stats import AckStats
from netalert.ack.store import Ack
from netalert.ack.token import make_token
from netalert.alerts.model import Alert
from netalert.cluster.ack import PgAckTables, shared_key
from netalert.cluster.shared import PgSilenceStore, SharedSilences
from tests.support.order import LOAD
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


@LOAD  # wall-time bound: the loop's lag while each statement waits
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


class _Target:
    """The agent's side of a reply (the alerts it holds): none here, the silence needs none."""

    async def alert(self, fingerprint: str) -> Alert | None:
        return None

    def resolvable(self, fingerprint: str) -> bool:
        return False

    def resolve(self, fingerprint: str, now: float, by: str) -> bool:
        return False

    def changed(self) -> None:
        pass


def _reply(token: str, body: str) -> bytes:
    return (
        "From: Ann <ann@example.org>\r\n"
        f"To: alerts+{token}@example.org\r\n"
        "Subject: Re: [FIRING] PortDown on r1\r\n"
        "Message-ID: <reply1@example.org>\r\n"
        f"\r\n{body}\r\n"
    ).encode()


@LOAD  # wall-time bound: the loop's lag while the silence is written and expired
def test_a_silence_reply_and_its_expiry_leave_the_loop_turning(postgres: str) -> None:
    _migrate(postgres)
    key = b"k" * 32
    now = time.time()
    fingerprint = "a" * 16
    nid, token = make_token(key, [fingerprint], int(now) + 3600)
    alerts = json.dumps([[fingerprint, {"alertname": "PortDown", "device": "r1"}]])
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ack_tokens (nid, message_id, subject, alerts, expires, created)"
            " VALUES (%s, '<m1@example.org>', '[FIRING] PortDown on r1', %s, %s, %s)",
            (nid, alerts, now + 3600, now),
        )
    config = AckConfig.model_validate(
        {
            "imap": {"host": "127.0.0.1", "username": "alerts"},
            "reply_to": "alerts+{token}@example.org",
            "operators": ["ann@example.org"],
        }
    )
    tables = PgAckTables(postgres, refresh=60.0, timeout=5.0)
    silences = SharedSilences(PgSilenceStore(postgres), refresh=60.0)
    handler = ReplyHandler(
        config,
        key=key,
        store=tables,
        silences=silences,
        target=_Target(),
        outbox=None,
        mail_from="netalert@example.org",
        stats=AckStats(),
    )

    async def run() -> dict[str, float]:
        lags: dict[str, float] = {}
        result, lags["silence"] = await _lag_during(
            postgres, "silences", lambda: handler.handle(_reply(token, "silence 1h work"), now)
        )
        assert result == "silence"
        assert lags["silence"] <= MAX_LAG, f"the loop stood still {lags['silence']:.2f} s"
        made = silences.list(time.time())
        assert [dict((m.name, m.value) for m in s.matchers) for s in made] == [
            {"alertname": "PortDown", "device": "r1"}
        ]
        done, lags["expire"] = await _lag_during(
            postgres, "silences", lambda: silences.expire_async(made[0].id, time.time())
        )
        assert done
        await silences.stop()
        await tables.stop()
        return lags

    lags = asyncio.run(run())
    with psycopg.connect(postgres, autocommit=True) as conn:
        rows = conn.execute("SELECT author, ends_at FROM silences").fetchall()
    assert len(rows) == 1 and rows[0][0] == "ann@example.org" and rows[0][1] <= time.time()
    slow = {what: round(lag, 2) for what, lag in lags.items() if lag > MAX_LAG}
    assert not slow, f"the loop stood still (seconds) during: {slow}"


@LOAD  # wall-time bound: the loop's lag while the key is read
def test_reading_the_shared_key_leaves_the_loop_turning(postgres: str) -> None:
    """A reload that adds ``[ack]`` to a running node reads the token key from PostgreSQL."""
    _migrate(postgres)

    async def key() -> bytes:
        return await shared_key(postgres)

    async def run() -> tuple[bytes, float, bytes]:
        first, lag = await _lag_during(postgres, "cluster_secrets", key)
        return first, lag, await key()

    first, lag, again = asyncio.run(run())
    assert len(first) == 64 and first == again  # made once, then the same for every node
    assert lag <= MAX_LAG, f"the loop stood still {lag:.2f} s"
