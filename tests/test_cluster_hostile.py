"""Hostile messages on the trap stream, against a real nats-server, PostgreSQL and node.

What a cluster node consumes from ``netalert.traps.<shard>`` is trusted as much as the
database, but a garbage, truncated, wrong-version, out-of-range, wrong-shard or
poison message must not crash or stall the consumer, must not be acknowledged and
lost silently, and must not be delivered again for ever: it is terminated, counted
in ``netalert_cluster_traps_rejected_total{reason}`` and logged (escaped).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from netalert.cluster.codec import encode
from netalert.cluster.node import ClusterNode
from netalert.config import load_config_text
from netalert.snmp.types import TrapEvent
from tests.test_cluster_transport import _trap as stream_trap

pytestmark = pytest.mark.daemon

SHARDS = 4


def _trap(source: str, *, device: str = "") -> TrapEvent:
    """A linkDown of ``source`` (of ``device``: its shard is the device's then)."""
    return replace(stream_trap(source), device=device, message_id=f"id-{source}-{device}")


def _config(postgres: str, nats: str, extra: str, lease: str = "3s") -> Any:
    return load_config_text(
        f'[cluster]\npostgres = "{postgres}"\nnats = "{nats}"\nnode = "n1"\n'
        f'shards = {SHARDS}\nlease = "{lease}"\nack_wait = "2s"\n{extra}',
        env={},
    )


@pytest.fixture
async def node_of(postgres: str, nats_url: str) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    nodes: list[ClusterNode] = []

    def spawn(factory: Any, name: str, restart: bool) -> asyncio.Task[Any]:
        return asyncio.get_running_loop().create_task(factory(), name=name)

    async def make(
        handler: Callable[[TrapEvent], Awaitable[None]], extra: str = "", lease: str = "3s"
    ) -> Any:
        config = _config(postgres, nats_url, extra, lease)
        node = ClusterNode(SimpleNamespace(config=config), spawn=spawn)  # type: ignore[arg-type]
        nodes.append(node)
        await node.open()
        await node.start()
        node.set_trap_handler(handler)
        await _until(lambda: node.acting == frozenset(range(SHARDS)), "all shards taken")
        return node

    yield make
    for node in nodes:
        await node.stop()


async def _until(check: Callable[[], bool], what: str, within: float = 15.0) -> None:
    for _ in range(int(within / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {within}s")


def _rejected(node: ClusterNode) -> dict[str, float]:
    return {
        s.labels["reason"]: s.value
        for s in node.source()()
        if s.name == "netalert_cluster_traps_rejected_total"
    }


async def _drained(node: ClusterNode, within: float = 5.0) -> dict[int, int]:
    """The stream's pending traps per shard, once none is left (or what is left)."""
    assert node.transport is not None
    for _ in range(int(within / 0.1)):
        pending = await node.transport.pending()
        if not pending:
            break
        await asyncio.sleep(0.1)
    return pending


async def test_malformed_and_wrong_shard_messages_are_terminated_and_counted(
    node_of: Callable[..., Awaitable[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    handled: list[TrapEvent] = []

    async def handler(trap: TrapEvent) -> None:
        handled.append(trap)

    caplog.set_level(logging.INFO)
    node: ClusterNode = await node_of(handler)
    assert node.transport is not None
    js = node.transport.js
    good = _trap("192.0.2.7")
    record = json.loads(encode(good))
    port = [*record[:2], 70_000, *record[3:]]  # a port no datagram has
    text = json.dumps(record).replace('"public"', '"\\ud800\\u001b[31mx"')  # a lone surrogate
    hostile = [
        b"\x00garbage \x1b[31mred\x1b[0m",  # not JSON
        encode(good)[:40],  # truncated
        b"[2," + encode(good)[3:],  # a later format version
        json.dumps(port).encode(),
        text.encode(),
        b"[1, " + b"[" * 20 + b"]" * 20 + b"]",  # JSON, not a trap
    ]
    for data in hostile:
        await js.publish(node.transport.subject(0), data)
    # a well-formed trap of another shard (its device's), published on this one
    stray = _trap("192.0.2.8", device="edge-\x1b[2J")
    home = node.shard_of_trap(stray)
    await js.publish(node.transport.subject((home + 1) % SHARDS), encode(stray))
    await node.publish(good)

    await _until(lambda: good in handled, "the good trap handled")
    # (a good trap whose ack came after ack_wait on a busy machine may come twice)
    assert set(map(repr, handled)) == {repr(good)}, handled
    await _until(lambda: sum(_rejected(node).values()) == 7, f"7 rejected: {_rejected(node)}")
    assert _rejected(node) == {
        "not_json": 2,
        "wrong_version": 1,
        "malformed": 3,
        "wrong_shard": 1,
    }
    assert await _drained(node) == {}  # nothing waits to be delivered again
    await asyncio.sleep(4.5)  # past ack_wait: nothing comes back
    assert set(map(repr, handled)) == {repr(good)}, handled
    assert sum(_rejected(node).values()) == 7
    log = caplog.text
    assert "trap_message_refused" in log and "wrong_shard" in log
    assert "\x1b" not in log and "\ud800" not in log  # escaped


async def test_a_poison_trap_is_given_up_after_max_deliver_without_stalling_its_shard(
    node_of: Callable[..., Awaitable[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    tries: dict[str, int] = {}

    async def handler(trap: TrapEvent) -> None:
        tries[trap.source] = tries.get(trap.source, 0) + 1
        if trap.source == "192.0.2.66":
            raise RuntimeError("cannot commit this one")

    caplog.set_level(logging.INFO)
    # A lease of 10 s (renewed every 3.3 s): at load 5 or more a 3 s lease can lapse for a
    # moment, and a fetch under way when the shard's consumer is stopped then (most likely
    # what happened: a helper's run found 2 tries for 3 deliveries, hand-backs counted)
    # takes a delivery the node never sees (NATS counts it, and delivers it again).
    node: ClusterNode = await node_of(handler, "max_deliver = 3\n", lease="10s")
    poison = _trap("192.0.2.66")
    await node.publish(poison)
    # a trap of the same shard published after it is handled, not held behind it
    after = next(
        _trap(f"192.0.2.{n}")
        for n in range(100, 200)
        if node.shard_of_trap(_trap(f"192.0.2.{n}")) == node.shard_of_trap(poison)
    )
    await node.publish(after)
    await _until(lambda: tries.get(after.source, 0) >= 1, "the next trap handled", within=10.0)
    await _until(lambda: _rejected(node).get("undeliverable") == 1, "poison given up", 30.0)
    # Given up at its first try at or past the 3rd delivery. Each delivery was tried, or
    # handed back unhandled when the node's lease lapsed for a moment (a busy machine
    # renews late), or, rarely, never seen: a pull whose wait ran out just as NATS sent
    # it (NATS counts that delivery and sends the trap again after ack_wait; seen once
    # at load 3, 8 xdist workers: "deliveries=4" after 3 tries).
    found = re.search(r"event=trap_undeliverable .*?deliveries=(\d+)", caplog.text)
    assert found is not None, caplog.text
    deliveries = int(found.group(1))
    seen = tries[poison.source] + node.handed_back()
    assert deliveries >= 3 and 1 <= seen <= deliveries, (deliveries, seen)
    assert 1 <= tries[poison.source] <= 3  # tried at deliveries below 3, then given up
    assert await _drained(node) == {}
    await asyncio.sleep(4.5)  # past ack_wait: it is not delivered again
    assert tries[poison.source] + node.handed_back() == seen
    assert "trap_undeliverable" in caplog.text and "192.0.2.66" in caplog.text


async def test_a_trap_handed_back_while_the_lease_lapsed_is_counted_and_redelivered(
    node_of: Callable[..., Awaitable[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """A delivery that comes while the node's lease has lapsed is given back unhandled
    (for the shard's owner), counted, and still counts towards max_deliver. (A CI run
    saw this on a loaded machine: the poison test above found 2 tries for 3 deliveries.)"""
    tries: list[int] = []

    async def handler(trap: TrapEvent) -> None:
        tries.append(1)
        raise RuntimeError("cannot commit this one")

    caplog.set_level(logging.INFO)
    node: ClusterNode = await node_of(handler, "max_deliver = 3\n")
    real = node.leases.lease_of
    lapses: list[int] = []

    def lease_of(shard: int) -> Any:
        # the node's look at its lease for the trap's second delivery finds it lapsed
        asked_for_a_delivery = "delivery" in sys._getframe(1).f_locals
        if len(tries) == 1 and not lapses and asked_for_a_delivery:
            lapses.append(shard)
            return None
        return real(shard)

    node.leases.lease_of = lease_of  # type: ignore[method-assign]
    await node.publish(_trap("192.0.2.67"))
    await _until(lambda: _rejected(node).get("undeliverable") == 1, "poison given up", 30.0)
    assert len(tries) == 2 and len(lapses) == 1
    assert node.handed_back() == 1
    assert "deliveries=3" in caplog.text
    samples = {s.name: s.value for s in node.source()() if not s.labels}
    assert samples["netalert_cluster_traps_handed_back_total"] == 1
