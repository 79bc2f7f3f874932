"""The shared SNMPv3 state against a real PostgreSQL: two nodes' :class:`UsmShare` on one
database, each with its own clock table and engine-ID registry, as two `netalert run` have.

* a sender's clock learned by one node reaches the other, which then refuses what the
  first would (a stale trap, the replay of the trap that set the reference); a row only
  moves forward, whichever node writes last;
* an engine ID one node's poller learned reaches the other node's registry (and so its
  trap receiver) when the device is in that node's config, and a node that starts
  later reads everything at open, its own earlier rows included;
* PostgreSQL away: the change stays due, is counted, and is written once it is back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from psycopg import AsyncConnection

from netalert.cluster.schema import migrate
from netalert.cluster.usm import UsmShare
from netalert.snmp.wire.engines import EngineIdRegistry
from netalert.snmp.wire.timeliness import EngineClocks
from tests.support.postgres import PostgresFactory

pytestmark = pytest.mark.daemon

ENGINE = bytes.fromhex("8000000001020304")


class Clock:
    """A settable monotonic clock (each node its own, not in step)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Make = Callable[..., UsmShare]


async def _migrate(dsn: str) -> None:
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        await migrate(conn)


@pytest.fixture
async def make(postgres: str) -> AsyncIterator[Make]:
    await _migrate(postgres)
    made: list[UsmShare] = []

    def build(
        node: str, start: float = 0.0, dsn: str = postgres, devices: tuple[str, ...] = ("router1",)
    ) -> UsmShare:
        share = UsmShare(
            dsn,
            node=node,
            every=0.2,
            clocks=EngineClocks(clock=Clock(start)),
            engines=EngineIdRegistry(),
            devices=lambda: devices,
        )
        made.append(share)
        return share

    yield build
    for share in made:
        await share.stop()


def _clock(share: UsmShare) -> Clock:
    clock = share.clocks.clock
    assert isinstance(clock, Clock)
    return clock


async def test_a_clock_learned_by_one_node_is_judged_by_the_other(make: Make) -> None:
    a, b = make("na", 100.0), make("nb", 5000.0)
    await a.open()
    await b.open()
    assert a.clocks.admit(ENGINE, 7, 1000, b"first")
    assert a.clocks.admit(ENGINE, 7, 1300, b"later")
    # b never saw the engine: alone, it would take the first trap again
    assert b.clocks.get(ENGINE) is None
    await a.sync(within=5.0)
    await b.sync(within=5.0)
    known = b.clocks.get(ENGINE)
    assert known is not None and (known.boots, known.time) == (7, 1300)
    assert abs(known.learned - 5000.0) < 2.0  # its age carried over, on b's own clock
    assert not b.clocks.admit(ENGINE, 7, 1000, b"first")  # the replay
    assert not b.clocks.admit(ENGINE, 6, 9999, b"lower")  # the engine before its restart
    assert b.clocks.admit(ENGINE, 7, 1301, b"next")
    assert (a.stats.written, b.stats.adopted) == (1, 1)
    # a row only moves forward: a's older reference written late changes nothing
    a.clocks.admit(b"\x80\x00\x00\x00\x01\x09", 1, 1, b"x")
    await b.sync(within=5.0)  # writes 7/1301
    a._clocks_due[ENGINE] = a.clocks.get(ENGINE)  # type: ignore[assignment]
    await a.sync(within=5.0)
    known = a.clocks.get(ENGINE)
    assert known is not None and (known.boots, known.time) == (7, 1301)
    c = make("nc", 0.0)  # a node started later: everything at open
    await c.open()
    assert len(c.clocks) == 2 and c.stats.adopted == 2


async def test_an_engine_id_learned_by_one_nodes_poller_reaches_the_other(make: Make) -> None:
    a, b = make("na", devices=("router1", "gone")), make("nb")
    await a.open()
    await b.open()
    heard: list[bytes] = []
    b.engines.subscribe(lambda record: heard.append(record.engine_id))  # as b's receiver does
    assert a.engines.add("router1", "192.0.2.1", 161, ENGINE, "shaaes")
    a.engines.add("gone", "192.0.2.9", 161, b"\x80\x00\x00\x00\x01\x09", "shaaes")
    await a.sync(within=5.0)
    await b.sync(within=5.0)
    record = b.engines.get_by_engine(ENGINE)
    assert record is not None and (record.device, record.host, record.port) == (
        "router1",
        "192.0.2.1",
        161,
    )
    assert heard == [ENGINE]
    assert b.engines.get("gone") is None  # not in b's config (removed there): not credited
    await b.sync(within=5.0)  # what b took from a is not written back as b's
    assert b.stats.written == 0 and a.stats.written == 2
    await a.stop()
    again = make("na")  # the same node restarted: its own rows too
    await again.open()
    assert again.engines.get("router1") is not None


async def test_postgres_away_keeps_the_change_due(
    postgres_factory: PostgresFactory, make: Make
) -> None:
    server = postgres_factory()
    dsn = server.create_database()
    await _migrate(dsn)
    a, b = make("na", dsn=dsn), make("nb", dsn=dsn)
    await a.open()
    await b.open()
    server.stop()
    assert a.clocks.admit(ENGINE, 3, 50, b"d")
    await a.sync(within=5.0)
    assert a.stats.failures == 1 and a.stats.written == 0
    server.start()
    await a.sync(within=10.0)
    assert a.stats.written == 1
    await b.sync(within=10.0)  # its connection died with the server: counted, dropped
    assert b.stats.failures == 1
    await b.sync(within=10.0)  # and made again
    known = b.clocks.get(ENGINE)
    assert known is not None and (known.boots, known.time) == (3, 50)
