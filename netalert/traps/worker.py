"""A trap worker process: one SO_REUSEPORT socket per listen address, events to the agent.

Forked by the zygote (:mod:`netalert.traps.zygote`) for
:class:`netalert.traps.workers.TrapWorkers`, with the loaded MIB tree, its
sockets and a socketpair to the agent, and a :class:`WorkerSpec` (:func:`run`). It runs the same
:class:`~netalert.traps.receiver.TrapReceiver` as the agent does with one
worker (access control, decoding, SNMPv3 security, inform Responses, storm
folding, naming) and hands the events to the agent in batches
(:mod:`netalert.traps.workwire`). Events the agent is too slow to take wait
in a queue bounded in events (``[traps] worker_queue``) and in bytes
(``worker_queue_bytes``); past either they are dropped and counted. It exits
when the agent says so (after draining) or goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import pickle
import signal
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netalert.config.models import Config
from netalert.logs import event
from netalert.rules.engine import RuleEngine
from netalert.rules.mibview import MibTreeLike
from netalert.rules.trapcache import TRAP_CACHE_STATS
from netalert.rules.trapflow import TrapRules
from netalert.snmp.types import TrapEvent
from netalert.snmp.wire.berv3 import V3Header
from netalert.traps import workwire
from netalert.traps.receiver import TrapReceiver
from netalert.traps.v3 import V3Notification

__all__ = ["Matcher", "WorkerSpec", "run"]

log = logging.getLogger("netalert.traps")

# events in one frame at most: the agent hands one frame per turn of its loop (smaller
# frames cost more per trap than the loop lag they save: measured with bench_trap_workers)
_BATCH = 256
_STATS_EVERY = 0.1  # seconds between two counter snapshots sent to the agent (if changed)
# seconds between two counter snapshots sent even when unchanged: the agent's sign that the
# worker runs (one it does not hear from for [traps] worker_stall_timeout is restarted)
_ALIVE_EVERY = 1.0
_AGENTS_LINES = frozenset({"traps_listening", "traps_stopped", "traps_rcvbuf_short"})
_FIRST_WORKERS_LINES = frozenset({"traps_shared_source", "traps_device_unresolved"})
_DRAIN_WITHIN = 8.0  # seconds to hand the last events to the agent when told to stop
# In the channel's queue: the worker's counters are due (the latest are sent when its turn
# comes, so one frame of counters waits at most however long the agent does not read).
_COUNTERS_DUE = (b"", 0)


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker is told at start (by the agent, through the zygote)."""

    index: int
    config: Config
    listen_fds: dict[str, int]  # [traps].listen entry (text) -> inherited socket
    channel_fd: int
    engine_id: bytes
    engine_started: int
    engine_ids: tuple[tuple[bytes, str], ...]  # (engine ID, device) the poller learned so far
    wait_for_go: bool  # a reload's worker: read only once the agent says GO
    message_ids: bool  # [cluster]
    # the rule set in force (its token, the config it is compiled from), None: no matching
    rules: tuple[str, Config] | None = None


class Matcher:
    """The trap rules as the agent has them in force, matched here: each event goes to the
    agent with the set's token and what the rules made of it."""

    def __init__(self, token: str, config: Config, tree: MibTreeLike) -> None:
        engine = RuleEngine(config, tree)
        self.token = token
        self._rules = TrapRules(engine.rules, engine.policy.rules)

    def match(self, trap: TrapEvent) -> tuple[str, Any]:
        """``(token, matches)`` for the agent (:meth:`TrapRules.observed`)."""
        return self.token, self._rules.matches(trap)


class _Channel:
    """The worker's end of the socketpair: batches out (bounded), commands in.

    What waits for the agent is bounded by ``limit`` events (and as many datagrams to
    record) and by ``limit_bytes`` of frames not yet written: past either the next trap is
    dropped, counted. The bytes are checked before a trap is taken, so at most one batch
    (``_BATCH`` events, and the one frame of it) is held beyond them."""

    def __init__(
        self,
        sock: socket.socket,
        limit: int,
        stats: Any,
        *,
        limit_bytes: int = 1 << 34,
        flush_after: float = 0.0,
    ) -> None:
        self.sock = sock
        # seconds a batch gathers events before it goes (or until _BATCH): fewer, larger
        # frames cost the agent less per trap; 0: at the end of the loop's turn
        self._flush_after = flush_after
        self._limit = limit
        self._limit_bytes = limit_bytes
        self._bytes = 0  # of the frames in _out not yet written
        self._stats = stats
        self._events: list[tuple[Any, ...]] = []
        self._recorded: list[tuple[Any, ...]] = []
        # frames not yet written and their events (a RECORDED frame: minus its datagrams)
        self._out: deque[tuple[bytes, int]] = deque()
        self._waiting = 0  # events in _out
        self._records = 0  # recorded datagrams not yet written (in _recorded and _out)
        self._counters_due = False  # _COUNTERS_DUE is in _out
        self._scheduled = False
        self._writing = False
        self.closed = False
        self.idle = asyncio.Event()  # set whenever everything queued was written
        self._reported: dict[str, Any] = {}

    def add(self, item: tuple[Any, ...]) -> None:
        if self._waiting + len(self._events) >= self._limit:
            self._stats.dropped += 1  # the agent is behind by worker_queue events
            self._stats.queue_full_events += 1
            return
        if self._bytes >= self._limit_bytes:
            self._stats.dropped += 1  # the agent is behind by worker_queue_bytes
            self._stats.queue_full_bytes += 1
            return
        self._events.append(item)
        if len(self._events) >= _BATCH:
            self.flush()
        elif not self._scheduled:
            self._schedule()

    def _schedule(self) -> None:
        self._scheduled = True
        loop = asyncio.get_running_loop()
        if self._flush_after > 0:
            loop.call_later(self._flush_after, self._flush_due)
        else:
            loop.call_soon(self._flush_due)

    def _flush_due(self) -> None:
        if self._scheduled:  # else flushed meanwhile (a full batch, or the stop)
            self.flush()

    def report(self, *, always: bool = False) -> None:
        """Sends the receiver's counters when they changed since last sent (``always``:
        even when they did not, as a sign of life)."""
        snapshot = workwire.stats_snapshot(self._stats)
        snapshot["trap_cache_evicted"] = dict(TRAP_CACHE_STATS.evicted)
        if always or snapshot != self._reported:
            self._reported = snapshot
            if not self._counters_due:
                self._counters_due = True
                self.idle.clear()
                self._out.append(_COUNTERS_DUE)
                self._write()

    def record(self, item: tuple[Any, ...]) -> None:
        if self._records >= self._limit or self._bytes >= self._limit_bytes:
            self._stats.record_shed += 1  # the agent is behind by worker_queue (bytes)
            return
        self._records += 1
        self._recorded.append(item)
        if not self._scheduled:
            self._schedule()

    def send(self, kind: str, body: Any) -> None:
        self._queue(workwire.frame(kind, body), 0)
        self._write()

    def _queue(self, data: bytes, count: int) -> None:
        self.idle.clear()
        self._out.append((data, count))
        self._bytes += len(data)

    def flush(self) -> None:
        self._scheduled = False
        if self._recorded:
            self._queue(workwire.frame(workwire.RECORDED, self._recorded), -len(self._recorded))
            self._recorded = []
        if self._events:
            self.report()  # the counters first: the agent's metrics never lag its events
            count = len(self._events)
            self._queue(workwire.frame(workwire.EVENTS, self._events), count)
            self._waiting += count
            self._events = []
        self._write()

    def _write(self) -> None:
        while self._out and not self.closed:
            if self._out[0] is _COUNTERS_DUE:
                self._counters_due = False
                self._out[0] = (workwire.frame(workwire.STATS, self._reported), 0)
                self._bytes += len(self._out[0][0])
            data, count = self._out[0]
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.closed = True  # the agent went away: main() ends
                return
            self._bytes -= sent
            if sent < len(data):
                self._out[0] = (data[sent:], count)
                if not self._writing:
                    self._writing = True
                    asyncio.get_running_loop().add_writer(self.sock.fileno(), self._writable)
                return
            self._out.popleft()
            if count > 0:
                self._waiting -= count
            else:
                self._records += count
        if self._writing:
            self._writing = False
            asyncio.get_running_loop().remove_writer(self.sock.fileno())
        if not self._out:
            self.idle.set()

    def _writable(self) -> None:
        self._write()


class _Recorder:
    """Stands for the pcap recorder: the datagrams go to the agent, which writes the file."""

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel

    def write(
        self, data: bytes, source: tuple[str, int], destination: tuple[str, int], when: float
    ) -> None:
        self._channel.record((data, tuple(source), tuple(destination), when))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _Learned:
    engine_id: bytes
    device: str


class _Engines:
    """The engine IDs the agent's poller learned, as the receiver asks for them
    (:class:`~netalert.traps.receiver.EngineSource`); the agent sends each new one."""

    def __init__(self, known: tuple[tuple[bytes, str], ...]) -> None:
        self._devices = dict(known)
        self._listeners: list[Callable[[Any], None]] = []

    def learn(self, engine_id: bytes, device: str) -> None:
        self._devices[engine_id] = device
        for listener in self._listeners:
            listener(_Learned(engine_id, device))

    def engine_ids(self) -> list[bytes]:
        return list(self._devices)

    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def get_by_engine(self, engine_id: bytes) -> _Learned | None:
        device = self._devices.get(engine_id)
        return None if device is None else _Learned(engine_id, device)


class WorkerReceiver(TrapReceiver):
    """A receiver whose events, with their SNMPv3 clock claims, go to the agent's channel."""

    channel: _Channel
    matcher: Matcher | None = None
    encoder: workwire.VarbindEncoder | None = None
    _claim: workwire.ClockClaim | None = None

    def _v3_message(
        self, data: bytes, addr: tuple[Any, ...], host: str, listener: Any, header: V3Header
    ) -> None:
        if self._v3 is not None:
            self._v3.clocks.claim = None
        super()._v3_message(data, addr, host, listener, header)

    def _on_v3(self, note: V3Notification) -> None:
        self._claim = self._v3.clocks.claim if self._v3 is not None else None
        try:
            super()._on_v3(note)
        finally:
            self._claim = None

    def _deliver(self, trap: TrapEvent) -> None:
        item = workwire.encode_event(trap, self._claim, self.encoder)
        matcher = self.matcher
        if matcher is not None:
            # a failure here: the agent matches the trap, and fails as it does with one worker
            # (try, not contextlib.suppress: no context manager made per trap)
            try:  # noqa: SIM105
                item += matcher.match(trap)
            except Exception:  # noqa: S110
                pass
        self.channel.add(item)


def _freeze(*, everything: bool = True) -> None:
    """Moves what is alive now (the MIB tree, the compiled rules) out of the collector's
    sight, as the agent does: a full collection walking them cost more than the traps.

    Not ``everything``: what the zygote froze (the MIB tree) stays frozen, unwalked, so
    its pages stay shared with the zygote and the other workers."""
    if everything:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


def _matcher(rules: tuple[str, Config] | None, tree: MibTreeLike) -> Matcher | None:
    """The rule set to match with (None: the agent matches every trap)."""
    if rules is None:
        return None
    try:
        return Matcher(rules[0], rules[1], tree)
    except Exception as exc:  # the agent compiled it: the agent matches, slower but right
        log.error(event("trap_worker_rules_failed", error=f"{exc!r}"))
        return None


async def _serve(spec: WorkerSpec, tree: Any) -> int:
    loop = asyncio.get_running_loop()
    config = spec.config
    channel_sock = socket.socket(fileno=spec.channel_fd)
    channel_sock.setblocking(False)
    traps = config.traps.model_copy(update={"record": None})  # the agent writes the file
    engines = _Engines(spec.engine_ids)
    receiver = WorkerReceiver(
        traps,
        sink=lambda trap: None,  # _deliver above
        tree=tree,
        devices=config.devices,
        engines=engines,
        state_dir=None,
        message_ids=spec.message_ids,
        engine_id=spec.engine_id,
        engine_started=spec.engine_started,
        defer_window=True,
    )
    channel = _Channel(
        channel_sock,
        config.traps.worker_queue,
        receiver.stats,
        limit_bytes=config.traps.worker_queue_bytes,
        flush_after=config.traps.worker_flush_interval.total_seconds(),
    )
    receiver.channel = channel
    receiver.encoder = workwire.VarbindEncoder(traps.varbind_cache_entries, receiver.stats)
    receiver.matcher = _matcher(spec.rules, tree)
    _freeze(everything=False)
    inherited = {wanted: socket.socket(fileno=fd) for wanted, fd in spec.listen_fds.items()}
    await receiver.open(inherit=inherited)
    for sock in inherited.values():
        sock.close()  # the receiver reads its own descriptor of each
    if config.traps.record is not None:
        receiver.recorder = _Recorder(channel)  # type: ignore[assignment]
    done = asyncio.Event()
    reader = workwire.FrameReader()
    started = False

    def go() -> None:
        nonlocal started
        if not started:
            started = True
            receiver.begin()

    def on_command() -> None:
        try:
            data = channel_sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            done.set()  # the agent is gone
            return
        for kind, body in reader.feed(data):
            if kind == workwire.ENGINE:
                engines.learn(bytes(body[0]), str(body[1]))
            elif kind == workwire.GO:
                go()
            elif kind == workwire.RULES:
                # traps matched from here on carry the new token; the ones before it, the
                # old one: the agent matches those again against the set in force
                rules = None if body is None else (str(body[0]), pickle.loads(body[1]))  # noqa: S301
                receiver.matcher = _matcher(rules, tree)
                _freeze()
            elif kind == workwire.QUIT:
                done.set()

    loop.add_reader(channel_sock.fileno(), on_command)
    if not spec.wait_for_go:
        go()
    channel.send(workwire.READY, spec.index)

    async def report() -> None:
        # Refusals and storm folds make no event: their counters go every _STATS_EVERY,
        # and at least every _ALIVE_EVERY (a worker the agent does not hear from is stuck).
        ticks = max(round(_ALIVE_EVERY / _STATS_EVERY), 1)
        for tick in itertools.count(1):
            await asyncio.sleep(_STATS_EVERY)
            channel.report(always=tick % ticks == 0)

    reporter = asyncio.ensure_future(report())
    await done.wait()
    loop.remove_reader(channel_sock.fileno())
    reporter.cancel()
    await receiver.stop()  # pending storm events go out as events
    channel.flush()
    channel.report()
    if not channel.closed:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(channel.idle.wait(), _DRAIN_WITHIN)
    channel_sock.close()
    return 0


def run(spec: WorkerSpec, tree: Any) -> int:
    """The worker process, forked by the zygote with ``tree`` (the agent's
    :class:`~netalert.mib.MibTree`) loaded: serves until told to stop."""
    # Ctrl-C, SIGHUP and SIGTERM are the agent's: it reloads and stops its workers itself
    # (systemd sends SIGTERM to every process of the unit; a worker leaves when told to,
    # after handing over its last traps, or when the agent is gone).
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    agent = spec.config.agent
    from netalert.logs import setup_logging

    setup_logging(agent.log_level, agent.log_format, line_max=agent.log_line_max)
    # The agent says where the traps are received and what was counted, for all workers;
    # what every worker finds at start (devices, buffers), the first one says.
    quiet = _AGENTS_LINES if spec.index == 0 else _AGENTS_LINES | _FIRST_WORKERS_LINES
    log.addFilter(lambda record: getattr(record.msg, "name", "") not in quiet)
    log.debug(event("trap_worker_started", worker=spec.index, pid=os.getpid()))
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(spec, tree))
    return 0
