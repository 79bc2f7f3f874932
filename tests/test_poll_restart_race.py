"""An agent restarting between a poll's GET of sysUpTime and its walks.

The timing cannot be forced on a real snmpd, so the client here is a scripted
stand-in (a pure unit of the poller's decision); the real-agent restart cases
are in tests/test_faults_snmpd.py and tests/test_snmp_poller.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from netalert.mib import MibTree
from netalert.poll.client import Backend, Target
from netalert.poll.counters import Point, counter_went_back
from netalert.poll.plan import SYS_UPTIME, DevicePlan
from netalert.poll.poller import Poller
from netalert.snmp.types import SnmpType, VarBind
from tests.support.trees import builtin_tree

IN_OCTETS = "1.3.6.1.2.1.2.2.1.10"


class ScriptedAgent:
    """Answers sysUpTime from a list (one per GET) and ifInOctets.1 from another (one per walk)."""

    backend: Backend = "gufo"

    def __init__(self, uptimes: list[int], octets: list[int], wire: SnmpType) -> None:
        self.wire = wire  # the counter's type as the client reports it
        self.uptimes = uptimes
        self.octets = octets
        self.gets = 0

    async def get(self, target: Target, oids: Sequence[str]) -> list[VarBind]:
        self.gets += 1
        return [VarBind(SYS_UPTIME, SnmpType.TIMETICKS, self.uptimes.pop(0)) for _ in oids]

    async def get_next(self, target: Target, oids: Sequence[str]) -> list[VarBind]:
        raise AssertionError("not used")

    async def walk(self, target: Target, oid: str, *, max_varbinds: int = 100_000) -> list[VarBind]:
        return [VarBind(f"{IN_OCTETS}.1", self.wire, self.octets.pop(0))]

    async def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def tree() -> MibTree:
    return builtin_tree()  # shared, read-only


def plan() -> DevicePlan:
    return DevicePlan(
        "sw1", Target("127.0.0.1"), backend="gufo", get=(SYS_UPTIME,), walk=(IN_OCTETS,)
    )


# pysnmp reports a Counter32 as such; gufo-snmp hands every integer over untyped, and its
# adapter reports INTEGER (the MIB, not the wire, says the column is a counter)
@pytest.mark.parametrize("wire", [SnmpType.COUNTER32, SnmpType.INTEGER])
@pytest.mark.parametrize(
    ("uptimes", "octets", "rate", "gets"),
    [
        # steady: 60 s apart, +6000 octets -> 100/s, one GET per poll
        ([100_000, 106_000], [1_000, 7_000], 100.0, 2),
        # a real Counter32 wrap, the agent did not restart: the recheck agrees, rate kept
        ([100_000, 106_000, 106_001], [2**32 - 1_000, 5_000], 100.0, 3),
        # restart between the GET (old uptime 106_000) and the walk: recheck says 150 -> no rate
        ([100_000, 106_000, 150], [4_000_000_000, 3_000], None, 3),
    ],
)
async def test_restart_between_get_and_walk(
    tree: MibTree,
    uptimes: list[int],
    octets: list[int],
    rate: float | None,
    gets: int,
    wire: SnmpType,
) -> None:
    agent = ScriptedAgent(list(uptimes), list(octets), wire)
    clock = iter([0.0, 0.0, 0.0, 0.0, 60.0, 60.0, 60.0, 60.0, 60.0])
    poller = Poller([plan()], tree, clients={"gufo": agent}, clock=lambda: next(clock))
    await poller.poll("sw1")
    second = await poller.poll("sw1")
    await poller.stop()
    [row] = second.rows
    assert row.rates.get("ifInOctets") == rate
    assert agent.gets == gets
    assert second.restarted is (rate is None)


def test_counter_went_back() -> None:
    prev = {"1.1": Point(10, 0.0)}
    assert counter_went_back(prev, [VarBind("1.1", SnmpType.COUNTER32, 9)])
    assert not counter_went_back(prev, [VarBind("1.1", SnmpType.COUNTER32, 10)])
    assert counter_went_back(prev, [VarBind("1.1", SnmpType.INTEGER, 9)])  # as gufo reports it
    assert not counter_went_back(prev, [VarBind("1.1", SnmpType.GAUGE32, 1)])
    assert not counter_went_back(prev, [VarBind("1.2", SnmpType.COUNTER64, 1)])


class SlowWalkAgent(ScriptedAgent):
    """A ScriptedAgent whose walks take ``walk_s`` seconds of the poller's clock."""

    def __init__(self, uptimes: list[int], octets: list[int], now: list[float], walk_s: float):
        super().__init__(uptimes, octets, SnmpType.COUNTER32)
        self.now = now
        self.walk_s = walk_s

    async def walk(self, target: Target, oid: str, *, max_varbinds: int = 100_000) -> list[VarBind]:
        self.now[0] += self.walk_s
        return await super().walk(target, oid, max_varbinds=max_varbinds)


async def test_poll_after_a_restart_mid_poll_is_not_a_restart(tree: MibTree) -> None:
    """The recheck's sysUpTime stands for the poll with the time it was read at.

    The agent restarts 3 s after the GET of the second poll (at 63 s); the walk ends,
    and the recheck reads 200 ticks, at 65 s. The third poll, at 120 s, finds 57 s
    of uptime: no restart since the second poll, and its rate is there.
    """
    now = [0.0]
    uptimes = [100_000, 106_000, 200, 200 + 5_500]
    agent = SlowWalkAgent(uptimes, [1_000_000, 3_000, 8_500], now, walk_s=5.0)
    poller = Poller([plan()], tree, clients={"gufo": agent}, clock=lambda: now[0])
    results = []
    for at in (0.0, 60.0, 120.0):
        now[0] = at
        results.append(await poller.poll("sw1"))
    await poller.stop()
    assert [r.restarted for r in results] == [False, True, False]
    assert agent.gets == 4  # one recheck, in the second poll
    [row] = results[2].rows
    assert row.rates.get("ifInOctets") == pytest.approx(5_500 / 55)
    assert poller.stats.restarts == 1
