"""A poller that cannot keep its schedule says so.

Found by the 100,000-device bench: on one saturated core the poller ran 69 % of
the polls that came due and still reported 0 overruns (an overrun only counts a
poll due while the same device's previous poll still runs). Polls that start
late are measured (``netalert_poll_lateness_seconds``), polls the scheduler
folded into a later run are counted (``netalert_polls_missed_total``) and a
warning is logged.

The client is a stand-in answering at once (a pure unit of the scheduler's
bookkeeping): the event loop is blocked on purpose, which no real agent can do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence

import pytest

from netalert.mib import MibTree
from netalert.poll.client import Backend, Target
from netalert.poll.plan import SYS_UPTIME, DevicePlan
from netalert.poll.poller import Poller
from netalert.snmp.types import SnmpType, VarBind
from netalert.web.sources import poller_source
from tests.support.trees import builtin_tree

pytestmark = pytest.mark.unit


class QuickAgent:
    """Answers every GET at once with a rising sysUpTime."""

    backend: Backend = "gufo"

    def __init__(self) -> None:
        self.gets = 0

    async def get(self, target: Target, oids: Sequence[str]) -> list[VarBind]:
        self.gets += 1
        return [VarBind(SYS_UPTIME, SnmpType.TIMETICKS, 100 * self.gets) for _ in oids]

    async def get_next(self, target: Target, oids: Sequence[str]) -> list[VarBind]:
        raise AssertionError("not used")

    async def walk(self, target: Target, oid: str, *, max_varbinds: int = 100_000) -> list[VarBind]:
        raise AssertionError("not used")

    async def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def tree() -> MibTree:
    return builtin_tree()  # shared, read-only


def plans(n: int, interval: float) -> list[DevicePlan]:
    return [
        DevicePlan(
            f"d{i}",
            Target("127.0.0.1"),
            backend="gufo",
            interval=interval,
            jitter=0.0,
            get=(SYS_UPTIME,),
        )
        for i in range(n)
    ]


class Lines(logging.Handler):
    """The poller's log lines, caught at its own logger (not through the root's handlers,
    which other tests in the same process may have replaced)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def behind(self) -> list[str]:
        return [line for line in self.lines if "poll_schedule_behind" in line]


@pytest.fixture
def lines() -> Iterator[Lines]:
    logger = logging.getLogger("netalert.poll.poller")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def samples(poller: Poller) -> dict[str, object]:
    return {s.name: s for s in poller_source(poller.stats)()}


async def test_a_blocked_loop_counts_missed_and_late_polls(tree: MibTree, lines: Lines) -> None:
    interval = 0.2
    poller = Poller(plans(5, interval), tree, clients={"gufo": QuickAgent()})
    poller.start(spread=False)
    try:
        await asyncio.sleep(0.5)  # a few polls on time
        time.sleep(1.5)  # noqa: ASYNC251 - the loop is stuck: 7 runs of each device come due
        await asyncio.sleep(0.5)
    finally:
        await poller.stop()
    stats = poller.stats
    # each device missed at least 5 of the ~7 runs due while the loop was stuck
    assert stats.missed >= 5 * 5, stats.missed
    assert stats.lateness.count >= 5
    got = samples(poller)
    assert got["netalert_polls_missed_total"].value == stats.missed  # type: ignore[attr-defined]
    late = got["netalert_poll_lateness_seconds"]
    assert late.sum == stats.lateness.sum  # type: ignore[attr-defined]
    behind = lines.behind()
    assert len(behind) == 1, lines.lines  # once a minute, not per poll
    assert "missed=" in behind[0]


async def test_polls_started_late_are_measured(tree: MibTree, lines: Lines) -> None:
    poller = Poller(plans(5, 2.0), tree, clients={"gufo": QuickAgent()})
    poller.start(spread=False)  # every device due now
    try:
        time.sleep(1.2)  # noqa: ASYNC251 - the loop is busy: each first run starts ~1.2 s late
        await asyncio.sleep(0.3)
    finally:
        await poller.stop()
    assert poller.stats.missed == 0  # late, within the interval: nothing skipped
    assert poller.stats.lateness.count == 5
    assert poller.stats.lateness.sum >= 5 * 1.1
    behind = lines.behind()
    # the first late poll is logged at once, the next ones summed in the next warning
    assert len(behind) == 1 and "late=1 " in behind[0], behind


async def test_polls_on_time_count_nothing_missed(tree: MibTree) -> None:
    interval = 0.5
    agent = QuickAgent()
    poller = Poller(plans(3, interval), tree, clients={"gufo": agent})
    poller.start(spread=False)
    try:
        await asyncio.sleep(1.2)
    finally:
        await poller.stop()
    assert agent.gets >= 3 * 2
    assert poller.stats.missed == 0
    assert poller.stats.lateness.count == agent.gets
