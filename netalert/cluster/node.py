"""`netalert run` as one node of a cluster: its leases, the trap stream, who polls what.

:class:`ClusterNode` is the agent's stage ``cluster``, right after ``state``. At
open it starts the :class:`~netalert.cluster.leases.LeaseManager` (connect,
migrate, register, a first share of the shards) and connects the
:class:`~netalert.cluster.transport.TrapTransport`; either failing stops the
start with one line saying which. The node then acts on its shards once the
agent hands it the trap handler (:meth:`ClusterNode.set_trap_handler`, when the
alert stage is up): every :data:`WATCH` seconds it compares the shards it owns
with those it acts on, and at a change awaits the ``on_change`` listeners
(gained, lost), then gives the poller the devices of the new set and syncs the
trap consumers (one per owned shard). A shard lost by expiry is dropped at the
next look, and :meth:`ClusterNode.acts_on` answers from the lease itself, so a
poll result arriving after the loss is not used.

A trap received here goes to :meth:`ClusterNode.submit` (the receiver's sink: a
queue bounded by ``publish_hold_max``, never awaited) and one task publishes
the traps in order to ``netalert.traps.<shard>``, trying again while NATS cannot
take them. A trap consumed from an owned shard goes to the handler, which
returns once its state is committed; it is acknowledged only then, else
delivered again after ``ack_wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
import psycopg
from nats.js.errors import APIError

from netalert.cluster.codec import encode, message_id
from netalert.cluster.errors import ClusterError
from netalert.cluster.leases import Lease, LeaseManager
from netalert.cluster.metrics import cluster_source
from netalert.cluster.shards import shard_of
from netalert.cluster.transport import Delivery, ShardConsumers, StreamBounds, TrapTransport
from netalert.lifecycle import BaseStage, Spawn
from netalert.logs import RateLimiter, event
from netalert.metrics import MetricSample, Sample
from netalert.prepare import Prepared
from netalert.snmp.types import TrapEvent
from netalert.web.model import ClusterView

__all__ = ["ClusterNode", "NodeCounts", "trap_message_id"]

log = logging.getLogger(__name__)

WATCH = 0.2  # seconds between two looks at the owned shards
CONNECT_WITHIN = 15.0  # seconds open() waits for PostgreSQL, then for NATS
_STREAM_REFUSED = 10077  # JetStream's error code when a stream limit refuses a message
_RETRY_FIRST, _RETRY_MAX = 0.1, 2.0  # seconds between publish attempts while NATS is away

Listener = Callable[[frozenset[int], frozenset[int]], Awaitable[None]]
TrapHandler = Callable[[TrapEvent], Awaitable[None]]


@dataclass(slots=True)
class NodeCounts:
    """What the node counts besides the leases (``/metrics``)."""

    published: int = 0  # traps stored in the stream by this node
    duplicates: int = 0  # traps the stream already had (received by another node too)
    refused: int = 0  # traps the stream refused (a stream limit)
    consumed: int = 0  # traps of its shards processed and acknowledged
    redelivered: int = 0  # of those, delivered before (not acknowledged in time)
    handed_back: int = 0  # delivered while the node's lease had lapsed: nak'd, unhandled


def trap_message_id(trap: TrapEvent) -> str:
    """The trap's ID on the stream: the receiver's (:attr:`TrapEvent.message_id`), else
    a hash of the whole event, its receive time included (a storm event summarizes
    what one node saw: never the same as another's)."""
    if trap.message_id:
        return trap.message_id
    return message_id(trap.source, b"", encode(trap))


class ClusterNode(BaseStage):
    """This agent as one node of a cluster (``[cluster]``); see the module docstring."""

    name = "cluster"

    def __init__(self, prepared: Prepared, *, spawn: Spawn) -> None:
        config = prepared.config.cluster
        if config is None:
            raise ValueError("a cluster node needs a [cluster] section")
        self.config = config
        self._spawn = spawn
        self.leases = LeaseManager(
            config.postgres.get_secret_value(),
            node=config.node,
            shards=config.shards,
            lease=config.lease.total_seconds(),
        )
        self.stats = self.leases.stats
        self.transport: TrapTransport | None = None
        self.counts = NodeCounts()
        self._ack_wait = config.ack_wait.total_seconds()
        self._listeners: list[Listener] = []
        self._handler: TrapHandler | None = None
        self._poller: Callable[[frozenset[int]], None] | None = None
        self._consumers: ShardConsumers | None = None
        self._acting: frozenset[int] = frozenset()  # shards the node acts on (synced)
        self._consumed: frozenset[int] = frozenset()
        self._synced_once = False
        self._device_shards: dict[str, int] = {}
        self._queue: asyncio.Queue[TrapEvent] = asyncio.Queue(maxsize=config.publish_hold_max)
        self._publish_error = ""
        self._log_limit = RateLimiter(60.0)
        self._tasks: list[asyncio.Task[Any]] = []
        self._closed = False

    # --- what the agent and the cluster state use ------------------------------------

    def owned(self) -> frozenset[int]:
        """The shards this node may act on now (:meth:`LeaseManager.owned`)."""
        return self.leases.owned()

    def lease_of(self, shard: int) -> Lease | None:
        """This node's current lease of ``shard``, or None."""
        return self.leases.lease_of(shard)

    def shard_of_device(self, device: str) -> int:
        """The shard of device ``device`` (the same on every node)."""
        shard = self._device_shards.get(device)
        if shard is None:  # names come from the config: the cache is bounded by it
            shard = self._device_shards[device] = shard_of(device, self.config.shards)
        return shard

    def shard_of_trap(self, trap: TrapEvent, *, cached: bool = True) -> int:
        """The shard of a trap: its device's, or its source address's when it has none.

        ``cached=False`` for a trap read from the stream: its device name comes from
        the network, and the cache holds only the config's names (it is bounded by them).
        """
        if trap.device and cached:
            return self.shard_of_device(trap.device)
        return shard_of(trap.device or trap.source, self.config.shards)

    def on_change(self, listener: Listener) -> None:
        """``listener(gained, lost)`` is awaited at every change of the shards the node
        acts on, before the poller and the trap consumers follow the new set. The
        first change is from none to the shards owned when intake starts."""
        self._listeners.append(listener)

    def set_trap_handler(self, handler: TrapHandler | None) -> None:
        """``handler(trap)`` processes a consumed trap and returns once its state is
        committed; the node acknowledges the trap only then. Setting it starts the
        node acting on its shards (at the next :meth:`sync`); None stops consuming."""
        self._handler = handler

    def set_poller(self, apply: Callable[[frozenset[int]], None]) -> None:
        """``apply(shards)`` puts the poller on the devices of ``shards``, at each change
        (after the listeners)."""
        self._poller = apply

    @property
    def acting(self) -> frozenset[int]:
        """The shards the node acts on: owned and synced (listeners run)."""
        return self._acting

    def acts_on(self, device: str) -> bool:
        """True when the node may use a poll result of ``device`` now: its shard is
        synced and its lease has not run out (checked at the call, not at the last look)."""
        shard = self.shard_of_device(device)
        return shard in self._acting and self.leases.lease_of(shard) is not None

    async def publish(self, trap: TrapEvent) -> None:
        """Stores ``trap`` on its shard's subject, trying again while NATS cannot take
        it; a trap a stream limit refuses is counted and logged, not retried."""
        transport = self.transport
        if transport is None:
            raise ClusterError("the cluster node is not open")
        shard = self.shard_of_trap(trap)
        msg_id = trap_message_id(trap)
        delay = _RETRY_FIRST
        while True:
            try:
                stored = await transport.publish(trap, shard=shard, msg_id=msg_id)
            except APIError as exc:
                if exc.err_code == _STREAM_REFUSED:
                    self.counts.refused += 1
                    if self._log_limit.allow("refused", time.monotonic()):
                        log.error(
                            event(
                                "trap_refused_by_stream",
                                source=trap.source,
                                error=exc.description,
                                refused=self.counts.refused,
                                fix="the stream is full: check that every shard has an owner, "
                                "or raise [cluster] stream_max_messages / stream_max_bytes",
                            )
                        )
                    return
                self._publish_failed(exc)
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                self._publish_failed(exc)
            else:
                if stored:
                    self.counts.published += 1
                else:
                    self.counts.duplicates += 1
                if self._publish_error:
                    self._publish_error = ""
                    log.info(event("trap_publish_resumed", waiting=self._queue.qsize()))
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)

    def problems(self) -> list[str]:
        """What keeps the node from working now, one line each (``/healthz``: degraded)."""
        out = []
        if not self.stats.connected:
            out.append(
                f"cluster: PostgreSQL cannot be reached by node {self.config.node}: "
                f"its leases run out and its shards go to the other nodes"
            )
        transport = self.transport
        waiting = self._queue.qsize()
        if transport is None or not transport.connected:
            out.append(
                f"cluster: NATS {self.config.nats} cannot be reached: {waiting} received "
                "traps wait to be published, the traps of this node's shards to be consumed"
            )
        elif self._publish_error:
            out.append(
                f"cluster: traps cannot be published ({self._publish_error}); {waiting} waiting"
            )
        return out

    # --- the receiver's side ------------------------------------------------------

    def submit(self, trap: TrapEvent) -> None:
        """The trap receiver's sink: queues ``trap`` for the stream, never waits.

        Raises:
            asyncio.QueueFull: ``publish_hold_max`` traps wait already (the receiver
                counts the trap dropped).
        """
        self._queue.put_nowait(trap)

    async def _publisher(self) -> None:
        queue = self._queue
        while True:
            trap = await queue.get()
            try:
                await self.publish(trap)
            finally:
                queue.task_done()

    def _publish_failed(self, exc: BaseException) -> None:
        text = str(exc) or type(exc).__name__
        if not self._publish_error:
            log.warning(event("trap_publish_failed", error=text, waiting=self._queue.qsize()))
        self._publish_error = text

    # --- lifecycle ----------------------------------------------------------------

    async def open(self) -> None:
        """Takes a first share of the shards and connects to the trap stream.

        Raises:
            ClusterError: PostgreSQL or NATS cannot be used (the message says which),
                or the database was made for another shard count.
        """
        config = self.config
        try:
            async with asyncio.timeout(CONNECT_WITHIN):
                await self.leases.start()
        except ClusterError:
            await self.leases.stop(release=True)
            raise
        except (psycopg.Error, OSError, TimeoutError) as exc:
            await self.leases.stop(release=False)
            raise ClusterError(
                f"[cluster] postgres: cannot use the cluster database: {_text(exc)}"
            ) from None
        transport = TrapTransport(
            config.nats_servers(),
            shards=config.shards,
            ack_wait=self._ack_wait,
            name=f"netalert-{config.node}",
            stats=self.stats,
            bounds=StreamBounds(
                max_messages=config.stream_max_messages,
                max_bytes=config.stream_max_bytes,
                max_age=config.stream_max_age.total_seconds(),
                duplicate_window=config.duplicate_window.total_seconds(),
            ),
        )
        try:
            async with asyncio.timeout(CONNECT_WITHIN):
                await transport.connect()
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            await _bounded(transport.close())
            await self.leases.stop(release=True)
            raise ClusterError(
                f"[cluster] nats: cannot use JetStream at {config.nats}: {_text(exc)}"
            ) from None
        self.transport = transport
        log.info(
            event(
                "cluster_joined",
                node=config.node,
                nodes=self.stats.nodes,
                shards=config.shards,
                owned=len(self.owned()),
            )
        )

    async def start(self) -> None:
        """Starts watching the leases, publishing and reading the stream's lag."""
        self._tasks = [
            self._spawn(self._watch, "cluster", True),
            self._spawn(self._publisher, "cluster-publish", True),
            self._spawn(self._lag, "cluster-lag", True),
        ]

    async def stop_consuming(self, deadline: float) -> None:
        """Publishes what waits (until ``deadline``), then stops taking traps from the
        stream; what is not acknowledged goes to the shards' next owners."""
        if self._queue.qsize() and self._connected():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self._queue.join()
        self._handler = None
        consumers, self._consumers = self._consumers, None
        self._consumed = frozenset()
        if consumers is not None:
            await consumers.close()
            self.counts.handed_back += consumers.handed_back

    def handed_back(self) -> int:
        """Traps fetched and given back unhandled (the lease lapsed or the shard was
        lost meanwhile): delivered again to the shard's owner."""
        consumers = self._consumers
        return self.counts.handed_back + (consumers.handed_back if consumers else 0)

    async def drain(self, deadline: float) -> None:
        """Stops consuming, hands every shard back at once, closes NATS."""
        await self.stop()

    async def stop(self) -> None:
        """The same as :meth:`drain` (also after :meth:`open` alone)."""
        if self._closed:
            return
        self._closed = True
        await self.stop_consuming(time.monotonic())
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        waiting = self._queue.qsize()
        if waiting:
            log.error(event("traps_unpublished", waiting=waiting, lost="traps received here"))
        self._acting = frozenset()
        await self.leases.stop(release=True)
        transport, self.transport = self.transport, None
        if transport is not None:
            await _bounded(transport.close())
        log.info(event("cluster_left", node=self.config.node))

    # --- following the leases -----------------------------------------------------

    async def sync(self) -> None:
        """Acts on a change of the owned shards: listeners first, then the poller and
        the trap consumers. Nothing before the trap handler is set."""
        if self._handler is None or self._closed:
            return
        owned = self.leases.owned()
        if owned != self._acting or not self._synced_once:
            before = self._acting
            gained, lost = owned - before, before - owned
            for listener in list(self._listeners):
                await listener(gained, lost)  # a failure: the watch task is restarted
            self._acting = owned
            self._synced_once = True
            if self._poller is not None:
                self._poller(owned)
            if gained or lost:
                log.info(
                    event(
                        "shards_changed",
                        node=self.config.node,
                        owned=len(owned),
                        gained=_ranges(gained),
                        lost=_ranges(lost),
                    )
                )
        if self._handler is not None and owned != self._consumed and self.transport is not None:
            if self._consumers is None:
                self._consumers = ShardConsumers(
                    self.transport, self._deliver, max_deliver=self.config.max_deliver
                )
            await self._consumers.sync(owned)
            self._consumed = owned

    async def _watch(self) -> None:
        while True:
            await self.sync()
            await asyncio.sleep(WATCH)

    async def _lag(self) -> None:
        while True:
            transport = self.transport
            if transport is not None and transport.connected:
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    async with asyncio.timeout(self.leases.renew_every):
                        await transport.refresh_lag(self._acting)
            await asyncio.sleep(self.leases.renew_every)

    async def _deliver(self, delivery: Delivery) -> None:
        handler = self._handler
        if handler is None or self.leases.lease_of(delivery.shard) is None:
            self.counts.handed_back += 1
            await delivery.nak()  # no longer this node's: the shard's owner takes it
            return
        trap = delivery.trap
        home = self.shard_of_trap(trap, cached=False)
        if home != delivery.shard:
            # its shard's owner never sees it here, and its state would be written
            # under a lease that does not cover it: given up, counted, logged
            assert self.transport is not None
            await self.transport.refusals.give_up(
                delivery.message,
                delivery.shard,
                "wrong_shard",
                home=home,
                source=trap.source,
                device=trap.device,
            )
            return
        if delivery.delivered > 1:
            self.counts.redelivered += 1
        # Committed well within ack_wait, or not acknowledged: delivered again then.
        async with asyncio.timeout(self._ack_wait * 0.8):
            await handler(delivery.trap)
        await delivery.ack()
        self.counts.consumed += 1

    def _connected(self) -> bool:
        return self.transport is not None and self.transport.connected

    # --- what the status page and /metrics show -----------------------------------

    def view(self) -> ClusterView:
        """The node as the status page shows it."""
        return ClusterView(
            node=self.config.node,
            nodes=self.stats.nodes,
            shards=self.config.shards,
            shards_owned=len(self.owned()),
            stream_lag=self.stats.stream_lag,
            publish_waiting=self._queue.qsize(),
            postgres=self.stats.connected,
            nats=self._connected(),
        )

    def source(self) -> Callable[[], list[Sample]]:
        """The ``/metrics`` source: the lease manager's figures and the node's counts."""
        leases = cluster_source(self.stats)

        def read() -> list[Sample]:
            counts = self.counts
            return [
                *leases(),
                MetricSample("netalert_cluster_publish_waiting", self._queue.qsize()),
                MetricSample("netalert_cluster_traps_refused_total", counts.refused),
                MetricSample("netalert_cluster_traps_redelivered_total", counts.redelivered),
                MetricSample("netalert_cluster_traps_handed_back_total", self.handed_back()),
            ]

        return read


def _text(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _ranges(shards: frozenset[int]) -> str:
    """``0-3,7`` for {0, 1, 2, 3, 7}; ``-`` for none."""
    out: list[str] = []
    for shard in sorted(shards):
        if out and out[-1].split("-")[-1] == str(shard - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{shard}"
        else:
            out.append(str(shard))
    return ",".join(out) or "-"


async def _bounded(step: Awaitable[None], within: float = 2.0) -> None:
    """Closing a connection to a server that is away must not hold the drain."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(within):
            await step
