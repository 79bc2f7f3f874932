"""The cluster node's publishing against a real nats-server and PostgreSQL: a full
stream refuses a trap (counted, not retried for ever), and the node's health lines."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from netalert.cluster.node import ClusterNode
from netalert.config import load_config_text
from netalert.snmp.types import TrapEvent

pytestmark = pytest.mark.daemon


def _node(postgres: str, nats: str, extra: str = "") -> ClusterNode:
    config = load_config_text(
        f'[cluster]\npostgres = "{postgres}"\nnats = "{nats}"\nnode = "n1"\nshards = 4\n'
        f'lease = "3s"\n{extra}',
        env={},
    )

    def spawn(factory: Any, name: str, restart: bool) -> asyncio.Task[Any]:
        return asyncio.get_running_loop().create_task(factory(), name=name)

    return ClusterNode(SimpleNamespace(config=config), spawn=spawn)  # type: ignore[arg-type]


def _trap(n: int) -> TrapEvent:
    return TrapEvent(
        source="192.0.2.7",
        source_port=162,
        version="2c",
        trap_oid="1.3.6.1.6.3.1.1.5.3",
        trap_name="IF-MIB::linkDown",
        varbinds=(),
        uptime=n,
        received=1_700_000_000.0 + n,
        message_id=f"trap-{n}",
    )


async def test_a_full_stream_refuses_a_trap_and_it_is_counted(postgres: str, nats_url: str) -> None:
    node = _node(postgres, nats_url, "stream_max_messages = 1000\n")
    await node.open()
    try:
        assert node.problems() == []
        # nobody consumes (no trap handler): the stream fills up
        for n in range(1000):
            await node.publish(_trap(n))
        assert node.counts.published == 1000 and node.counts.refused == 0
        await asyncio.wait_for(node.publish(_trap(1000)), 10.0)  # refused, not retried
        assert node.counts.refused == 1
        await node.publish(_trap(5))  # an ID the stream has: a duplicate, stored once
        assert node.counts.duplicates == 1
        samples = {s.name: s.value for s in node.source()()}
        assert samples["netalert_cluster_traps_refused_total"] == 1
        assert samples["netalert_shards_owned"] == 4
    finally:
        await node.stop()
    assert node.transport is None and node.owned() == frozenset()
