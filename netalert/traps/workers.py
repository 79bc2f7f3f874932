"""Trap intake on every core: worker processes on SO_REUSEPORT sockets, events to the agent.

With ``[traps] workers`` above 1 the agent binds, for each listen address,
one socket per worker in a SO_REUSEPORT group (after checking that the
address is free, so that a second agent cannot silently split the traps with
this one), steers datagrams to the sockets by source address, and has the
zygote (:mod:`netalert.traps.zygote`, a process holding the loaded MIB tree)
fork the workers (:mod:`netalert.traps.worker`) with their sockets. The agent keeps
its own descriptor of every socket: a worker that dies is restarted on the
same socket, and what arrived meanwhile waits in its receive buffer. Events
come back in batches over a socketpair per worker (:mod:`netalert.traps.workwire`);
this side judges the SNMPv3 time window of authenticated traps against one
table for all workers, writes the ``[traps] record`` file, sums the workers'
counters into one :class:`~netalert.traps.stats.TrapStats`, and hands each
event to the sink, as a :class:`~netalert.traps.receiver.TrapReceiver` does.

The workers also match the trap rules (:meth:`TrapWorkers.set_rules`: the rule
set in force, by its token): an event then comes with what the rules made of it,
and goes to the ``matched`` sink, where the agent applies it (or matches it
again, when the worker used a set no longer in force).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import pickle
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from netalert.errors import NetalertError
from netalert.logs import RateLimiter, event
from netalert.rules.trapcache import TRAP_CACHE_STATS
from netalert.snmp.types import TrapEvent
from netalert.snmp.wire.timeliness import EngineClocks
from netalert.traps import workwire, zygote
from netalert.traps.listen import kernel_drops, open_reuseport_group, share_udp_socket
from netalert.traps.pcap import PcapRecorder, open_recording, start_recording
from netalert.traps.stats import RejectReason, TrapStats
from netalert.traps.v3 import load_engine_id, random_engine_id
from netalert.traps.worker import WorkerSpec

if TYPE_CHECKING:
    from netalert.config.models import Config, TrapsConfig
    from netalert.rules.trapflow import Matches
    from netalert.traps.names import TrapTree
    from netalert.traps.receiver import EngineSource

__all__ = ["AUTO_MAX", "TrapWorkers", "worker_count"]

log = logging.getLogger("netalert.traps")

AUTO_MAX = 16  # workers = 0 starts one per core, up to this many
_RESTART_DELAY = 0.2  # seconds before a worker that died is started again, doubling
# while it keeps dying within this many seconds of its start (up to worker_restart_max)
_RAN_WELL = 60.0
_START_WITHIN = 60.0  # seconds the workers have to open their sockets at start
_STOP_WITHIN = 10.0  # seconds a worker has to drain and exit before it is killed
# bytes read from a worker's channel at once (its frames are handed one per loop turn)
_RECV = 64 * 1024
_PENDING_MAX = 64  # batches read from a worker and not yet handed: past it, its channel waits
# events handed per turn of the loop at most (a worker's batch may hold 256): as many as the
# agent's own receiver takes from its socket in a turn, so the web and the mail get theirs
_TURN = 64
# ... and for this long at most (then the next event waits for the next turn): a trap that
# opens an alert costs far more than one that repeats it
_TURN_SECONDS = 0.005
_RULES_WITHIN = 10.0  # seconds a worker has to take a new rule set before it is restarted


def worker_count(config: TrapsConfig) -> int:
    """How many trap workers ``config`` asks for (0: one per core this process may use,
    at most ``AUTO_MAX``: each worker holds the MIB tree, about 100 MB)."""
    if config.workers:
        return config.workers
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return min(cores, AUTO_MAX)


class Process(Protocol):
    """A worker process as the agent handles it (:class:`~netalert.traps.zygote.Forked`)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int | None: ...

    def kill(self) -> None: ...


@dataclass(slots=True)
class _Worker:
    index: int
    proc: Process | None = None
    channel: socket.socket | None = None
    reader: workwire.FrameReader = field(default_factory=workwire.FrameReader)
    snapshot: dict[str, Any] = field(default_factory=dict)  # its latest counters
    started: float = 0.0
    heard: float = 0.0  # monotonic time of its last frame (or of its start)
    delay: float = _RESTART_DELAY
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # its sockets are open
    # batches read and checked, not yet handed
    pending: deque[list[tuple[TrapEvent, workwire.ClockClaim | None, workwire.Matched | None]]] = (
        field(default_factory=deque)
    )
    draining: bool = False  # the batches are handed one per loop turn
    paused: bool = False  # its channel is not read until the agent caught up


class TrapWorkers:
    """``[traps] workers`` processes receiving traps; the agent-side half."""

    def __init__(
        self,
        config: Config,
        *,
        sink: Callable[[TrapEvent], None],
        tree: TrapTree,
        engines: EngineSource | None = None,
        count: int,
        message_ids: bool = False,
        clock: Callable[[], float] = time.time,
        clocks: EngineClocks | None = None,
        matched: Callable[[TrapEvent, tuple[str, Matches]], None] | None = None,
    ) -> None:
        """Prepares ``count`` workers for ``config``; :meth:`open` binds, :meth:`begin` reads.

        ``clocks`` ([cluster]) is the SNMPv3 senders' clock table the node shares
        with the others; None: the agent's own. ``matched`` takes the events the
        workers matched against the trap rules (:meth:`set_rules`), with their
        matches; the others go to ``sink``.
        """
        self.config = config.traps
        self._config = config
        self._sink = sink
        self._tree = tree
        self._matched = matched
        self._rules: tuple[str, Config] | None = None  # the rule set the workers match with
        self._engines = engines
        self.count = count
        self._message_ids = message_ids
        self._clock = clock
        self.stats = TrapStats()
        self._own = TrapStats()  # what this side counts: time-window refusals, sink failures
        self._retired: dict[str, Any] = {}  # the counters of workers that exited
        # the varbinds of the workers' events, checked once (their evictions: this side's)
        self._varbinds = workwire.VarbindCache(self.config.varbind_cache_entries, self._own)
        # the SNMPv3 time window, one table for every worker
        self._clocks = clocks if clocks is not None else EngineClocks()
        self._workers = [_Worker(n) for n in range(count)]
        self._sockets: dict[str, list[socket.socket]] = {}
        self._addresses: list[tuple[str, int]] = []
        self._engine_id = b""
        self._engine_started = int(time.time())
        self._unsubscribe: Callable[[], None] | None = None
        self._stopping = False
        self._waiting = False  # workers wait for GO (a reload, until the old ones stopped)
        self._timer: asyncio.TimerHandle | None = None
        self._log_limit = RateLimiter(60.0)
        self.recorder: PcapRecorder | None = None
        self._record_pending = False
        self.steered = False
        self._all_closed: asyncio.Event | None = None  # set when the last channel closed

    # --- lifecycle ------------------------------------------------------------

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) of each listen address."""
        return list(self._addresses)

    @property
    def sockets(self) -> dict[str, list[socket.socket]]:
        """Each ``[traps].listen`` entry's socket group, by its text (a reload's :meth:`open`)."""
        return {wanted: list(group) for wanted, group in self._sockets.items()}

    async def open(
        self,
        *,
        inherit: Mapping[str, list[socket.socket]] | None = None,
        record_later: bool = False,
        engine: tuple[bytes, int] | None = None,
    ) -> None:
        """Binds every listen address (a group of ``count`` sockets each) and starts the workers.

        A listen entry in ``inherit`` (the running workers' :attr:`sockets`, a
        reload) shares that group; the new workers then read only after
        :meth:`begin`. ``engine`` is the running workers' engine ID and start
        second (a reload keeps both).

        Raises:
            BindError: an address cannot be bound, or is in use.
            NetalertError: the number of workers differs from the inherited group's.
            ValueError: a malformed ``state_dir/engine_id``.
        """
        inherit = inherit or {}
        state_dir = Path(self._config.agent.state_dir)
        if engine is not None:
            self._engine_id, self._engine_started = engine
        elif self.config.engine_id:
            self._engine_id = bytes.fromhex(self.config.engine_id)
        elif self.config.users:
            self._engine_id = load_engine_id(state_dir)
        else:
            self._engine_id = random_engine_id()
        try:
            for address in self.config.listen:
                hostport = address.with_default(162)
                wanted = str(hostport)
                joined: list[socket.socket] = []
                if wanted in inherit:
                    if len(inherit[wanted]) != self.count:
                        raise NetalertError(
                            f"traps.workers: {self.count} workers where {len(inherit[wanted])} "
                            "run; the number of trap workers changes at a restart"
                        )
                    joined = [share_udp_socket(sock, 0)[0] for sock in inherit[wanted]]
                group, granted, steered = open_reuseport_group(
                    hostport.host,
                    hostport.port or 162,
                    self.config.rcvbuf,
                    self.count,
                    joined=joined,
                )
                self._sockets[wanted] = group
                self.steered = steered
                port = int(group[0].getsockname()[1])
                self._addresses.append((hostport.host, port))
                host = f"[{hostport.host}]" if ":" in hostport.host else hostport.host
                log.info(
                    event(
                        "traps_listening",
                        address=f"{host}:{port}",
                        rcvbuf_requested=self.config.rcvbuf,
                        rcvbuf_granted=granted,
                        workers=self.count,
                        steering="source" if steered else "source_port",
                    )
                )
            if self.config.record is not None:
                if record_later:
                    self._record_pending = True
                else:
                    self.recorder = open_recording(self.config, self.stats.record)
            self._waiting = bool(inherit)
            for worker in self._workers:
                await self._spawn(worker)
            await self._ready()
        except BaseException:
            await self.stop()
            raise
        if self._engines is not None:
            self._unsubscribe = self._engines.subscribe(self._on_engine)

    async def _ready(self) -> None:
        """Waits until every worker has its sockets open (the agent is ready only then).

        Raises:
            NetalertError: a worker did not get there within ``_START_WITHIN``.
        """
        waits = [asyncio.ensure_future(w.ready.wait()) for w in self._workers]
        _, pending = await asyncio.wait(waits, timeout=_START_WITHIN)
        for wait in pending:
            wait.cancel()
        if pending:
            raise NetalertError(
                f"trap workers: {len(pending)} of {self.count} did not start within "
                f"{_START_WITHIN:.0f} s (see the log above); set [traps] workers = 1 to "
                "receive traps in the agent itself"
            )

    def begin(self) -> None:
        """Lets the workers read (a reload's new ones), starts the once-a-second chores."""
        if self._record_pending:
            self._record_pending = False
            self.recorder = start_recording(self.config, self.stats.record)
        if self._waiting:
            self._waiting = False
            for worker in self._workers:
                self._send(worker, workwire.GO, None)
        self._timer = asyncio.get_running_loop().call_later(1.0, self._housekeeping)

    @property
    def engine(self) -> tuple[bytes, int]:
        """The SNMPv3 engine ID the workers answer with, and the second its time counts from."""
        return self._engine_id, self._engine_started

    async def stop(self) -> None:
        """Lets every worker drain (pending storm events included) and exit; closes the sockets.

        The agent's descriptors close last: a reload's new workers share the
        sockets and keep them bound.
        """
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for worker in self._workers:
            self._send(worker, workwire.QUIT, None)
        deadline = time.monotonic() + _STOP_WITHIN
        if self.stats.workers:
            self._all_closed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), _STOP_WITHIN)
        loop = asyncio.get_running_loop()
        for worker in self._workers:
            self._close(worker)
            proc, worker.proc = worker.proc, None
            if proc is None:
                continue
            left = max(deadline - time.monotonic(), 0.5)
            try:
                await loop.run_in_executor(None, partial(proc.wait, timeout=left))
            except subprocess.TimeoutExpired:
                log.warning(event("trap_worker_killed", worker=worker.index, pid=proc.pid))
                proc.kill()
                await loop.run_in_executor(None, proc.wait)
        for worker in self._workers:  # the last batches read, not yet handed
            while worker.pending:
                self._events(worker.pending.popleft())
        for group in self._sockets.values():
            for sock in group:
                sock.close()
        self._sockets.clear()
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
        self._recount()
        self.stats.workers = 0
        log.info(event("traps_stopped", **self.stats.as_dict()))

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped on the workers' sockets (receive buffers full)."""
        return kernel_drops(sock for group in self._sockets.values() for sock in group)

    def set_rules(self, token: str, config: Config) -> None:
        """The rule set now in force (``token``, compiled from ``config``): the workers
        match the trap rules with it from now on.

        A worker's events carry the token of the set it matched with; those of an older
        set (sent before it heard of this one) are matched again by the agent. A config
        with other ``[mibs]`` than the workers' MIB tree was loaded from (a reload that
        changed them but not ``[traps]``) is not matched in the workers: the agent does.
        """
        if self._matched is None:
            return
        rules = (token, config) if config.mibs == self._config.mibs else None
        if (rules and rules[0]) == (self._rules and self._rules[0]):
            return
        self._rules = rules
        body = None if rules is None else (token, pickle.dumps(config, pickle.HIGHEST_PROTOCOL))
        data = workwire.frame(workwire.RULES, body)
        for worker in self._workers:
            channel = worker.channel
            if channel is None:
                continue  # started again, it takes the set from its spec
            try:  # the config may be megabytes: written whole, or the worker starts afresh
                channel.settimeout(_RULES_WITHIN)
                channel.sendall(data)
            except OSError as exc:
                log.error(event("trap_worker_rules_failed", worker=worker.index, error=exc))
                if worker.proc is not None:
                    worker.proc.kill()  # its channel's end restarts it, with the set in its spec
            finally:
                with contextlib.suppress(OSError):
                    channel.setblocking(False)

    # --- the workers -------------------------------------------------------------

    async def _spawn(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fds = {wanted: group[worker.index].fileno() for wanted, group in self._sockets.items()}
        spec = WorkerSpec(
            index=worker.index,
            config=self._config,
            listen_fds=fds,
            channel_fd=there.fileno(),
            engine_id=self._engine_id,
            engine_started=self._engine_started,
            engine_ids=self._learned(),
            wait_for_go=self._waiting,
            message_ids=self._message_ids,
            rules=self._rules,
        )
        try:  # in a thread: the zygote may have to be started first, or sent a new tree
            proc = await loop.run_in_executor(
                None, _start, self._tree, spec, [there.fileno(), *fds.values()]
            )
        except BaseException:
            here.close()
            raise
        finally:
            there.close()
        worker.proc, worker.channel, worker.started = proc, here, time.monotonic()
        worker.heard = worker.started
        worker.reader = workwire.FrameReader()
        worker.snapshot = {}
        worker.ready.clear()
        worker.paused = False
        here.setblocking(False)
        loop.add_reader(here.fileno(), self._on_channel, worker)
        self.stats.workers = sum(1 for w in self._workers if w.channel is not None)

    def _send(self, worker: _Worker, kind: str, body: Any) -> None:
        if worker.channel is None:
            return
        data = workwire.frame(kind, body)
        try:  # a few bytes: they fit unless the worker is stuck, which its restart cures
            worker.channel.send(data)
        except OSError as exc:
            log.debug(event("trap_worker_send_failed", worker=worker.index, error=exc))

    def _on_channel(self, worker: _Worker) -> None:
        channel = worker.channel
        if channel is None:
            return
        try:
            data = channel.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._exited_worker(worker)
            return
        worker.heard = time.monotonic()
        try:
            for kind, body in worker.reader.feed(data):
                if kind == workwire.EVENTS:
                    evictions = self._own.varbind_cache_evictions
                    worker.pending.append(workwire.check_events(body, self._varbinds))
                    self.stats.varbind_cache_evictions += (
                        self._own.varbind_cache_evictions - evictions
                    )
                elif kind == workwire.STATS:
                    checked = workwire.check_stats(body)
                    _evicted(worker.snapshot, checked)
                    # what changed since its last counters (a sum over every worker's, as
                    # _recount makes, at each hand-over cost more than the traps of a small one)
                    workwire.add_difference(self.stats, worker.snapshot, checked)
                    worker.snapshot = checked
                elif kind == workwire.RECORDED:
                    recorded = workwire.check_recorded(body)
                    for datagram, source, destination, when in recorded:
                        if self.recorder is not None:
                            self.recorder.write(datagram, source, destination, when)
                elif kind == workwire.READY:
                    worker.ready.set()
                else:
                    raise ValueError(f"a frame of an unknown kind {kind[:20]!r}")
        except ValueError as exc:  # not what a worker sends: it is started afresh
            self._refuse(worker, exc)
            return
        if worker.pending and not worker.draining:
            # One batch (at most _TURN events of it) per turn of the loop, as the
            # agent's own receiver reads its socket, so the web and the mail get their turns.
            worker.draining = True
            asyncio.get_running_loop().call_soon(self._drain, worker)
        if len(worker.pending) >= _PENDING_MAX and not worker.paused and worker.channel:
            # Not read meanwhile: a worker the agent cannot keep up with fills its bounded
            # queue (worker_queue, drops counted), not the agent's memory.
            worker.paused = True
            asyncio.get_running_loop().remove_reader(worker.channel.fileno())

    def _refuse(self, worker: _Worker, exc: ValueError) -> None:
        """A frame no worker sends (a bug in it, or worse): counted, logged, worker restarted."""
        self.stats.worker_refused += 1
        proc = worker.proc
        if self._log_limit.allow(("refused", worker.index), self._clock()):
            log.error(
                event(
                    "trap_worker_refused",
                    worker=worker.index,
                    pid=proc.pid if proc is not None else 0,
                    error=str(exc),
                    refused=self.stats.worker_refused,
                )
            )
        if proc is not None:
            proc.kill()
        self._exited_worker(worker)

    def _drain(self, worker: _Worker) -> None:
        if worker.pending:
            items = worker.pending.popleft()
            handed = self._events(items, time.perf_counter() + _TURN_SECONDS, _TURN)
            if handed < len(items):  # the rest on the next turn: a turn's lag stays bounded
                worker.pending.appendleft(items[handed:])
        loop = asyncio.get_running_loop()
        if worker.paused and len(worker.pending) < _PENDING_MAX // 2:
            worker.paused = False
            worker.heard = time.monotonic()  # not read meanwhile: its silence was ours
            if worker.channel is not None:
                loop.add_reader(worker.channel.fileno(), self._on_channel, worker)
        if worker.pending:
            loop.call_soon(self._drain, worker)
        else:
            worker.draining = False

    def _events(
        self,
        items: list[tuple[TrapEvent, workwire.ClockClaim | None, workwire.Matched | None]],
        until: float = math.inf,
        most: int = 1 << 62,
    ) -> int:
        """Hands ``items`` to the sink, at most ``most`` of them and until ``until``
        (:func:`time.perf_counter`) has passed, at least one; returns how many."""
        clocks, sink, own, matched = self._clocks, self._sink, self._own, self._matched
        clock = time.perf_counter
        handed = 0
        for trap, claim, matches in items:
            if handed and (handed >= most or clock() >= until):
                return handed
            handed += 1
            if claim is not None and not clocks.admit(*claim):
                own.rejected[RejectReason.NOT_IN_TIME_WINDOW.value] += 1
                own.received["3"] -= 1  # the worker counted it as received
                self.stats.rejected[RejectReason.NOT_IN_TIME_WINDOW.value] += 1
                self.stats.received["3"] -= 1
                if self._log_limit.allow((trap.source, "window"), self._clock()):
                    log.warning(
                        event(
                            "trap_rejected",
                            source=trap.source,
                            reason=RejectReason.NOT_IN_TIME_WINDOW.value,
                            detail=f"{trap.user} {clocks.describe(claim[0], claim[1], claim[2])}",
                        )
                    )
                continue
            try:
                if matched is not None and matches is not None:
                    matched(trap, matches)
                else:
                    sink(trap)
            except Exception as exc:  # one event must not stop the channel
                own.errors += 1
                self.stats.errors += 1
                if self._log_limit.allow(("sink", type(exc).__name__), self._clock()):
                    log.error(event("trap_handling_failed", source=trap.source, error=f"{exc!r}"))
        return handed

    def _exited_worker(self, worker: _Worker) -> None:
        snapshot = worker.snapshot
        self._close(worker)
        snapshot.pop("storm_keys", None)  # a gauge: the exited worker's folds are gone
        workwire.add_snapshot(self._retired, snapshot)
        worker.snapshot = {}
        self._recount()
        if self._stopping:
            return
        proc = worker.proc
        code = proc.poll() if proc is not None else None
        if proc is not None and code is None:
            proc.kill()  # closed its channel without exiting: not a worker to keep
        self.stats.worker_restarts += 1
        log.error(
            event(
                "trap_worker_exited",
                worker=worker.index,
                pid=proc.pid if proc is not None else 0,
                code=code if code is not None else "?",
                restarts=self.stats.worker_restarts,
            )
        )
        if time.monotonic() - worker.started >= _RAN_WELL:
            worker.delay = _RESTART_DELAY  # it ran a while: not a crash loop
        wait = self._back_off(worker)
        asyncio.get_running_loop().call_later(wait, self._restart, worker, proc)

    def _back_off(self, worker: _Worker) -> float:
        """The wait before ``worker`` starts again; the next one doubles, up to
        ``[traps] worker_restart_max``."""
        cap = max(self.config.worker_restart_max.total_seconds(), _RESTART_DELAY)
        wait, worker.delay = min(worker.delay, cap), min(worker.delay * 2, cap)
        self._show_back_off()
        return wait

    def _show_back_off(self) -> None:
        """``netalert_trap_worker_restart_delay_seconds``: the wait before the next restart of
        the worker with the longest back-off (one that ran well starts over at 0.2 s)."""
        now = time.monotonic()
        self.stats.worker_restart_delay = max(
            (
                w.delay if w.channel is None or now - w.started < _RAN_WELL else _RESTART_DELAY
                for w in self._workers
            ),
            default=0.0,
        )

    def _restart(self, worker: _Worker, old: Process | None) -> None:
        if old is not None:
            old.poll()  # reaped: no zombie left behind
        if self._stopping or worker.channel is not None:
            return
        task = asyncio.ensure_future(self._spawn(worker))
        task.add_done_callback(partial(self._spawned, worker))

    def _spawned(self, worker: _Worker, task: asyncio.Future[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        wait = self._back_off(worker)
        log.error(
            event(
                "trap_worker_start_failed", worker=worker.index, error=task.exception(), retry=wait
            )
        )
        if not self._stopping and worker.channel is None:  # tried again, with the back-off
            asyncio.get_running_loop().call_later(wait, self._restart, worker, None)

    def _close(self, worker: _Worker) -> None:
        if worker.channel is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(worker.channel.fileno())
            worker.channel.close()
            worker.channel = None
        self.stats.workers = sum(1 for w in self._workers if w.channel is not None)
        if not self.stats.workers and self._all_closed is not None:
            self._all_closed.set()

    def _recount(self) -> None:
        workwire.sum_stats(
            self.stats,
            [
                self._retired,
                *(w.snapshot for w in self._workers),
                workwire.stats_snapshot(self._own),
            ],
        )

    def _learned(self) -> tuple[tuple[bytes, str], ...]:
        """The engine IDs (and their devices) the poller learned so far."""
        engines = self._engines
        if engines is None:
            return ()
        out = []
        for engine_id in engines.engine_ids():
            record = engines.get_by_engine(engine_id)
            out.append((engine_id, str(record.device) if record is not None else ""))
        return tuple(out)

    def _on_engine(self, record: Any) -> None:
        learned = (bytes(record.engine_id), str(record.device))
        for worker in self._workers:
            self._send(worker, workwire.ENGINE, learned)

    # --- housekeeping -------------------------------------------------------------

    def _housekeeping(self) -> None:
        try:
            zygote.pump()  # its reports of exits; a zygote that died is logged
            self._show_back_off()
            self._stalled()
            if self.recorder is not None:
                self.recorder.flush()
        finally:
            self._timer = asyncio.get_running_loop().call_later(1.0, self._housekeeping)

    def _stalled(self) -> None:
        """Kills the workers not heard from for ``worker_stall_timeout`` (each says
        something every second): stopped, stuck in a loop, or starved. The traps of
        their sources wait in their sockets; the end of the channel restarts them."""
        now = time.monotonic()
        limit = self.config.worker_stall_timeout.total_seconds()
        for worker in self._workers:
            proc = worker.proc
            if worker.channel is None or proc is None or worker.paused:
                continue  # gone (restarting), or not read by us: no verdict
            silent = now - worker.heard
            if silent < limit:
                continue
            worker.heard = now  # killed once; its channel's end follows
            self.stats.worker_stalls += 1
            log.error(
                event(
                    "trap_worker_stalled",
                    worker=worker.index,
                    pid=proc.pid,
                    silent=f"{silent:.1f}s",
                    stalls=self.stats.worker_stalls,
                )
            )
            proc.kill()


def _evicted(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Adds what a worker's trap caches dropped since its last counters to the agent's."""
    before = old.get("trap_cache_evicted") or {}
    for cache, count in (new.get("trap_cache_evicted") or {}).items():
        if cache in TRAP_CACHE_STATS.evicted:
            TRAP_CACHE_STATS.evicted[cache] += count - before.get(cache, 0)


def _start(tree: TrapTree, spec: WorkerSpec, fds: Sequence[int]) -> Process:
    """Starts a worker (blocks: in a thread): forked by the zygote holding ``tree``, passed
    ``fds`` (its channel's end, then its sockets in the order of ``spec.listen_fds``).

    Raises:
        OSError: the zygote cannot be started, or cannot fork (ZygoteError).
    """
    return zygote.start_worker(tree, spec, fds)
