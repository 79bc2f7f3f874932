"""The poller: per-device schedules, one poll at a time per device, results out.

Flow per device: APScheduler 3.11 :class:`AsyncIOScheduler` fires an interval job
(first run spread over the interval by device name, plus a random delay of up
to ``jitter`` x interval; later runs keep the interval exactly) →
:meth:`Poller.poll` takes a slot of the global in-flight limit → the device's
backend client GETs ``plan.get`` (sysUpTime.0 first) and walks ``plan.walk`` →
:class:`DeviceTracker` names the values through the MIB tree, joins rows and
computes counter rates → ``on_result(PollResult)``.

* A device is never polled twice at once. A run that comes due while the
  previous one still runs is an *overrun*: counted (``stats.overruns``) and
  logged once until the device keeps up again.
* ``max_in_flight`` bounds concurrent polls, i.e. outstanding requests: one
  gufo session carries one request at a time.
* After a stall (suspended laptop, blocked loop), missed runs coalesce into one.
* Reachability: a timeout (no answer within timeout x (retries + 1)) marks the
  device unreachable and calls ``on_reachability`` with the number of polls in
  a row without an answer, at every such poll (logged once); the next answer
  clears it with one call. The rules engine turns these into ``DeviceUnreachable``
  once the count reaches ``[agent] unreachable_after``.
* v3 engine IDs learned by the clients land in the :class:`EngineIdRegistry`.
* :meth:`Poller.set_active` limits polling to some devices (a cluster node's
  shards) and changes them while running: a device added is scheduled as at
  start, one removed is unscheduled, and a poll of it under way reports nothing.

``PollResult`` and ``Row`` are defined in :mod:`netalert.poll.rows` and
re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from netalert.errors import SnmpError
from netalert.logs import RateLimiter, event
from netalert.metrics import HistogramCounts
from netalert.poll.backends import make_client
from netalert.poll.client import (
    Backend,
    SessionStats,
    SnmpAuthError,
    SnmpClient,
    SnmpTimeoutError,
    Target,
)
from netalert.poll.counters import Verdict, counter_went_back
from netalert.poll.plan import SYS_UPTIME, DevicePlan
from netalert.poll.rows import DeviceTracker, PollResult, PollStatus, Row
from netalert.poll.udp import ExchangeStats
from netalert.snmp.naming import MibTreeLike, Namer
from netalert.snmp.types import VarBind
from netalert.snmp.wire.engines import EngineIdRegistry

__all__ = [
    "PollResult",
    "Poller",
    "PollerStats",
    "Reachability",
    "Row",
]

log = logging.getLogger(__name__)

ResultCallback = Callable[[PollResult], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Reachability:
    """A poll of a device got no answer (``reachable=False``), or it answered again.

    ``failures`` counts the polls in a row without an answer (0 when reachable).
    """

    device: str
    address: str
    reachable: bool
    reason: str
    time: float
    failures: int = 0


ReachabilityCallback = Callable[[Reachability], Awaitable[None] | None]


# seconds: from "on time" to "a whole 5-minute interval behind"
LATENESS_BUCKETS: tuple[float, ...] = (
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
BEHIND_LOG_EVERY = 60.0  # seconds between two poll_schedule_behind warnings


@dataclass
class PollerStats:
    """Counters for /metrics and the closing log line (``netalert_polls_total{result}``)."""

    polls: Counter[str] = field(default_factory=Counter)
    overruns: int = 0
    # runs the scheduler folded into a later one: the loop was too busy to start them
    missed: int = 0
    # how late each scheduled poll started (its due time to its request), seconds
    lateness: HistogramCounts = field(default_factory=lambda: HistogramCounts(LATENESS_BUCKETS))
    implausible_rates: int = 0
    restarts: int = 0
    in_flight: int = 0
    max_in_flight_seen: int = 0
    # (cap, counters) of each client that keeps sessions (gufo) or targets (native)
    sessions: list[tuple[int, SessionStats]] = field(default_factory=list)
    # datagrams dropped by the clients with shared sockets (native), by why
    datagrams: list[ExchangeStats] = field(default_factory=list)
    # answers the native client could not take as they were, by why
    faults: list[dict[str, int]] = field(default_factory=list)


class _DeviceState:
    __slots__ = (
        "due_index",
        "failures",
        "first_due",
        "overrun_logged",
        "plan",
        "reachable",
        "running",
        "tracker",
    )

    def __init__(self, plan: DevicePlan, namer: Namer) -> None:
        self.plan = plan
        self.tracker = DeviceTracker(plan.name, namer)
        self.running = False
        self.overrun_logged = False
        self.reachable: bool | None = None
        self.failures = 0  # polls in a row without an answer
        self.first_due = 0.0  # epoch seconds of the first scheduled run (see Poller._schedule)
        self.due_index = -1  # the last scheduled run that started: first_due + index x interval


class Poller:
    """Polls many devices on their schedules; see the module docstring."""

    def __init__(
        self,
        plans: Sequence[DevicePlan],
        tree: MibTreeLike,
        *,
        on_result: ResultCallback | None = None,
        on_reachability: ReachabilityCallback | None = None,
        engines: EngineIdRegistry | None = None,
        max_in_flight: int = 256,
        max_sessions: int = 50_000,
        clients: Mapping[Backend, SnmpClient] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namer = Namer(tree)
        self.engines = engines if engines is not None else EngineIdRegistry()
        self.stats = PollerStats()
        self._on_result = on_result
        self._on_reachability = on_reachability
        self._clock = clock
        self._limit = asyncio.Semaphore(max_in_flight)
        self._max_sessions = max_sessions
        self._devices: dict[str, _DeviceState] = {}
        self._by_target: dict[Target, str] = {}
        self._clients: dict[Backend, SnmpClient] = dict(clients or {})
        self._own_clients = clients is None
        for given in self._clients.values():
            self._watch(given)
        self._scheduler: Any = None
        self._executor: Any = None  # StoppableExecutor once started: its cancelled runs
        self._running = 0  # polls in progress, for a bounded drain on stop
        self._stopping = False
        self._idle = asyncio.Event()
        self._active: frozenset[str] | None = None  # None: every device (see set_active)
        # poll_schedule_behind: late and missed runs since the last warning, the latest start
        self._late_runs = self._missed_runs = 0
        self._worst_late = 0.0
        self._behind_log = RateLimiter(BEHIND_LOG_EVERY)
        for plan in plans:
            self._devices[plan.name] = _DeviceState(plan, self.namer)
            self._by_target[plan.target] = plan.name

    # --- clients and engine IDs ---------------------------------------------------

    def _client(self, backend: Backend) -> SnmpClient:
        client = self._clients.get(backend)
        if client is None:
            client = make_client(
                backend, on_engine_id=self._learn_engine, max_sessions=self._max_sessions
            )
            self._watch(client)
            self._clients[backend] = client
        return client

    def _watch(self, client: SnmpClient) -> None:
        """Counts the client's sessions in the stats, if it keeps any (gufo)."""
        kept = getattr(client, "stats", None)
        if isinstance(kept, SessionStats):
            self.stats.sessions.append((getattr(client, "max_sessions", 0), kept))
        exchanges = getattr(client, "exchanges", None)
        if exchanges is not None:
            self.stats.datagrams.append(exchanges.stats)
        faults = getattr(client, "faults", None)
        if isinstance(faults, dict):
            self.stats.faults.append(faults)

    def _learn_engine(self, target: Target, engine_id: bytes) -> None:
        device = self._by_target.get(target)
        if device is not None and engine_id:
            self.engines.add(device, target.host, target.port, engine_id, target.user)

    # --- one poll -----------------------------------------------------------------

    @property
    def devices(self) -> list[str]:
        """Names of the devices this poller knows."""
        return list(self._devices)

    def is_active(self, name: str) -> bool:
        """True when device ``name`` is polled on its schedule (see :meth:`set_active`)."""
        return self._active is None or name in self._active

    def set_active(self, names: Iterable[str] | None) -> None:
        """Polls only the devices ``names`` from now on (None: every device); names
        this poller does not know are ignored.

        Before :meth:`start` it only records them. Afterwards a device added gets
        its schedule (its first poll spread over its interval, as at start), a
        device removed loses it, and a poll of it under way reports nothing: no
        result, no reachability change. The devices' rate and reachability
        history is kept.
        """
        before = self._scheduled()
        self._active = None if names is None else frozenset(n for n in names if n in self._devices)
        scheduler = self._scheduler
        if scheduler is None:
            return
        after = self._scheduled()
        for name in sorted(before - after):
            with contextlib.suppress(Exception):  # JobLookupError: its job is gone already
                scheduler.remove_job(name)
        now = datetime.now(UTC)
        for name in sorted(after - before):
            self._schedule(scheduler, name, now, spread=True)

    def _scheduled(self) -> set[str]:
        return set(self._devices) if self._active is None else set(self._active)

    async def poll(self, name: str, *, due: float | None = None) -> PollResult:
        """Polls device ``name`` once now and returns (and reports) the result.

        ``due``: when its schedule wanted this poll (epoch seconds, the scheduler's own
        clock); how late the request starts, waiting for a ``max_in_flight`` slot
        included, goes to ``stats.lateness``.

        Raises:
            KeyError: no such device.
            RuntimeError: the device is being polled right now.
        """
        state = self._devices[name]
        if state.running:
            raise RuntimeError(f"device {name!r} is being polled")
        state.running = True
        self._running += 1
        self._idle.clear()
        try:
            async with self._limit:
                if due is not None:
                    self._late(state, time.time() - due)
                self.stats.in_flight += 1
                self.stats.max_in_flight_seen = max(
                    self.stats.max_in_flight_seen, self.stats.in_flight
                )
                try:
                    result = await self._poll(state)
                finally:
                    self.stats.in_flight -= 1
        finally:
            state.running = False
            self._running -= 1
            if not self._running:
                self._idle.set()
        if self.is_active(name):  # else it was handed over meanwhile: another node reports
            await self._report(state, result)
        return result

    async def get_now(self, name: str, oids: Sequence[str]) -> PollResult:
        """GETs ``oids`` (dotted) from device ``name`` at once, outside its schedule.

        Used to confirm a trap by polling (a trap rule's ``confirm``). The answer is
        named like a poll's but feeds no rate history and no reachability.

        Raises:
            KeyError: no such device.
            SnmpError: the device did not answer or refused the request.
        """
        state = self._devices[name]
        plan = state.plan
        client = self._client(plan.backend)
        started = self._clock()
        async with self._limit:
            varbinds = await client.get(plan.target, [SYS_UPTIME, *oids])
        answered = self._clock()
        result, _ = DeviceTracker(plan.name, self.namer).assemble(
            varbinds,
            address=plan.target.address,
            started=started,
            answered=answered,
            finished=answered,
            labels=plan.labels,
        )
        return result

    async def _poll(self, state: _DeviceState) -> PollResult:
        plan = state.plan
        target = plan.target
        client = self._client(plan.backend)
        started = self._clock()
        status: PollStatus = "ok"
        errors: list[str] = []
        # A client that reads a poll in fewer requests (the native one: the GET's scalars
        # and the columns share GETBULKs) reads it so; when that fails for a reason of
        # the agent's, the GET and each walk on its own say what is broken.
        together: Callable[..., Awaitable[tuple[list[VarBind], list[list[VarBind]]]]] | None
        together = getattr(client, "get_and_walk", None) if plan.walk else None
        walked: list[list[VarBind]] | None = None
        if together is not None:
            try:
                varbinds, walked = await together(target, plan.get, plan.walk)
            except SnmpTimeoutError as exc:
                return self._failed(state, "timeout", str(exc), started)
            except SnmpAuthError as exc:
                return self._failed(state, "auth", str(exc), started)
            except SnmpError:
                walked = None
        if walked is None:
            try:
                varbinds = await client.get(target, plan.get)
            except SnmpTimeoutError as exc:
                return self._failed(state, "timeout", str(exc), started)
            except SnmpAuthError as exc:
                return self._failed(state, "auth", str(exc), started)
            except SnmpError as exc:
                return self._failed(state, "error", str(exc), started)
        answered = self._clock()
        for got in walked or ():
            varbinds += got
        for oid in () if walked is not None else plan.walk:
            try:
                varbinds += await client.walk(target, oid)
            except SnmpTimeoutError as exc:
                return self._failed(state, "timeout", str(exc), started)
            except SnmpAuthError as exc:
                return self._failed(state, "auth", str(exc), started)
            except SnmpError as exc:  # one broken table must not hide the others
                status = "partial"
                errors.append(f"walk {oid}: {exc}")
        if plan.walk and counter_went_back(state.tracker.counters, varbinds):
            varbinds, read_at = await self._recheck_uptime(client, target, varbinds)
            if read_at is not None:  # the agent restarted during this poll
                answered = read_at
        result, verdicts = state.tracker.assemble(
            varbinds,
            address=target.address,
            started=started,
            answered=answered,
            finished=self._clock(),
            status=status,
            error="; ".join(errors),
            labels=plan.labels,
        )
        implausible = verdicts.get(Verdict.IMPLAUSIBLE, 0)
        if implausible:
            self.stats.implausible_rates += implausible
            log.debug(event("implausible_rates", device=plan.name, count=implausible))
        if result.restarted:
            self.stats.restarts += 1
            log.info(event("agent_restarted", device=plan.name))
        return result

    async def _recheck_uptime(
        self, client: SnmpClient, target: Target, varbinds: list[VarBind]
    ) -> tuple[list[VarBind], float | None]:
        """Reads sysUpTime again after the walks when a counter went backwards.

        sysUpTime is read by the GET before the walks: an agent that restarted
        between the two shows the old uptime next to new (small) counters, which
        would look like a wrap. Only in that rare case is the clock read again;
        when it went back, that later reading stands for the poll, so the rates
        are dropped as for any restart. It stands with the time it was read at
        (returned; None when the first reading stays): timed at the GET, the
        next poll would find less uptime than time passed and see a restart again.
        """
        first = next((vb for vb in varbinds if vb.oid == SYS_UPTIME), None)
        if first is None or not isinstance(first.value, int):
            return varbinds, None
        try:
            (again,) = await client.get(target, [SYS_UPTIME])
        except (SnmpError, ValueError):
            return varbinds, None
        read_at = self._clock()
        if not isinstance(again.value, int) or again.value >= first.value:
            return varbinds, None
        return [again if vb is first else vb for vb in varbinds], read_at

    def _failed(
        self, state: _DeviceState, status: PollStatus, error: str, started: float
    ) -> PollResult:
        now = self._clock()
        plan = state.plan
        return PollResult(
            device=plan.name,
            address=plan.target.address,
            status=status,
            started=started,
            duration=now - started,
            time=now,
            error=error,
            labels=plan.labels,
        )

    async def _report(self, state: _DeviceState, result: PollResult) -> None:
        self.stats.polls[result.status] += 1
        change: Reachability | None = None
        if result.status == "timeout":
            state.failures += 1
            if state.reachable is not False:
                log.warning(
                    event("device_unreachable", device=result.device, address=result.address)
                )
            state.reachable = False
            change = Reachability(
                result.device,
                result.address,
                False,
                result.error,
                self._clock(),
                failures=state.failures,
            )
        else:
            state.failures = 0
            if state.reachable is False:
                change = Reachability(result.device, result.address, True, "", self._clock())
                log.info(event("device_reachable", device=result.device, address=result.address))
            state.reachable = True
        if result.status in ("auth", "error"):
            log.warning(event("poll_failed", device=result.device, error=result.error))
        if change is not None and self._on_reachability is not None:
            await _maybe_await(self._on_reachability(change))
        if self._on_result is not None:
            await _maybe_await(self._on_result(result))

    # --- schedules ----------------------------------------------------------------

    async def _job(self, name: str) -> None:
        state = self._devices.get(name)
        if state is None or not self.is_active(name):
            return
        if state.running:
            self.stats.overruns += 1
            if not state.overrun_logged:
                state.overrun_logged = True
                log.warning(
                    event(
                        "poll_overrun",
                        device=name,
                        interval=f"{state.plan.interval:g}s",
                        note="previous poll still running; logged once",
                    )
                )
            return
        state.overrun_logged = False
        if self._stopping:
            return
        due = self._due(state)
        try:
            await self.poll(name, due=due)
        except asyncio.CancelledError:
            # stop() gave up waiting for this poll (queued behind max_in_flight):
            # end quietly instead of a traceback per device in APScheduler's log.
            return
        except Exception:  # a scheduler job must never die
            log.exception(event("poll_crashed", device=name))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # nor of a native library's panic (pyo3's PanicException)
            log.exception(event("poll_crashed", device=name))

    def _due(self, state: _DeviceState) -> float:
        """The scheduled time of the run starting now; runs skipped since the last one
        (the scheduler coalesces runs it could not start in time) count as missed."""
        interval = state.plan.interval
        now = time.time()
        # 1 ms of slack: a run the scheduler starts on time must not round down a step
        index = max(0, int((now - state.first_due) / interval + 0.001)) if interval > 0 else 0
        skipped = index - state.due_index - 1
        if skipped > 0:
            self.stats.missed += skipped
            self._missed_runs += skipped
        state.due_index = max(index, state.due_index + 1)
        return state.first_due + index * interval

    def _late(self, state: _DeviceState, lateness: float) -> None:
        lateness = max(0.0, lateness)
        self.stats.lateness.observe(lateness)
        if lateness > state.plan.interval / 2:
            self._late_runs += 1
            self._worst_late = max(self._worst_late, lateness)
        if not (self._late_runs or self._missed_runs):
            return
        if not self._behind_log.allow("behind", time.monotonic()):
            return
        late, missed, worst = self._late_runs, self._missed_runs, self._worst_late
        self._late_runs = self._missed_runs = 0
        self._worst_late = 0.0
        log.warning(
            event(
                "poll_schedule_behind",
                late=late,
                missed=missed,
                worst_late=f"{worst:.1f}s",
                note="polls start over half an interval late or are skipped: "
                "too many devices for this core, or the loop is blocked",
            )
        )

    def start(self, *, spread: bool = True) -> None:
        """Schedules every device (every active one, see :meth:`set_active`) on the
        running event loop.

        With ``spread`` (the default) first polls are spread over each device's
        interval; without, every device is polled at once (tests, benchmarks).
        A poller of no device (an agent that only receives traps) schedules nothing
        and imports no scheduler (30 ms of CPU).
        """
        self._stopping = False
        if not self._devices:
            return
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        from netalert.poll.schedule import StoppableExecutor

        # APScheduler logs every run at INFO: 10,000 devices would flood the log.
        for noisy in ("apscheduler.executors", "apscheduler.scheduler"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self._executor = StoppableExecutor()
        scheduler = AsyncIOScheduler(
            event_loop=asyncio.get_running_loop(),
            timezone=UTC,
            executors={"default": self._executor},
        )
        now = datetime.now(UTC)
        for name in self._devices:
            if self.is_active(name):
                self._schedule(scheduler, name, now, spread=spread)
        scheduler.start()
        self._scheduler = scheduler

    def _schedule(self, scheduler: Any, name: str, now: datetime, *, spread: bool) -> None:
        from apscheduler.triggers.interval import IntervalTrigger

        plan = self._devices[name].plan
        # Jitter moves the first poll only. APScheduler's own jitter delays each run
        # from the previous *jittered* one, which stretched every interval.
        start = plan.offset + plan.jitter * plan.interval * random.random() if spread else 0.0
        first = now + timedelta(seconds=start)
        state = self._devices[name]
        state.first_due, state.due_index = first.timestamp(), -1
        scheduler.add_job(
            self._job,
            IntervalTrigger(seconds=plan.interval, start_date=first, timezone=UTC),
            args=[name],
            id=name,
            # 2, not 1: the second instance reaches _job and is counted as an
            # overrun there, instead of APScheduler's per-run warning.
            max_instances=2,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=first,
            replace_existing=True,
        )

    async def stop(self) -> None:
        """Stops scheduling, waits up to 5 s for running polls, closes the clients."""
        self._stopping = True
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 5.0)
        if self._own_clients:
            for client in self._clients.values():
                await client.close()
            self._clients.clear()
        log.info(
            event(
                "poller_stopped",
                polls=dict(self.stats.polls),
                overruns=self.stats.overruns,
                missed=self.stats.missed,
                implausible_rates=self.stats.implausible_rates,
                restarts=self.stats.restarts,
                # runs due but not started when the stop came (a busy loop): ended, not failed
                cancelled=0 if self._executor is None else self._executor.cancelled,
            )
        )


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if inspect.isawaitable(value):
        await value
