"""The outbox on PostgreSQL: fenced enqueue, SKIP LOCKED claims, a stable Message-ID,
mark-sent only under the current claim."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg import AsyncConnection

from netalert.cluster.errors import StaleLeaseError
from netalert.cluster.leases import Lease
from netalert.cluster.outbox import PgOutbox, StaleClaimError
from netalert.cluster.schema import migrate

pytestmark = pytest.mark.daemon

SHARDS = 4


@pytest.fixture
def db(postgres: str) -> str:
    async def run() -> None:
        async with await AsyncConnection.connect(postgres, autocommit=True) as conn:
            await migrate(conn)

    asyncio.run(run())
    with psycopg.connect(postgres, autocommit=True) as conn:
        for shard in range(SHARDS):
            conn.execute(
                "INSERT INTO shard_leases (shard, node, epoch, expires) "
                "VALUES (%s, 'nms-a', 1, now() + interval '1 hour')",
                (shard,),
            )
    return postgres


def _outbox(dsn: str, node: str = "nms-a", epoch: int = 1, claim_for: float = 60.0) -> PgOutbox:
    return PgOutbox(
        dsn, node=node, lease_of=lambda s: Lease(s, "nms-a", epoch), claim_for=claim_for
    )


def _count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else -1


def test_enqueue_under_a_stale_epoch_writes_nothing(db: str) -> None:
    stale = _outbox(db, epoch=0)
    with pytest.raises(StaleLeaseError):
        stale.enqueue(1, "00ff", "firing", b"mail")
    assert _count(db, "notification_log") == _count(db, "outbox") == 0
    good = _outbox(db)
    mid = good.enqueue(1, "00ff", "firing", b"mail")
    assert mid.startswith("<") and mid.endswith("@netalert.invalid>")
    assert _count(db, "notification_log") == _count(db, "outbox") == 1
    stale.close()
    good.close()


def test_concurrent_senders_never_claim_one_row_twice(db: str) -> None:
    writer = _outbox(db)
    ids = {writer.enqueue(n % SHARDS, f"{n:04x}", "firing", b"m%d" % n) for n in range(60)}
    assert len(ids) == 60  # one Message-ID per notification
    senders = [_outbox(db, node=f"nms-{c}") for c in "abcd"]

    def drain(sender: PgOutbox) -> list[str]:
        got: list[str] = []
        for _ in range(100):
            rows = sender.claim(3)
            if not rows:
                break
            for row in rows:
                got.append(row.message_id)
                sender.mark_sent(row, "250 2.0.0 Ok: queued")
        return got

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(drain, senders))
    sent = [mid for got in results for mid in got]
    assert sorted(sent) == sorted(ids)  # each exactly once, none lost
    assert writer.depth() == 0
    with psycopg.connect(db, autocommit=True) as conn:
        replies = conn.execute("SELECT DISTINCT smtp_reply FROM outbox").fetchall()
    assert replies == [("250 2.0.0 Ok: queued",)]
    for outbox in [writer, *senders]:
        outbox.close()


def test_a_claim_that_ran_out_is_taken_over_with_the_same_message_id(db: str) -> None:
    writer = _outbox(db)
    mid = writer.enqueue(2, "abcd", "firing", b"mail")
    slow, other = _outbox(db, node="nms-a", claim_for=0.3), _outbox(db, node="nms-b")
    [first] = slow.claim(10)
    assert other.claim(10) == []  # held by the slow sender
    time.sleep(0.5)
    [second] = other.claim(10)  # the claim ran out: taken over
    assert first.message_id == second.message_id == mid and second.claim > first.claim
    with pytest.raises(StaleClaimError):
        slow.mark_sent(first, "250 late")  # the slow sender cannot mark it
    other.mark_sent(second, "250 ok")
    assert writer.depth() == 0 and other.claim(10) == []
    with pytest.raises(StaleClaimError):
        other.mark_sent(second, "250 again")  # sent once
    for outbox in (writer, slow, other):
        outbox.close()


def test_a_released_row_is_claimed_again_at_once(db: str) -> None:
    writer = _outbox(db)
    writer.enqueue(0, "01", "firing", b"mail")
    a, b = _outbox(db, node="nms-a"), _outbox(db, node="nms-b")
    [row] = a.claim(1)
    a.release(row)  # the SMTP server refused for now
    [again] = b.claim(1)
    assert again.id == row.id and again.message == b"mail"
    for outbox in (writer, a, b):
        outbox.close()
