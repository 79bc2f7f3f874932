"""A cluster node's state writer on a real PostgreSQL: the saves of a loop turn in one fenced
transaction made off the event loop, a stale lease's part dropped and forgotten, the batch
held while PostgreSQL is cut off; the mail queue's claims."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import psycopg
import pytest

from netalert.cluster.errors import StaleLeaseError
from netalert.cluster.leases import Lease
from netalert.cluster.mail import PgMailOutbox, PgNotificationLog, PgWrite, read_nflog
from netalert.cluster.outbox import Claimed, PgOutbox
from netalert.cluster.pgstore import Extra, PgAlertStore
from netalert.cluster.state import ClusterState, ShardLostError
from netalert.mail.entries import OutboxEntry, RecipientResult
from tests.support.tcpproxy import TcpProxy
from tests.test_cluster_pgstore import SHARDS, _device_in, _grant, _migrate, _rows, make_record

pytestmark = pytest.mark.daemon

NODE = "nms-a"


@pytest.fixture
def db(postgres: str) -> str:
    _migrate(postgres)
    _grant(postgres, NODE, 1)
    return postgres


def _believes(epoch: int = 1, lost: set[int] | None = None) -> Callable[[int], Lease | None]:
    """What the node believes: every shard at ``epoch``, but those in ``lost``."""
    gone = lost if lost is not None else set()
    return lambda shard: None if shard in gone else Lease(shard, NODE, epoch)


def _state(dsn: str, lease_of: Callable[[int], Lease | None], **kwargs: object) -> ClusterState:
    store = PgAlertStore(dsn, node=NODE, shards=SHARDS, lease_of=lease_of, **kwargs)  # type: ignore[arg-type]
    return ClusterState(store, lease_of=lease_of, retry_max=0.5)


async def test_one_loop_turn_is_one_transaction_written_off_the_loop(db: str) -> None:
    state = _state(db, _believes())
    state.start()
    device = _device_in(2)
    try:
        # another transaction holds shard 2's lease row (as a renewal would): the commit waits
        # for it in the worker thread while the loop goes on
        blocker = await psycopg.AsyncConnection.connect(db, autocommit=False)
        await blocker.execute("SELECT 1 FROM shard_leases WHERE shard = 2 FOR UPDATE")
        state.save([make_record(1, device=device)], [], on_lost=lambda: None)
        state.save([make_record(2, device=device)], [], on_lost=lambda: None)
        state.save([make_record(1, device=device, value="newer")], [], on_lost=lambda: None)
        waiting = asyncio.ensure_future(state.committed())
        ticks, began = 0, time.monotonic()
        while time.monotonic() - began < 0.5:
            await asyncio.sleep(0.01)
            ticks += 1
        assert not waiting.done() and ticks >= 20  # the loop was not blocked
        await blocker.rollback()
        await blocker.close()
        await asyncio.wait_for(waiting, timeout=10)
        assert state.commits == 1  # three saves of one turn, one transaction
        rows = _rows(db)
        assert rows["0000000000000001"] == ("newer", 2, 1)  # the last version, epoch 1
        assert rows["0000000000000002"][1:] == (2, 1)
        await state.committed()  # nothing pending: at once
    finally:
        await state.stop()


async def test_a_stale_lease_drops_that_shards_part_and_writes_the_rest(db: str) -> None:
    lost: set[int] = set()
    state = _state(db, _believes(lost=lost))
    forgotten: list[frozenset[int]] = []
    state.on_stale = forgotten.append
    state.start()
    moving, staying = _device_in(3), _device_in(5)
    try:
        _grant(db, "nms-b", 2, range(3, 4))  # shard 3 moved to nms-b while the node believed
        state.save([make_record(1, device=moving)], [], on_lost=lambda: None)
        state.save([make_record(2, device=staying)], [], on_lost=lambda: None)
        mail_refused: list[bool] = []
        state.write(
            Extra(frozenset({3}), lambda conn, leases: None),
            on_commit=lambda: mail_refused.append(False),
            on_refused=lambda: mail_refused.append(True),
        )
        with pytest.raises(StaleLeaseError) as refused:
            await asyncio.wait_for(state.committed(), timeout=10)
        assert (refused.value.shard, refused.value.epoch, refused.value.current_epoch) == (3, 1, 2)
        for _ in range(100):
            if state.settled:
                break
            await asyncio.sleep(0.05)
        rows = _rows(db)
        assert "0000000000000001" not in rows  # the moved shard's record: dropped
        assert rows["0000000000000002"][1:] == (5, 1)  # the rest: written
        assert forgotten == [frozenset({3})] and mail_refused == [True]
        assert state.refused == 1 and state.dropped == 2
    finally:
        await state.stop()


async def test_changes_made_without_a_lease_are_dropped_without_asking(db: str) -> None:
    # a node that polls or hears a device of a shard it does not hold (before the intake
    # filters them): nothing to ask PostgreSQL, the answer is no
    state = _state(db, _believes(lost={6}))
    forgotten: list[frozenset[int]] = []
    state.on_stale = forgotten.append
    state.start()
    try:
        state.save([make_record(1, device=_device_in(6))], [], on_lost=lambda: None)
        state.save([make_record(2, device=_device_in(0))], [], on_lost=lambda: None)
        with pytest.raises(ShardLostError):
            await asyncio.wait_for(state.committed(), timeout=10)
        for _ in range(100):
            if state.settled:
                break
            await asyncio.sleep(0.05)
        assert set(_rows(db)) == {"0000000000000002"}
        assert forgotten == [frozenset({6})] and state.refused == 0 and state.dropped == 1
    finally:
        await state.stop()


async def test_postgres_cut_off_holds_the_batch_and_writes_it_after(db: str) -> None:
    params = psycopg.conninfo.conninfo_to_dict(db)
    proxy = await TcpProxy.start(str(params["host"]), int(params["port"]))  # type: ignore[arg-type]
    dsn = db.replace(f":{params['port']}/", f":{proxy.port}/")
    state = _state(dsn, _believes(), lock_timeout=0.5, statement_timeout=0.5)
    state.start()
    device = _device_in(1)
    try:
        state.save([make_record(1, device=device)], [], on_lost=lambda: None)
        await asyncio.wait_for(state.committed(), timeout=10)
        proxy.cut()
        state.save([make_record(2, device=device)], [], on_lost=lambda: None)
        state.save([make_record(1, device=device, value="during")], [], on_lost=lambda: None)
        waiting = asyncio.ensure_future(state.committed())
        for _ in range(200):  # the write fails (no answer), the batch is held
            if state.problem() is not None:
                break
            await asyncio.sleep(0.05)
        assert not waiting.done() and state.problem() is not None
        assert "0000000000000002" not in _rows(db)
        await proxy.heal()
        await asyncio.wait_for(waiting, timeout=20)
        assert _rows(db)["0000000000000001"][0] == "during" and "0000000000000002" in _rows(db)
        assert state.problem() is None and state.failures >= 1
    finally:
        await state.stop()
        await proxy.close()


async def test_a_mail_and_its_log_rows_commit_with_the_alerts_and_are_sent_once(
    db: str,
) -> None:
    lease_of = _believes()
    state = _state(db, lease_of)
    state.start()
    device = _device_in(4)
    nflog = PgNotificationLog(lambda fp: 4)
    queue = PgMailOutbox(PgOutbox(db, node=NODE, lease_of=lease_of), state, poll=0.05)
    woken: list[bool] = []
    queue.on_ready = lambda: woken.append(True)
    queue.start()
    done: list[bool] = []
    try:
        state.save([make_record(7, device=device)], [], on_lost=lambda: None)
        queue.enqueue_raw(
            b"Subject: x\r\n\r\nbody\r\n",
            sender="netalert@example.org",
            recipients=["a@example.org", "b@example.org"],
            message_id="<m1@example.org>",
            subject="x",
            also=lambda conn: nflog.record(conn, "r", "g", frozenset({"f7"}), frozenset(), 1.0),
            on_done=done.append,
        )
        assert queue.pending() == 1 and nflog.get("r", "g") is None  # held until committed
        await asyncio.wait_for(state.committed(), timeout=10)
        assert done == [True] and state.commits == 1
        entry = nflog.get("r", "g")
        assert entry is not None and entry.firing == {"f7"}
        with psycopg.connect(db, autocommit=True) as conn:
            assert [row[2:4] for row in read_nflog(conn, [4])] == [(4, entry)]
        for _ in range(100):
            if queue.due(time.time()):
                break
            await asyncio.sleep(0.05)
        [claimed] = queue.due(time.time())
        assert claimed.message_id == "<m1@example.org>" and woken
        assert claimed.recipients == ("a@example.org", "b@example.org")
        # a: accepted, b: try later; only b is tried again, by any sender
        left = queue.record(
            claimed,
            [RecipientResult("a@example.org", True), RecipientResult("b@example.org", False)],
            error="b: 451 later",
            retry_at=time.time(),
        )
        assert not left
        for _ in range(100):
            again = queue.due(time.time())
            if again:
                break
            await asyncio.sleep(0.05)
        assert [e.recipients for e in again] == [("b@example.org",)] and again[0].attempts == 1
        assert queue.record(
            again[0], [RecipientResult("b@example.org", True)], error="", retry_at=0
        )
        for _ in range(100):
            if queue.settled():
                break
            await asyncio.sleep(0.05)
        with psycopg.connect(db, autocommit=True) as conn:
            row = conn.execute("SELECT sent IS NOT NULL, smtp_reply FROM outbox").fetchone()
        assert row == (True, "250 accepted: b@example.org")
    finally:
        await queue.stop()
        await state.stop()


async def test_a_trap_and_its_mail_are_one_transaction_and_the_mail_is_claimed_in_it(
    db: str,
) -> None:
    """As in the agent, the alert is saved in one loop turn and its mail queued by a task that
    turn started: both commit in one transaction, the mail claimed by this node in it, so it
    is ready for the sender at the commit, without another query per mail (the cluster's CPU
    per trap: two transactions and a claim were three)."""
    lease_of = _believes()
    state = _state(db, lease_of)
    state.start()
    device = _device_in(4)
    outbox = PgOutbox(db, node=NODE, lease_of=lease_of)
    claims: list[int] = []
    claim_due = outbox.claim_due

    def counted(limit: int, now: float) -> list[tuple[Claimed, OutboxEntry]]:
        claims.append(limit)
        return claim_due(limit, now)

    outbox.claim_due = counted  # type: ignore[method-assign]
    queue = PgMailOutbox(outbox, state, poll=30.0)  # no periodic look in this test
    woken: list[bool] = []
    queue.on_ready = lambda: woken.append(True)
    queue.start()
    try:
        for _ in range(100):
            if claims:  # the look at start
                break
            await asyncio.sleep(0.02)
        looked = len(claims)
        for n in range(1, 6):

            async def mail_out(n: int = n) -> None:
                queue.enqueue_raw(
                    f"Subject: {n}\r\n\r\nbody\r\n".encode(),
                    sender="netalert@example.org",
                    recipients=["a@example.org"],
                    message_id=f"<m{n}@example.org>",
                    subject=str(n),
                )

            state.save([make_record(n, device=device)], [], on_lost=lambda: None)
            mailing = asyncio.get_running_loop().create_task(mail_out())
            await asyncio.wait_for(state.committed(), timeout=10)
            await mailing
            [entry] = queue.due(time.time())  # claimed with the commit: at once
            assert entry.message_id == f"<m{n}@example.org>" and woken
            assert queue.record(
                entry, [RecipientResult("a@example.org", True)], error="", retry_at=0
            )
        for _ in range(100):
            if queue.settled():
                break
            await asyncio.sleep(0.05)
        assert state.commits == 5  # one transaction per trap and its mail
        assert len(claims) == looked  # and no claim query per mail
        with psycopg.connect(db, autocommit=True) as conn:
            rows = conn.execute("SELECT claim, claimed_by, sent IS NOT NULL FROM outbox").fetchall()
        assert rows == [(1, NODE, True)] * 5
    finally:
        await queue.stop()
        await state.stop()


def test_a_write_collects_its_shards_and_log_rows() -> None:
    # the notification log of a cluster node, alone: rows per shard, their union per group
    shards = {"f1": 1, "f2": 2, "f3": 2}
    nflog = PgNotificationLog(shards.get)
    write = PgWrite()
    nflog.record(write, "r", "g", frozenset({"f1", "f2"}), frozenset({"f3", "gone"}), 5.0)
    assert write.shards == {1, 2} and len(write.ops) == 1
    assert nflog.get("r", "g") is None
    for callback in write.on_commit:
        callback()
    entry = nflog.get("r", "g")
    assert entry is not None and entry.firing == {"f1", "f2"} and entry.resolved == {"f3"}
    nflog.forget({2})
    entry = nflog.get("r", "g")
    assert entry is not None and entry.firing == {"f1"}
    # a shard the group had a row for gets an empty one: what it told there is over
    again = PgWrite()
    nflog.record(again, "r", "g", frozenset({"f2"}), frozenset(), 6.0)
    assert again.shards == {1, 2}
