"""gufo sessions are bounded by the process's descriptor limit, and running out is a failed
poll, never a crash.

Found by the 100,000-device bench: the gufo adapter keeps one UDP socket per
device and its default cap (50,000) lay above the descriptor limit, so past
~20,000 devices every new session raised ``OSError: Too many open files`` out
of the poll (``poll_crashed`` and a traceback per device, 80,000 of them).
"""

from __future__ import annotations

import asyncio
import os
import resource
from collections.abc import Iterator

import pytest

from netalert.poll.client import Target
from netalert.poll.client_gufo import GufoClient, session_cap
from netalert.poll.plan import DevicePlan
from netalert.poll.poller import Poller
from tests.support.snmpd import Snmpd, SnmpdFactory
from tests.support.trees import builtin_tree

pytestmark = pytest.mark.daemon

DEVICES = 240
ROOM = 90  # descriptors left free above those open when the test starts


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def few_descriptors() -> Iterator[int]:
    """Lowers this process's soft RLIMIT_NOFILE to what is open now plus ROOM."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = open_descriptors() + ROOM
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        yield low
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_cap_leaves_descriptors_for_everything_else() -> None:
    assert session_cap(50_000, soft_limit=1024) == 768
    assert session_cap(50_000, soft_limit=20_000) == 18_976
    assert session_cap(5_000, soft_limit=65_536) == 5_000  # the configured bound when lower
    assert session_cap(50_000, soft_limit=-1) == 50_000  # unlimited (RLIM_INFINITY)
    assert session_cap(50_000, soft_limit=40) >= 8  # never none at all


async def test_more_devices_than_descriptors_all_get_polled(
    snmpd_factory: SnmpdFactory, few_descriptors: int
) -> None:
    agent: Snmpd = snmpd_factory(community="public")
    # distinct targets (one session each) on the one snmpd: the timeout is part of the key
    plans = [
        DevicePlan(
            f"d{i}",
            Target(agent.host, agent.port, "2c", community="public", timeout=2.0 + i / 1000),
            backend="gufo",
        )
        for i in range(DEVICES)
    ]
    client = GufoClient()
    poller = Poller(plans, builtin_tree(), clients={"gufo": client}, max_in_flight=16)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(poller.poll(p.name) for p in plans)), timeout=60
        )
        assert [r.status for r in results] == ["ok"] * DEVICES, {
            r.error for r in results if r.status != "ok"
        }
        assert client.stats.open <= client.max_sessions < DEVICES
        assert client.stats.evicted >= DEVICES - client.max_sessions
        assert open_descriptors() < few_descriptors
    finally:
        await client.close()


def test_the_session_counters_are_metrics() -> None:
    from netalert.poll.client import SessionStats
    from netalert.poll.poller import PollerStats
    from netalert.web.sources import poller_source

    stats, kept = PollerStats(), SessionStats(lambda: 7)
    kept.evicted, kept.exhausted = 3, 1
    stats.sessions.append((768, kept))
    samples = {s.name: s.value for s in poller_source(stats)() if hasattr(s, "value")}
    assert samples["netalert_poll_sessions"] == 7
    assert samples["netalert_poll_sessions_max"] == 768
    assert samples["netalert_poll_session_evictions_total"] == 3
    assert samples["netalert_poll_descriptors_exhausted_total"] == 1


def test_netalert_run_raises_its_soft_descriptor_limit_to_the_hard_one() -> None:
    from netalert.service import raise_descriptor_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
    try:
        assert raise_descriptor_limit() == (hard, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
