"""Traps between nodes over NATS JetStream.

The node that receives a trap authenticates and decodes it, then publishes it to
``<prefix>.traps.<shard>`` with ``Nats-Msg-Id`` = :func:`message_id`: the same trap
received by two nodes is stored once (within :data:`DUPLICATE_WINDOW`). The
stream keeps each message until the shard's consumer acknowledges it (work-queue
retention), so what it holds per subject is that shard's lag.

The shard's owner reads it through a durable pull consumer (``shard-<n>``, one
per shard, explicit acknowledgement): it acknowledges a trap only after its own
commit (:meth:`Delivery.ack`); a trap not acknowledged within ``ack_wait`` is
delivered again, to whichever node owns the shard by then. Only the owner may
fetch: a node that loses a shard closes its consumer.

A message is terminated (never delivered again), counted in
``ClusterStats.rejected`` by reason and logged, at most once a minute per reason,
when it is not a trap this version reads (:class:`~netalert.cluster.errors.CodecError`:
``too_large``, ``not_json``, ``wrong_version``, ``malformed``), when it is on the
subject of a shard other than its own (``wrong_shard``, see
:class:`~netalert.cluster.node.ClusterNode`), and when handling it failed at its
``max_deliver``-th delivery or later (``undeliverable``): a poison message costs
that many attempts, ``ack_wait`` apart, then gives its place up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, BadRequestError, NotFoundError

from netalert.cluster.codec import MAX_MESSAGE_BYTES, decode, encode
from netalert.cluster.errors import CodecError
from netalert.cluster.leases import ClusterStats
from netalert.logs import RateLimiter, event
from netalert.snmp.types import TrapEvent

__all__ = [
    "DUPLICATE_WINDOW",
    "STREAM_MAX_AGE",
    "STREAM_MAX_BYTES",
    "STREAM_MAX_MESSAGES",
    "Delivery",
    "Refusals",
    "ShardConsumer",
    "ShardConsumers",
    "StreamBounds",
    "TrapTransport",
    "pending_per_shard",
    "read_pending",
]

log = logging.getLogger(__name__)

# The defaults of the [cluster] keys of the same names (duplicate_window, stream_max_*).
DUPLICATE_WINDOW = 120.0  # seconds JetStream remembers a Nats-Msg-Id
STREAM_MAX_AGE = 24 * 3600.0  # a trap nobody consumed for a day is dropped by the stream
STREAM_MAX_MESSAGES = 1_000_000  # past it a publish is refused (discard new), never silently
STREAM_MAX_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class StreamBounds:
    """What the trap stream holds at most (``[cluster]`` keys); past a limit a publish
    is refused (discard new), never silently dropped."""

    max_messages: int = STREAM_MAX_MESSAGES
    max_bytes: int = STREAM_MAX_BYTES
    max_age: float = STREAM_MAX_AGE  # seconds
    duplicate_window: float = DUPLICATE_WINDOW  # seconds


@dataclass(frozen=True, slots=True)
class Delivery:
    """One trap fetched from a shard's consumer; :meth:`ack` it after committing it."""

    trap: TrapEvent
    shard: int
    msg_id: str
    delivered: int  # 1 the first time, more on redelivery
    _msg: Msg = field(repr=False, compare=False)

    async def ack(self) -> None:
        """Acknowledges the trap and waits for the server to confirm: it is not
        delivered again."""
        await self._msg.ack_sync()

    async def nak(self, delay: float | None = None) -> None:
        """Hands the trap back for redelivery (after ``delay`` seconds)."""
        await self._msg.nak(delay=delay)

    @property
    def message(self) -> Msg:
        """The JetStream message (for :meth:`Refusals.give_up`)."""
        return self._msg


class Refusals:
    """Counts and logs the trap messages a node gives up (terminates); see the module
    docstring. The log lines are escaped by :func:`event` and rate-limited per reason."""

    def __init__(self, stats: ClusterStats) -> None:
        self.stats = stats
        self._limit = RateLimiter(60.0)

    async def give_up(self, msg: Msg, shard: int, reason: str, **context: object) -> None:
        """Terminates ``msg`` (a failure is left to ``ack_wait``), counts and logs it."""
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await msg.term()
        self.stats.rejected[reason] += 1
        if self._limit.allow(reason, time.monotonic()):
            headers = msg.headers or {}
            log.error(
                event(
                    "trap_undeliverable" if reason == "undeliverable" else "trap_message_refused",
                    shard=shard,
                    reason=reason,
                    msg_id=headers.get("Nats-Msg-Id", ""),
                    **context,
                    refused=self.stats.rejected[reason],
                    note="terminated: never delivered again; the same reason is logged "
                    "at most once a minute",
                )
            )


_API = "$JS.API"  # JetStream's API subjects (no domain)
_STATUS = "Status"  # the header of a pull request's status message
_HEARTBEAT, _NO_MESSAGES, _REQUEST_TIMEOUT = "100", "404", "408"
_LATE = 0.5  # seconds past ``wait`` a fetch waits for the server to end its request


class ShardConsumer:
    """The durable pull consumer of one shard.

    Each :meth:`fetch` sends one pull request that the server ends as soon as it has
    delivered what it had (``no_wait`` with ``expires``: a long poll while the shard is
    idle, never a wait for a full batch), on a reply subject of its own, so the end of
    an earlier request cannot be taken for the end of this one. (nats-py's ``fetch``
    could leave a batch request open on the server, which then held the next trap until
    it expired: up to ``wait``.) A trap delivered to an earlier request that outlived its
    fetch is not lost: every trap arriving on the consumer's subjects is handed out.
    """

    def __init__(self, shard: int, nc: Client, next_subject: str, refusals: Refusals) -> None:
        self.shard = shard
        self._refusals = refusals
        self._nc = nc
        self._next = next_subject
        self._inbox = nc.new_inbox()
        self._arrived: asyncio.Queue[Msg] = asyncio.Queue()
        self._requests = 0
        self._sub: Subscription | None = None

    async def open(self) -> ShardConsumer:
        """Subscribes to the consumer's reply subjects."""
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._arrive)
        return self

    async def _arrive(self, msg: Msg) -> None:
        self._arrived.put_nowait(msg)

    async def fetch(self, batch: int = 64, wait: float = 1.0) -> list[Delivery]:
        """Up to ``batch`` traps, waiting at most ``wait`` seconds for the first; what
        the stream holds already comes at once.

        A message that is not a trap this version reads is terminated (never
        redelivered), counted and logged.

        Raises:
            nats.errors.Error: Not connected, or the server refused the request.
        """
        messages = self._take(batch)
        if not messages:
            messages = await self._pull(batch, wait)
        return [d for d in [await self._delivery(msg) for msg in messages] if d is not None]

    def _take(self, batch: int) -> list[Msg]:
        """The traps that arrived already (statuses of ended requests dropped)."""
        out: list[Msg] = []
        while len(out) < batch and not self._arrived.empty():
            msg = self._arrived.get_nowait()
            if not (msg.headers or {}).get(_STATUS):
                out.append(msg)
        return out

    async def _pull(self, batch: int, wait: float) -> list[Msg]:
        self._requests += 1
        reply = f"{self._inbox}.{self._requests}"
        request = {"batch": batch, "expires": int(wait * 1e9), "no_wait": True}
        await self._nc.publish(self._next, json.dumps(request).encode(), reply=reply)
        out: list[Msg] = []
        deadline = asyncio.get_running_loop().time() + wait + _LATE
        while len(out) < batch:
            try:
                async with asyncio.timeout_at(deadline):
                    msg = await self._arrived.get()
            except TimeoutError:  # the request's end was lost (a reconnection): ask again
                break
            status = (msg.headers or {}).get(_STATUS)
            if not status:
                out.append(msg)  # and those right behind it, up to the request's end
            elif status == _HEARTBEAT or (msg.subject != reply and not out):
                continue  # the end of an earlier request
            elif status in (_NO_MESSAGES, _REQUEST_TIMEOUT):
                break  # the request ended: it delivered what the stream had, or nothing
            elif msg.subject == reply:
                raise APIError.from_msg(msg)
        return out

    async def _delivery(self, msg: Msg) -> Delivery | None:
        try:
            trap = decode(msg.data)
        except CodecError as exc:
            await self._refusals.give_up(msg, self.shard, exc.reason, error=exc)
            return None
        headers = msg.headers or {}
        return Delivery(
            trap=trap,
            shard=self.shard,
            msg_id=headers.get("Nats-Msg-Id", ""),
            delivered=msg.metadata.num_delivered,
            _msg=msg,
        )

    async def close(self) -> None:
        """Stops fetching; the durable consumer stays for the shard's next owner. Traps
        fetched and not handled are delivered again after ``ack_wait``."""
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
            for msg in self._take(self._arrived.qsize()):  # for the shard's next owner, now
                with contextlib.suppress(nats.errors.Error):
                    await msg.nak()


Handler = Callable[[Delivery], Awaitable[None]]


class ShardConsumers:
    """One fetching task per shard this node owns, each handing traps to ``handler``.

    Call :meth:`sync` with the owned shards (:meth:`LeaseManager.owned`) at each
    change: it starts the tasks of new shards and stops those of lost ones, so only
    a shard's owner fetches its traps. ``handler`` commits a trap, then calls
    :meth:`Delivery.ack`; a trap it does not acknowledge (it raised, the node died)
    is delivered again after ``ack_wait``, to whichever node owns the shard then.

    A lost shard's task is cancelled but never awaited (nats-py's fetch, cancelled
    at the wrong moment, can leave its task waiting for ever, and the caller with
    it); should the cancellation not take, the task stops at its next turn, within
    ``wait``, and hands back (``nak``) what it fetched meanwhile, unhandled, for the
    shard's owner. :meth:`close` waits a bounded time for every task.

    A trap whose handler raised at its ``max_deliver``-th delivery or later is
    given up (terminated, counted ``undeliverable``, logged) instead.
    """

    def __init__(
        self,
        transport: TrapTransport,
        handler: Handler,
        *,
        batch: int = 64,
        wait: float = 1.0,
        max_deliver: int | None = None,
    ) -> None:
        self.transport = transport
        self.handler = handler
        self.batch = batch
        self.wait = wait
        self.max_deliver = max_deliver
        self.handler_failures = 0
        self.handed_back = 0  # fetched after the shard was lost: nak'd, for its owner
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._leaving: set[asyncio.Task[None]] = set()

    @property
    def shards(self) -> frozenset[int]:
        """The shards being consumed."""
        return frozenset(s for s, task in self._tasks.items() if not task.done())

    async def sync(self, owned: Iterable[int]) -> None:
        """Starts and stops tasks so that exactly the ``owned`` shards are consumed."""
        wanted = set(owned)
        for shard in sorted(set(self._tasks) - wanted):
            leaving = self._tasks.pop(shard)  # it sees this and stops at its next turn
            if not leaving.done():
                self._leaving.add(leaving)
                leaving.add_done_callback(self._leaving.discard)
                leaving.cancel()  # at once, mostly; never awaited here (see the docstring)
        for shard in sorted(wanted):
            task = self._tasks.get(shard)
            if task is None or task.done():
                self._tasks[shard] = asyncio.create_task(
                    self._consume(shard), name=f"traps-shard-{shard}"
                )

    async def close(self) -> None:
        """Stops every task (the durable consumers stay for the next owner)."""
        await self.sync(())
        leaving = set(self._leaving)
        if leaving:
            await asyncio.wait(leaving, timeout=self.wait + 2.0)

    def _wanted(self, shard: int) -> bool:
        return self._tasks.get(shard) is asyncio.current_task()

    async def _consume(self, shard: int) -> None:
        consumer: ShardConsumer | None = None
        failing = False
        try:
            while self._wanted(shard):
                try:
                    if consumer is None:
                        consumer = await self.transport.consumer(shard)
                    deliveries = await consumer.fetch(self.batch, wait=self.wait)
                except nats.errors.Error as exc:  # disconnected: the client reconnects
                    if not failing:  # once per outage and shard, not every second
                        log.warning(event("trap_consumer_failed", shard=shard, error=exc))
                    failing = True
                    await asyncio.sleep(self.wait)
                    continue
                failing = False
                for delivery in deliveries:
                    if not self._wanted(shard):  # lost meanwhile: for the shard's owner
                        self.handed_back += 1
                        with contextlib.suppress(nats.errors.Error):
                            await delivery.nak()
                        continue
                    try:
                        await self.handler(delivery)
                    except Exception as exc:
                        self.handler_failures += 1
                        limit = self.max_deliver
                        if limit is not None and delivery.delivered >= limit:
                            await self.transport.refusals.give_up(
                                delivery.message,
                                shard,
                                "undeliverable",
                                deliveries=delivery.delivered,
                                source=delivery.trap.source,
                                trap=delivery.trap.trap_name or delivery.trap.trap_oid,
                                error=exc,
                            )
                            continue
                        # not acknowledged: delivered again after ack_wait
                        log.warning(event("trap_handler_failed", shard=shard, error=exc))
        finally:
            if consumer is not None:
                await consumer.close()


class TrapTransport:
    """One node's connection to the trap stream.

    Args:
        servers: NATS URLs (``[cluster] nats``).
        shards: The cluster's shard count.
        prefix: Subject prefix (``<prefix>.traps.<shard>``) and stream name
            (``<PREFIX>_TRAPS``): one cluster per prefix.
        ack_wait: Seconds before an unacknowledged trap is delivered again.
        stats: Where the stream lag is kept (shared with the lease manager).
        bounds: What the stream holds at most.
    """

    def __init__(
        self,
        servers: list[str],
        *,
        shards: int,
        prefix: str = "netalert",
        ack_wait: float = 30.0,
        name: str = "netalert",
        stats: ClusterStats | None = None,
        bounds: StreamBounds | None = None,
    ) -> None:
        self.servers = servers
        self.shards = shards
        self.prefix = prefix
        self.stream = f"{prefix.upper()}_TRAPS"
        self.ack_wait = ack_wait
        self.name = name
        self.stats = stats if stats is not None else ClusterStats()
        self.refusals = Refusals(self.stats)
        self.bounds = bounds if bounds is not None else StreamBounds()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._last_error = ""

    def subject(self, shard: int) -> str:
        """The subject of ``shard``'s traps."""
        if not 0 <= shard < self.shards:
            raise ValueError(f"shard {shard} is not in 0..{self.shards - 1}")
        return f"{self.prefix}.traps.{shard}"

    @property
    def connected(self) -> bool:
        """True while the connection to a NATS server is up."""
        return self._nc is not None and self._nc.is_connected

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("TrapTransport.connect() first")
        return self._js

    async def connect(self) -> None:
        """Connects and makes sure the stream exists with this version's settings.

        Waits (retrying twice a second) until a server answers: bound it with
        ``asyncio.timeout``. Reconnects by itself afterwards.

        Raises:
            nats.errors.Error: The server has no JetStream, or refused the stream.
        """
        self._nc = await nats.connect(
            servers=self.servers,
            name=self.name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=5,
            error_cb=self._error,
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
        )
        self._js = self._nc.jetstream()
        config = api.StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.traps.*"],
            retention=api.RetentionPolicy.WORK_QUEUE,
            storage=api.StorageType.FILE,
            duplicate_window=self.bounds.duplicate_window,
            max_age=self.bounds.max_age,
            max_msgs=self.bounds.max_messages,
            max_bytes=self.bounds.max_bytes,
            max_msg_size=MAX_MESSAGE_BYTES,
            discard=api.DiscardPolicy.NEW,
        )
        try:
            await self._js.add_stream(config)
        except BadRequestError:  # it exists with other settings: make them this version's
            await self._js.update_stream(config)

    async def close(self) -> None:
        """Drains and closes the connection."""
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(nats.errors.Error):
                await nc.drain()

    async def publish(self, trap: TrapEvent, *, shard: int, msg_id: str) -> bool:
        """Stores ``trap`` on ``shard``'s subject; False when JetStream already had
        ``msg_id`` (a duplicate, stored once).

        Raises:
            nats.errors.Error: Not stored (no server, stream full): the caller keeps it.
        """
        ack = await self.js.publish(
            self.subject(shard), encode(trap), timeout=5.0, headers={"Nats-Msg-Id": msg_id}
        )
        return not ack.duplicate

    async def consumer(self, shard: int) -> ShardConsumer:
        """The durable consumer of ``shard`` (created the first time)."""
        durable = f"shard-{shard}"
        config = api.ConsumerConfig(
            durable_name=durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=-1,  # a trap is never dropped for being redelivered often
            filter_subject=self.subject(shard),
        )
        try:
            await self.js.consumer_info(self.stream, durable)
        except NotFoundError:
            await self.js.add_consumer(self.stream, config)
        assert self._nc is not None  # js is set only with it
        next_subject = f"{_API}.CONSUMER.MSG.NEXT.{self.stream}.{durable}"
        return await ShardConsumer(shard, self._nc, next_subject, self.refusals).open()

    async def pending(self) -> dict[int, int]:
        """Traps stored and not yet acknowledged, per shard (shards with none left out)."""
        return await pending_per_shard(self.js, self.prefix)

    async def refresh_lag(self, shards: Iterable[int]) -> int:
        """Sums the pending traps of ``shards`` (this node's) into ``stats.stream_lag``."""
        pending = await self.pending()
        self.stats.stream_lag = sum(pending.get(shard, 0) for shard in shards)
        return self.stats.stream_lag

    async def _error(self, exc: Exception) -> None:
        # nats-py calls this at every failed attempt (twice a second while a server is
        # away): log an error once, until another error or a reconnection.
        text = str(exc) or type(exc).__name__
        if text != self._last_error:
            self._last_error = text
            log.warning(event("nats_error", error=text))

    async def _disconnected(self) -> None:
        log.warning(event("nats_disconnected"))

    async def _reconnected(self) -> None:
        self._last_error = ""
        log.info(event("nats_reconnected"))


async def pending_per_shard(js: JetStreamContext, prefix: str) -> dict[int, int]:
    """Traps stored and not yet acknowledged on ``prefix``'s stream, per shard (none
    when the stream does not exist yet)."""
    stream = f"{prefix.upper()}_TRAPS"
    try:
        info = await js.stream_info(stream, subjects_filter=f"{prefix}.traps.*")
    except NotFoundError:  # no node has connected yet: nothing waits
        return {}
    out: dict[int, int] = {}
    for subject, count in (info.state.subjects or {}).items():
        tail = subject.rsplit(".", 1)[-1]
        if tail.isdigit():
            out[int(tail)] = count
    return out


async def read_pending(
    servers: list[str], *, prefix: str = "netalert", within: float = 5.0
) -> dict[int, int]:
    """:func:`pending_per_shard` over a connection of its own, changing nothing (for
    ``netalert cluster status``).

    Raises:
        nats.errors.Error: The servers cannot be reached, or there is no such stream.
    """
    nc = await nats.connect(
        servers=servers,
        connect_timeout=within,
        allow_reconnect=False,
        max_reconnect_attempts=1,  # 0 would mean "for ever" to nats-py's first connect
        reconnect_time_wait=0.1,
        error_cb=_quiet,  # the caller reports the error it gets
    )
    try:
        return await pending_per_shard(nc.jetstream(timeout=within), prefix)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await nc.close()


async def _quiet(exc: Exception) -> None:
    pass
