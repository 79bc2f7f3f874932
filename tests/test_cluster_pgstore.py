"""The alert store on PostgreSQL: the same load/save contract as SQLite and memory, fenced
saves (a stale epoch writes nothing, only the lease owner writes), PostgreSQL restarts."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import AsyncConnection

from netalert.alerts.lifecycle import Phase
from netalert.alerts.model import Alert, AlertState
from netalert.alerts.store import AlertStore, MemoryAlertStore, SqliteAlertStore
from netalert.alerts.table import AlertRecord
from netalert.cluster.errors import StaleLeaseError
from netalert.cluster.leases import Lease, LeaseManager
from netalert.cluster.pgstore import PgAlertStore
from netalert.cluster.schema import migrate
from netalert.cluster.shards import shard_of
from netalert.errors import StateWriteError
from netalert.snmp.types import SnmpType, VarBind
from netalert.state import open_database
from tests.support.postgres import PostgresFactory

pytestmark = pytest.mark.daemon

SHARDS = 8
T0 = 1_790_000_000.0
NODE = "nms-a"


def _lost() -> None:
    pytest.fail("a save was dropped")


# --- leases set by hand (the sync tests); the LeaseManager tests use real ones ----------


def _migrate(dsn: str) -> None:
    async def run() -> None:
        async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
            await migrate(conn)

    asyncio.run(run())


def _grant(
    dsn: str, node: str, epoch: int, shards: range = range(SHARDS), ttl: str = "1 hour"
) -> None:
    """Makes ``node`` the holder of ``shards`` at ``epoch`` for ``ttl``, as a takeover would."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for shard in shards:
            conn.execute(
                "INSERT INTO shard_leases (shard, node, epoch, expires) "
                "VALUES (%s, %s, %s, now() + %s::interval) ON CONFLICT (shard) DO UPDATE "
                "SET node = EXCLUDED.node, epoch = EXCLUDED.epoch, expires = EXCLUDED.expires",
                (shard, node, epoch, ttl),
            )


def _leases(node: str, epoch: int) -> Callable[[int], Lease | None]:
    """What a node believes: it holds every shard at ``epoch``."""
    return lambda shard: Lease(shard, node, epoch)


def _rows(dsn: str) -> dict[str, tuple[str, int, int]]:
    """fingerprint -> (value, shard, epoch) as stored."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute("SELECT fingerprint, value, shard, epoch FROM alerts")
        return {fp: (value, shard, epoch) for fp, value, shard, epoch in cur.fetchall()}


def _device_in(shard: int, taken: int = 0) -> str:
    """A device name whose shard is ``shard`` (the ``taken``-th such name)."""
    names = (f"dev{i}" for i in itertools.count() if shard_of(f"dev{i}", SHARDS) == shard)
    return next(itertools.islice(names, taken, None))


# --- records ---------------------------------------------------------------------------


def make_record(
    n: int,
    *,
    device: str | None = None,
    state: AlertState = AlertState.FIRING,
    value: str = "v",
    **engine: Any,
) -> AlertRecord:
    vbs = (
        VarBind("1.3.6.1.2.1.2.2.1.6.3", SnmpType.OCTET_STRING, b"\x00\x1a\xff", "IF-MIB::x", "3"),
        VarBind("1.3.6.1.2.1.1.3.0", SnmpType.TIMETICKS, 12345, "", "", "0:02:03.45"),
        VarBind("1.3.6.1.6.3.1.1.4.1.0", SnmpType.OID, "1.3.6.1.4.1.9", "", "", ""),
    )
    alert = Alert(
        fingerprint=f"{n:016x}",
        rule="ifDown",
        severity="critical" if n % 2 else "warning",
        device=device or f"d{n}",
        labels=MappingProxyType(
            {"rule": "ifDown", "device": device or f"d{n}", "ifName": "Gi0/1 ü"}
        ),
        annotations=MappingProxyType({"summary": "link down «x»"}),
        state=state,
        starts_at=T0 + n / 3,
        ends_at=T0 + n + 0.1 if state is AlertState.RESOLVED else None,
        updated_at=T0 + n * 1.5,
        value=value,
        count=n + 1,
        flapping=bool(n % 3 == 0),
        silenced=bool(n % 4 == 0),
        source="trap" if n % 2 else "poll",
        varbinds=vbs,
    )
    return AlertRecord(
        alert=alert, key=f"trap|ifDown|d{n}|{n}", phase=Phase(state, T0, T0 + 2), **engine
    )


# --- the backends ----------------------------------------------------------------------


@dataclass
class Backend:
    """One store implementation: ``open()`` a store on the same data (a restart),
    ``reset()`` empties the data; ``persists`` is False for the memory store."""

    name: str
    open: Callable[[], AlertStore]
    reset: Callable[[], None]
    persists: bool = True


def _memory_backend() -> Backend:
    return Backend("memory", MemoryAlertStore, lambda: None, persists=False)


def _sqlite_backend(path: Path) -> Backend:
    def reset() -> None:
        db = open_database(path)
        with db.conn:
            db.conn.execute("DELETE FROM alerts")

    def open_store() -> AlertStore:
        return SqliteAlertStore(open_database(path))

    open_store()  # creates the table
    return Backend("sqlite", open_store, reset)


def _postgres_backend(dsn: str, opened: list[PgAlertStore]) -> Backend:
    _migrate(dsn)
    _grant(dsn, NODE, 1)

    def open_store() -> AlertStore:
        store = PgAlertStore(dsn, node=NODE, shards=SHARDS, lease_of=_leases(NODE, 1))
        opened.append(store)
        return store

    def reset() -> None:
        while opened:
            opened.pop().close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM alerts")

    return Backend("postgres", open_store, reset)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    opened: list[PgAlertStore] = []
    if request.param == "memory":
        yield _memory_backend()
    elif request.param == "sqlite":
        yield _sqlite_backend(tmp_path)
    else:
        yield _postgres_backend(request.getfixturevalue("postgres"), opened)
    for store in opened:
        store.close()


def _loaded(backend: Backend) -> dict[str, AlertRecord]:
    """What a freshly opened store loads, by fingerprint (each fingerprint once)."""
    records = backend.open().load()
    by_fp = {r.alert.fingerprint: r for r in records}
    assert len(by_fp) == len(records)
    return by_fp


def _expected(backend: Backend, model: dict[str, AlertRecord]) -> dict[str, AlertRecord]:
    return dict(model) if backend.persists else {}


# --- the contract, the same for every backend --------------------------------------------


def test_contract_empty_store_loads_nothing(backend: Backend) -> None:
    assert backend.open().load() == []
    backend.open().save([], [], on_lost=_lost)  # an empty save is allowed and writes nothing
    assert backend.open().load() == []


def test_contract_saved_records_load_back_exactly(backend: Backend) -> None:
    records = [
        make_record(1),
        make_record(2, state=AlertState.PENDING, history="0101", sampled_at=T0 + 9.25),
        make_record(
            3,
            state=AlertState.RESOLVED,
            flap_since=T0 + 1,
            flap_changes=4,
            notified="resolved",
            confirm_index="7",
            confirm_next=T0 + 60,
            signature="sig",
            extra={"n": [1, 2.5, None], "s": "é"},
        ),
    ]
    backend.open().save(records, [], on_lost=_lost)
    assert _loaded(backend) == _expected(backend, {r.alert.fingerprint: r for r in records})


def test_contract_updates_replace_and_removals_delete(backend: Backend) -> None:
    store = backend.open()
    store.save([make_record(1), make_record(2), make_record(3)], [], on_lost=_lost)
    resolved = make_record(2, state=AlertState.RESOLVED, notified="resolved")
    store.save([resolved], ["0000000000000001", "ffffffffffffffff"], on_lost=_lost)
    store.save([], ["0000000000000003"], on_lost=_lost)
    assert _loaded(backend) == _expected(backend, {resolved.alert.fingerprint: resolved})


def test_contract_removal_and_upsert_of_one_fingerprint_in_one_save(backend: Backend) -> None:
    store = backend.open()
    store.save([make_record(1)], [], on_lost=_lost)
    again = make_record(1, value="again")
    store.save([again], [again.alert.fingerprint], on_lost=_lost)  # deletes first, then writes
    assert _loaded(backend) == _expected(backend, {again.alert.fingerprint: again})


def test_contract_any_text_from_the_network_loads_back(backend: Backend) -> None:
    # a value rendered from an OCTET STRING may hold NUL and control characters
    odd = [make_record(1, value="a\x00b\x01\n"), make_record(2, value="\\0 \\x00 ü\u2028")]
    backend.open().save(odd, [], on_lost=_lost)
    assert _loaded(backend) == _expected(backend, {r.alert.fingerprint: r for r in odd})


_TEXT = st.text(alphabet=st.sampled_from("a0\x00\\ü"), max_size=8) | st.text(max_size=12)
_STEP = st.tuples(
    st.lists(
        st.tuples(st.integers(0, 7), st.sampled_from(list(AlertState)), _TEXT, _TEXT),
        max_size=5,
    ),
    st.lists(st.integers(0, 9), max_size=3),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(_STEP, max_size=6))
def test_contract_any_sequence_of_saves_loads_as_the_model(
    backend: Backend, steps: list[tuple[list[tuple[int, AlertState, str, str]], list[int]]]
) -> None:
    backend.reset()
    model: dict[str, AlertRecord] = {}
    store = backend.open()
    for changes, removals in steps:
        removed = [f"{n:016x}" for n in removals]
        changed = [
            make_record(n, state=state, value=value, history=history)
            for n, state, value, history in changes
        ]
        store.save(changed, removed, on_lost=_lost)
        for fp in removed:
            model.pop(fp, None)
        model.update((r.alert.fingerprint, r) for r in changed)
    assert _loaded(backend) == _expected(backend, model)


# --- fencing (PostgreSQL only) ---------------------------------------------------------


@pytest.fixture
def fenced_db(postgres: str) -> str:
    _migrate(postgres)
    _grant(postgres, NODE, 1)
    return postgres


def test_rows_carry_their_shard_and_epoch(fenced_db: str) -> None:
    store = PgAlertStore(fenced_db, node=NODE, shards=SHARDS, lease_of=_leases(NODE, 1))
    devices = [_device_in(shard) for shard in range(SHARDS)]
    store.save([make_record(n, device=d) for n, d in enumerate(devices)], [], on_lost=_lost)
    rows = _rows(fenced_db)
    assert {fp: (shard, epoch) for fp, (_, shard, epoch) in rows.items()} == {
        f"{n:016x}": (shard_of(d, SHARDS), 1) for n, d in enumerate(devices)
    }
    assert sorted(shard for _, shard, _ in rows.values()) == list(range(SHARDS))
    store.close()


def test_a_stale_epoch_save_is_refused_and_writes_nothing(fenced_db: str) -> None:
    store = PgAlertStore(fenced_db, node=NODE, shards=SHARDS, lease_of=_leases(NODE, 1))
    moving, staying = _device_in(3), _device_in(5)
    store.save([make_record(1, device=moving), make_record(2, device=staying)], [], on_lost=_lost)
    before = _rows(fenced_db)
    _grant(fenced_db, "nms-b", 2, range(3, 4))  # shard 3 moved on to nms-b, epoch 2
    # one batch touching the moved shard and a still-held one: all of it is refused
    batch = [make_record(1, device=moving, value="late"), make_record(2, device=staying, value="x")]
    with pytest.raises(StaleLeaseError) as refused:
        store.save([*batch, make_record(9, device=moving)], [], on_lost=_lost)
    assert (refused.value.shard, refused.value.epoch) == (3, 1)
    assert (refused.value.current_node, refused.value.current_epoch) == ("nms-b", 2)
    with pytest.raises(StaleLeaseError):
        store.save([], ["0000000000000001"], on_lost=_lost)  # a removal is fenced too
    assert _rows(fenced_db) == before
    # the shard it still holds takes a save alone
    store.save([make_record(2, device=staying, value="x")], [], on_lost=_lost)
    assert _rows(fenced_db)["0000000000000002"][0] == "x"
    store.close()


def test_an_expired_lease_refuses_its_own_node(fenced_db: str) -> None:
    _grant(fenced_db, NODE, 1, ttl="-1 second")  # same node, same epoch, but run out
    store = PgAlertStore(fenced_db, node=NODE, shards=SHARDS, lease_of=_leases(NODE, 1))
    with pytest.raises(StaleLeaseError, match="held by nobody"):
        store.save([make_record(1)], [], on_lost=_lost)
    assert _rows(fenced_db) == {}
    store.close()


async def test_two_nodes_saving_to_one_shard_only_the_owner_writes(postgres: str) -> None:
    managers = {name: LeaseManager(postgres, node=name, shards=SHARDS, lease=3.0) for name in "ab"}
    for manager in managers.values():
        await manager.start()
    stores: dict[str, PgAlertStore] = {}
    try:
        for _ in range(100):  # the second node takes its share within a few renewals
            if all(m.owned() for m in managers.values()):
                break
            await asyncio.sleep(0.1)
        a, b = managers["a"], managers["b"]
        assert a.owned() and b.owned() and not a.owned() & b.owned()
        stores = {
            name: PgAlertStore(postgres, node=name, shards=SHARDS, lease_of=m.lease_of)
            for name, m in managers.items()
        }
        shard = min(a.owned())
        device = _device_in(shard)

        async def save(name: str, value: str) -> BaseException | None:
            batch = [make_record(1, device=device, value=value)]
            try:
                await asyncio.to_thread(stores[name].save, batch, [], on_lost=_lost)
            except StaleLeaseError as exc:
                return exc
            return None

        results = await asyncio.gather(save("a", "from a"), save("b", "from b"))
        assert results[0] is None and isinstance(results[1], StaleLeaseError)
        assert _rows(postgres)["0000000000000001"][:2] == ("from a", shard)
        # b forging a's epoch is refused as well: the lease names the node
        lease = a.lease_of(shard)
        assert lease is not None
        forged = PgAlertStore(
            postgres, node="b", shards=SHARDS, lease_of=lambda s: replace(lease, node="b")
        )
        with pytest.raises(StaleLeaseError):
            await asyncio.to_thread(
                forged.save, [make_record(1, device=device, value="forged")], [], on_lost=_lost
            )
        forged.close()
        # a leaves: b takes the shard at a new epoch; a's old lease writes nothing more
        old = replace(lease)
        await a.stop()
        for _ in range(100):
            if shard in b.owned():
                break
            await asyncio.sleep(0.1)
        new = b.lease_of(shard)
        assert new is not None and new.epoch > old.epoch
        late = PgAlertStore(postgres, node="a", shards=SHARDS, lease_of=lambda s: old)
        with pytest.raises(StaleLeaseError):
            await asyncio.to_thread(
                late.save, [make_record(1, device=device, value="late a")], [], on_lost=_lost
            )
        late.close()
        assert await save("b", "b owns it") is None
        assert _rows(postgres)["0000000000000001"] == ("b owns it", shard, new.epoch)
        loaded = await asyncio.to_thread(stores["b"].load)
        assert [r.alert.value for r in loaded] == ["b owns it"]
    finally:
        for store in stores.values():
            store.close()
        for manager in managers.values():
            await manager.stop()


# --- PostgreSQL restarted ----------------------------------------------------------------


def test_postgres_restarted_between_saves_reconnects_and_loses_nothing(
    postgres_factory: PostgresFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = postgres_factory()
    dsn = server.create_database()
    _migrate(dsn)
    _grant(dsn, NODE, 1)
    store = PgAlertStore(dsn, node=NODE, shards=SHARDS, lease_of=_leases(NODE, 1))
    store.save([make_record(1)], [], on_lost=_lost)
    server.restart()
    with caplog.at_level("WARNING", logger="netalert.cluster.pgstore"):
        store.save([make_record(2)], [], on_lost=_lost)  # the dead connection is replaced
    assert "cluster_store_failed" in caplog.text and "attempt=1" in caplog.text
    assert set(_rows(dsn)) == {"0000000000000001", "0000000000000002"}

    server.stop()
    with pytest.raises(StateWriteError, match="failed twice"):
        store.save([make_record(3)], [], on_lost=_lost)  # down: a clear error, nothing held
    server.start()
    store.save([make_record(3)], [], on_lost=_lost)  # the same batch again: it goes in
    assert {r.alert.fingerprint: r for r in store.load()} == {
        r.alert.fingerprint: r for r in (make_record(1), make_record(2), make_record(3))
    }
    store.close()
