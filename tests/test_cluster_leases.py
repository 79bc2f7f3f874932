"""Shard leases on a real PostgreSQL: fair split, expiry, fencing, rebalancing, reconnects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import AsyncConnection

from netalert.cluster.errors import SchemaError, StaleLeaseError
from netalert.cluster.fence import fenced
from netalert.cluster.leases import Lease, LeaseManager
from netalert.cluster.schema import MIGRATIONS_TABLE, applied_versions, migrate, migrations
from tests.support.postgres import PostgresFactory
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.daemon

SHARDS = 64
LEASE = 1.5  # seconds: short, so expiry tests take a few seconds


async def _until(check: Callable[[], Awaitable[bool]], within: float, step: float = 0.05) -> float:
    """Polls ``check`` until it holds; returns the seconds it took. Fails after ``within``."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within:
            pytest.fail(f"condition not met within {within}s")
        await asyncio.sleep(step)
    return time.monotonic() - start


async def _table(dsn: str) -> dict[int, str | None]:
    """Shard -> owner as the database says now (None: free or expired)."""
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT shard, CASE WHEN expires > now() THEN node END FROM shard_leases"
        )
        return {int(shard): node for shard, node in await cur.fetchall()}


@pytest.fixture
async def nodes(postgres: str) -> AsyncIterator[Callable[..., Awaitable[LeaseManager]]]:
    started: list[LeaseManager] = []

    async def start(name: str, **options: Any) -> LeaseManager:
        options.setdefault("shards", SHARDS)
        options.setdefault("lease", LEASE)
        manager = LeaseManager(postgres, node=name, **options)
        await manager.start()
        started.append(manager)
        return manager

    yield start
    for manager in started:
        await manager.stop()


def _balanced(managers: list[LeaseManager]) -> bool:
    counts = sorted(len(m.owned()) for m in managers)
    return sum(counts) == SHARDS and counts[-1] - counts[0] <= 1


async def test_migrations_apply_once_and_a_newer_schema_is_refused(postgres: str) -> None:
    known = [m.version for m in migrations()]
    async with await AsyncConnection.connect(postgres, autocommit=True) as conn:
        assert await applied_versions(conn) == []
        assert await migrate(conn) == known
        assert await migrate(conn) == []  # idempotent
        assert await applied_versions(conn) == known
        await conn.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (%s, 'future')",
            (known[-1] + 1,),
        )
        with pytest.raises(SchemaError, match=f"schema version {known[-1] + 1}, newer"):
            await migrate(conn)


async def test_concurrent_migrations_apply_once(postgres: str) -> None:
    async def one() -> list[int]:
        async with await AsyncConnection.connect(postgres, autocommit=True) as conn:
            return await migrate(conn)

    results = await asyncio.gather(*(one() for _ in range(4)))
    assert sorted(results, key=len) == [[], [], [], [m.version for m in migrations()]]


async def test_three_nodes_split_64_shards_fairly(
    postgres: str, nodes: Callable[..., Awaitable[LeaseManager]]
) -> None:
    managers = [await nodes(name) for name in ("nms-a", "nms-b", "nms-c")]

    async def balanced() -> bool:
        return _balanced(managers)

    await _until(balanced, within=10 * LEASE)
    owned = [m.owned() for m in managers]
    assert sorted(len(o) for o in owned) == [21, 21, 22]
    assert set().union(*owned) == set(range(SHARDS))
    table = await _table(postgres)
    for manager, shards in zip(managers, owned, strict=True):
        assert {s for s, node in table.items() if node == manager.node} == shards
        assert manager.stats.shards_owned == len(shards)
        assert manager.stats.nodes == 3


async def test_a_node_that_stops_renewing_loses_its_shards_within_the_lease(
    postgres: str, nodes: Callable[..., Awaitable[LeaseManager]]
) -> None:
    a, b, c = [await nodes(name) for name in ("nms-a", "nms-b", "nms-c")]

    async def balanced() -> bool:
        return _balanced([a, b, c])

    await _until(balanced, within=10 * LEASE)
    lost = a.owned()
    stopped = time.monotonic()
    await a.suspend()  # hangs: no renewal, no release
    await asyncio.sleep(stopped + LEASE - time.monotonic())
    assert not a.owned()  # it stopped acting on its shards within the lease

    async def taken_over() -> bool:
        return b.owned() | c.owned() == set(range(SHARDS))

    # The others see the rows expire (lease) and take them at their next tick (lease / 3).
    await _until(taken_over, within=4 * LEASE)
    # the lease, a renewal interval of the others, and slack for a loaded machine
    assert time.monotonic() - stopped <= LEASE + LEASE / 3 + 1.0
    table = await _table(postgres)
    assert not {s for s, node in table.items() if node == "nms-a"}
    assert all(table[s] in ("nms-b", "nms-c") for s in lost)
    await _until(balanced_two := _pair_balanced(b, c), within=4 * LEASE)
    assert await balanced_two()


def _pair_balanced(*managers: LeaseManager) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return _balanced(list(managers))

    return check


async def test_a_write_with_a_stale_epoch_is_refused(
    postgres: str, nodes: Callable[..., Awaitable[LeaseManager]]
) -> None:
    a = await nodes("nms-a", shards=4)
    shard = min(a.owned())
    old = a.lease_of(shard)
    assert old is not None
    async with await AsyncConnection.connect(postgres, autocommit=True) as conn:
        await conn.execute("CREATE TABLE probe (shard int, epoch bigint, note text)")
        async with fenced(conn, old) as tx:  # the current lease: the write commits
            await tx.execute("INSERT INTO probe VALUES (%s, %s, 'first')", (shard, old.epoch))
        await a.suspend()  # partitioned: the lease runs out and another node takes it
        b = await nodes("nms-b", shards=4)

        async def moved() -> bool:
            return shard in b.owned()

        await _until(moved, within=4 * LEASE)
        new = b.lease_of(shard)
        assert new is not None and new.epoch == old.epoch + 1
        with pytest.raises(StaleLeaseError) as info:
            async with fenced(conn, old) as tx:
                await tx.execute("INSERT INTO probe VALUES (%s, %s, 'late')", (shard, old.epoch))
        assert str(info.value) == (
            f"shard {shard}: write refused: epoch {old.epoch} of nms-a is not the current "
            f"lease (epoch {new.epoch}, held by nms-b)"
        )
        async with fenced(conn, new) as tx:
            await tx.execute("INSERT INTO probe VALUES (%s, %s, 'new')", (shard, new.epoch))
        cur = await conn.execute("SELECT note FROM probe ORDER BY note")
        assert [note for (note,) in await cur.fetchall()] == ["first", "new"]
        # A lease that expired with nobody taking it over is refused too.
        with pytest.raises(StaleLeaseError, match="held by nobody"):
            async with fenced(conn, Lease(shard=99, node="nms-a", epoch=0)):
                pass


async def test_fenced_write_holds_off_a_takeover_until_it_commits(
    postgres: str, nodes: Callable[..., Awaitable[LeaseManager]]
) -> None:
    a = await nodes("nms-a", shards=2)
    shard = min(a.owned())
    lease = a.lease_of(shard)
    assert lease is not None
    async with (
        await AsyncConnection.connect(postgres, autocommit=True) as conn,
        await AsyncConnection.connect(postgres, autocommit=True) as other,
        fenced(conn, lease),
    ):
        # The owner's row is locked FOR SHARE: a takeover waits for this commit.
        await other.execute("SET lock_timeout = '300ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            await other.execute(
                "UPDATE shard_leases SET node = 'thief', epoch = epoch + 1 WHERE shard = %s",
                (shard,),
            )


async def test_a_returning_node_rebalances_without_double_ownership(
    postgres: str, nodes: Callable[..., Awaitable[LeaseManager]]
) -> None:
    a, b, c = [await nodes(name) for name in ("nms-a", "nms-b", "nms-c")]
    managers = [a, b, c]
    violations: list[str] = []
    polls = 0

    async def watch() -> None:
        nonlocal polls
        while True:
            # What each node believes before and after reading the table: a shard it
            # held at both instants must be its in the table read in between.
            before = {m.node: m.owned() for m in managers}
            seen: dict[int, str] = {}
            for node, shards in before.items():
                for shard in shards:
                    if shard in seen:
                        violations.append(f"shard {shard} held by {seen[shard]} and {node}")
                    seen[shard] = node
            table = await _table(postgres)
            after = {m.node: m.owned() for m in managers}
            for node in before:
                for shard in before[node] & after[node]:
                    if table[shard] != node:
                        violations.append(f"{node} acts on shard {shard}, table: {table[shard]}")
            polls += 1
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        await _until(_pair_balanced(a, b, c), within=10 * LEASE)
        await a.suspend()  # a leaves (hangs): b and c take its shards
        await _until(_pair_balanced(b, c), within=6 * LEASE)
        assert not a.owned()
        a.resume()  # a returns: b and c hand shards back until all three are even
        await _until(_pair_balanced(a, b, c), within=10 * LEASE)
        assert a.stats.lease_lost > 0  # it noticed it had lost the shards it held
        await asyncio.sleep(LEASE)  # and stays balanced
        assert _balanced(managers)
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher
    assert polls > 20
    assert violations == []


async def test_graceful_stop_hands_shards_over_at_once(
    postgres: str, nodes: Callable[..., Awaitable[LeaseManager]]
) -> None:
    a = await nodes("nms-a")
    b = await nodes("nms-b")
    await _until(_pair_balanced(a, b), within=10 * LEASE)
    await a.stop()
    table = await _table(postgres)
    assert "nms-a" not in table.values()

    async def b_has_all() -> bool:
        return len(b.owned()) == SHARDS

    # released, not expired: b takes them at its next tick
    assert await _until(b_has_all, within=3 * LEASE) < LEASE  # not waiting for expiry
    assert b.stats.lease_lost == 0


async def test_a_node_with_another_shard_count_is_refused(
    postgres: str, nodes: Callable[..., Awaitable[LeaseManager]]
) -> None:
    await nodes("nms-a")
    other = LeaseManager(postgres, node="nms-b", shards=32, lease=LEASE)
    with pytest.raises(SchemaError) as info:
        await other.start()
    assert str(info.value) == (
        "[cluster] shards = 32, but the cluster database was made with 64 shards: "
        "every node must use the same number"
    )
    await other.stop()


async def test_postgres_restart_the_lease_manager_reconnects(
    postgres_factory: PostgresFactory,
) -> None:
    server = postgres_factory()
    manager = LeaseManager(server.dsn, node="nms-a", shards=8, lease=3.0)
    await manager.start()
    try:
        assert len(manager.owned()) == 8
        server.stop()

        async def lost_db() -> bool:
            return not manager.stats.connected

        await _until(lost_db, within=3.0)

        # Unreachable: it stops acting on its shards once the lease runs out locally.
        async def gave_up() -> bool:
            return not manager.owned()

        await _until(gave_up, within=4.0)
        await asyncio.to_thread(server.start)

        async def back() -> bool:
            return manager.stats.connected and len(manager.owned()) == 8

        await _until(back, within=10.0)
        assert manager.stats.reconnects >= 1
        table = await _table(server.dsn)
        assert set(table.values()) == {"nms-a"}
    finally:
        await manager.stop()


async def test_a_partitioned_node_stops_within_its_lease_and_its_late_write_is_refused(
    postgres: str, nodes: Callable[..., Awaitable[LeaseManager]]
) -> None:
    url = urlsplit(postgres)
    proxy = await TcpProxy.start(url.hostname or "127.0.0.1", url.port or 5432)
    userinfo = url.netloc.rpartition("@")[0]
    through_proxy = urlunsplit(url._replace(netloc=f"{userinfo}@127.0.0.1:{proxy.port}"))
    a = LeaseManager(through_proxy, node="nms-a", shards=8, lease=LEASE)
    await a.start()
    try:
        b = await nodes("nms-b", shards=8)
        await _until(_pair_balanced_of(a, b, shards=8), within=10 * LEASE)
        shard = min(a.owned())
        old = a.lease_of(shard)
        assert old is not None
        cut = time.monotonic()
        proxy.cut()  # a's connection hangs: no error, no answer
        await asyncio.sleep(cut + LEASE - time.monotonic())
        assert not a.owned()  # it stopped acting on its shards within the lease

        async def a_gave_up_the_connection() -> bool:
            return not a.stats.connected

        # a hung connection is dropped (not waited on), so a reconnects when the link is back
        await _until(a_gave_up_the_connection, within=LEASE)

        async def b_has_all() -> bool:
            return len(b.owned()) == 8

        await _until(b_has_all, within=4 * LEASE)
        new = b.lease_of(shard)
        assert new is not None and new.epoch == old.epoch + 1
        await proxy.heal()
        # What a's state writer would send once the link is back: refused by the database.
        async with await AsyncConnection.connect(postgres, autocommit=True) as conn:
            await conn.execute("CREATE TABLE probe (shard int)")
            with pytest.raises(StaleLeaseError, match=f"epoch {old.epoch} of nms-a"):
                async with fenced(conn, old) as tx:
                    await tx.execute("INSERT INTO probe VALUES (%s)", (shard,))
            cur = await conn.execute("SELECT count(*) FROM probe")
            assert await cur.fetchone() == (0,)
        # a reconnects by itself and gets its share back, under new epochs
        await _until(_pair_balanced_of(a, b, shards=8), within=10 * LEASE)
        assert a.stats.reconnects >= 1 and a.stats.lease_lost >= 4
        assert all(lease.epoch > 0 for lease in map(a.lease_of, a.owned()) if lease)
    finally:
        await a.stop()
        await proxy.close()


def _pair_balanced_of(*managers: LeaseManager, shards: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        counts = sorted(len(m.owned()) for m in managers)
        return sum(counts) == shards and counts[-1] - counts[0] <= 1

    return check
