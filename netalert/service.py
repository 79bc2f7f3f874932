"""The agent: every stage on one event loop, its lifecycle in one place.

The stages (:mod:`netalert.stages`, :mod:`netalert.lifecycle`) are one list in
start order, which follows the data's dependencies: state → WAL checkpoints →
outbox and sender → alerts, rules and notify → trap receiver → poller → web →
ticker → clean-up, then READY=1. Each has the same four steps (open, start,
drain, stop). SIGTERM/SIGINT drain in reverse order (intake stops, the
notifications are flushed, the outbox gets a bounded time, state is
persisted, one closing line of counters); SIGHUP reloads: the new config goes
through :func:`netalert.prepare.prepare`, every stage it changes is opened next
to the running one, and only when all opened are they swapped in; otherwise
the old stages keep running untouched (``reload_rejected``).

Every background task runs under a :class:`~netalert.supervise.Supervisor`
(counted, logged, restarted with backoff), and so do the stage callbacks (a
trap, a poll result): a failing stage does not take the agent down. Only a
damaged state database does: the agent drains and ``netalert run`` exits 1
with one line saying what to do. State writes go through the database's writer,
which holds them in memory while the disk cannot take them; the ticker retries.

This module wires; the decisions live in the stages.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netalert.alerting import Alerting
from netalert.alerts.model import Transition
from netalert.alerts.store import SqliteAlertStore
from netalert.alerts.table import AlertTable
from netalert.config import load_config
from netalert.config.models import Config
from netalert.errors import ConfigError, NetalertError, StateCorruptError, StateError
from netalert.heap import HeapKeeper
from netalert.lifecycle import Hooks, Stage, TaskStage, open_all
from netalert.logs import event
from netalert.mail.outbox import Outbox
from netalert.mail.queue import MailQueue
from netalert.mail.wiring import MailStage, mail_limits
from netalert.metrics import counter_samples
from netalert.notify.dispatcher import Dispatcher
from netalert.notify.nflog import NotificationLog
from netalert.notify.silences import Silences, SilenceStore
from netalert.poll.poller import Poller, Reachability
from netalert.poll.rows import PollResult
from netalert.prepare import Prepared, prepare, prepared_warnings
from netalert.prune import Pruner, live_groups
from netalert.snmp.types import TrapEvent
from netalert.snmp.wire.engines import EngineIdRegistry
from netalert.stages import (
    MailRunner,
    PollerStage,
    ReceiverStage,
    WebStage,
    poller_settings,
    receiver_settings,
    web_settings,
)
from netalert.state import Database, open_database
from netalert.state.checkpoint import Checkpointer
from netalert.state.integrity import corrupt_message
from netalert.supervise import Supervisor
from netalert.systemd import Notifier, watchdog_interval
from netalert.web.wiring import AgentStatus

if TYPE_CHECKING:
    from netalert.ack.stage import SharedAck
    from netalert.cluster.ack import PgAckTables
    from netalert.cluster.agent import ClusterSide
    from netalert.cluster.node import ClusterNode
    from netalert.cluster.usm import UsmShare
    from netalert.notify.nflog import NotifyLog
    from netalert.rules.trapflow import Matches
    from netalert.traps.receiver import TrapReceiver
    from netalert.traps.workers import TrapWorkers

__all__ = ["Agent", "Prepared", "prepare", "raise_descriptor_limit", "run_agent", "stop_step"]

log = logging.getLogger("netalert.service")

TICK = 1.0  # seconds between rule ticks (for, resolve_after) and group flushes


class Agent:
    """The running agent."""

    def __init__(
        self, prepared: Prepared, *, config_path: Path | None = None, recover: bool = False
    ) -> None:
        self.prepared = prepared
        self.config_path = config_path
        self.recover = recover
        self.started = time.time()
        self.db: Database | None = None
        self.nflog: NotifyLog | None = None
        # [cluster] (issue 16): the node's leases, and its state in PostgreSQL; None alone
        self.cluster: ClusterNode | None = None
        self.cluster_side: ClusterSide | None = None
        self.usm: UsmShare | None = None  # [cluster]: the SNMPv3 state the nodes share
        # why the agent must stop with exit 1 (a failure it cannot recover from), if any
        self.fatal: str | None = None
        self.supervisor = Supervisor(
            on_fatal=self._on_fatal,
            retry_max=prepared.config.agent.task_retry_max.total_seconds(),
        )
        self.checkpointer: Checkpointer | None = None
        self.store: AlertTable | None = None
        self.engine: Alerting | None = None
        self.dispatcher: Dispatcher | None = None
        self.silences: Silences | None = None
        self.engines = EngineIdRegistry()
        self.pruner: Pruner | None = None
        self.ack: Any = None  # [ack] (issue 17): netalert.ack.stage.AckStage when configured
        self._ack_task: asyncio.Task[Any] | None = None
        self._ack_tables: PgAckTables | None = None  # [ack] with [cluster]
        # the stages opened so far, in start order (drained and stopped in reverse)
        self.stages: list[Stage] = []
        self._mail: MailRunner | None = None
        self._receiver: ReceiverStage | None = None
        self._poller: PollerStage | None = None
        self._web: WebStage | None = None
        self._pipeline: Stage | None = None
        self._deadline: float | None = None  # of the drain, once intake has stopped
        self.status = AgentStatus(
            started=self.started,
            devices=lambda: [(d.name, str(d.address)) for d in self.config.devices],
            alerts=lambda: self.store.active() if self.store is not None else [],
            mib_modules=lambda: len(self.prepared.tree.modules),
            firing_counts=lambda: self.store.firing_counts() if self.store is not None else {},
        )
        self.counters: dict[str, int] = {
            "traps": 0,
            "polls": 0,
            "transitions": 0,
            "notifications": 0,
            "reloads": 0,
        }
        self.reloads: Counter[str] = Counter()  # netalert_reloads_total{result}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._reload_requested = asyncio.Event()
        self._notifier = Notifier()
        self._wakeup = asyncio.Event()
        self._mailing: asyncio.Task[None] | None = None  # notifications being rendered and queued
        self.heap = HeapKeeper(interval=prepared.config.agent.gc_freeze_interval.total_seconds())

    @property
    def config(self) -> Config:
        """The config in force."""
        return self.prepared.config

    @property
    def mail(self) -> MailStage | None:
        """The mail stage in force (outbox, sender, mailer, canary)."""
        return self._mail.mail if self._mail is not None else None

    @property
    def receiver(self) -> TrapReceiver | TrapWorkers | None:
        """The trap receiver in force (None when traps are off)."""
        return self._receiver.receiver if self._receiver is not None else None

    @property
    def poller(self) -> Poller | None:
        """The poller in force."""
        return self._poller.poller if self._poller is not None else None

    # --- start ------------------------------------------------------------------------

    async def start(self) -> None:
        """Opens and starts every stage in dependency order.

        Raises:
            NetalertError: A stage cannot start (state directory, trap port, web port).
        """
        prepared = self.prepared
        self.cluster = self._cluster_node()
        cluster_stages = self._cluster_stages(prepared)  # [] without [cluster]
        self._mail = MailRunner(
            prepared,
            db=self._database,
            spawn=self._spawn,
            settled=self._settled,
            outbox=self.cluster_side.outbox if self.cluster_side is not None else None,
        )
        self._pipeline = Hooks("notifications", open=self._open_pipeline, drain=self._final)
        self._receiver = self._receiver_stage(prepared)
        self._poller = self._poller_stage(prepared)
        self._web = WebStage(prepared, self.status)
        stages: list[Stage] = [
            Hooks("state", open=self._open_state, stop=self._close_state),
            *cluster_stages,
            Hooks("state-checkpoint", start=self._start_checkpoint_task),
            self._mail,
            self._pipeline,
            # [ack] (issue 17): built with the pipeline; its reader stops after intake
            Hooks("ack-reader", drain=self._drain_ack, stop=self._stop_ack),
            *self._cluster_intake(),
            self._receiver,
            self._poller,
            self._web,
            TaskStage("ticker", self._ticker, self._spawn),
            Hooks("prune", start=self._start_pruner),
        ]
        interval = watchdog_interval()
        if interval is not None:
            stages.append(TaskStage("watchdog", partial(self._watchdog, interval), self._spawn))
        for stage in stages:
            self.stages.append(stage)  # stopped at drain even when its open fails half-way
            await stage.open()
            await stage.start()
            self._attach(stage)
        freeze_heap(start=True)
        self.heap.install()
        self.status.register_source("heap", self.heap.source())
        self.status.register_source(
            "reloads", lambda: counter_samples("netalert_reloads_total", "result", self.reloads)
        )
        self._notifier.ready(self._status_line())
        config = self.config
        _log_warnings(self.prepared)
        assert self.store is not None and self.mail is not None
        log.info(
            event(
                "started",
                devices=len(config.devices),
                rules=len(config.rules),
                routes=len(config.routes),
                alerts=len(self.store.active()),
                outbox=self.mail.outbox.pending(),
                mib_modules=len(self.prepared.tree.modules),
            )
        )

    # --- [ack] (issue 17): replies to alert mails, read over IMAP ----------------------------

    async def _start_ack(self) -> None:
        """Builds the ack stage of ``[ack]`` (if any), signs the mails, starts its reader."""
        config = self.config
        assert self.db is not None and self.mail is not None and self.engine is not None
        # Off first: a reload that removes [ack], or whose new stage fails, keeps nothing of it.
        self.ack = None
        self.mail.mailer.ack = None
        self.status.live.acked = None
        self.status.metrics.unregister_source("ack")
        self.status.metrics.unregister_source("ack-mailbox")
        if config.ack is None:
            return
        from netalert.ack.stage import AckStage, AgentHooks  # IMAP and all: only with [ack]
        from netalert.ack.stats import ack_source

        store, engine = self.store, self.engine
        assert store is not None
        shared = await self._shared_ack()  # [cluster]: the tables and the mailbox every node shares
        tables = self._ack_tables

        async def alert(fingerprint: str) -> Any:
            record = store.get(fingerprint)
            if record is None and tables is not None:  # an alert of another node's shards
                record = await tables.alert(fingerprint)
            return record.alert if record is not None else None

        def resolve(fingerprint: str, now: float, by: str) -> list[Transition]:
            return engine.resolve_by_hand(fingerprint, now, by=by)

        self.ack = AckStage(
            config.ack,
            self.db,
            state_dir=Path(config.agent.state_dir),
            outbox=self.mail.outbox,
            mail_from=config.smtp.from_,
            hooks=AgentHooks(
                alert=alert,
                alerts=store.active,
                resolvable=engine.resolvable_by_hand,
                resolve=resolve,
                after=self._after,
                changed=self._wakeup.set,
            ),
            shared=shared,
        )
        self.mail.mailer.ack = self.ack.issuer
        self.status.live.acked = self.ack.ack_line
        self.status.register_source("ack", ack_source(self.ack.stats))
        self._ack_task = self.supervisor.spawn("ack-reader", self.ack.run)
        self._tasks.add(self._ack_task)
        self._ack_task.add_done_callback(self._tasks.discard)

    async def _shared_ack(self) -> SharedAck | None:
        """[cluster]: the ack tables, silences and token key every node shares, and the
        lock under which one node reads the mailbox; None on a single node.

        Raises:
            NetalertError: The key cannot be read.
        """
        side, cluster, ack = self.cluster_side, self.config.cluster, self.config.ack
        if side is None or cluster is None or ack is None:
            return None
        from netalert.ack.stage import SharedAck
        from netalert.ack.token import load_secret
        from netalert.cluster.ack import MailboxLock, PgAckTables, shared_key

        dsn = cluster.postgres.get_secret_value()
        if ack.secret_file is not None:
            key = load_secret(ack.secret_file)
        else:
            key = await shared_key(dsn)  # off the loop: a reload may add [ack]
        tables = PgAckTables(dsn, refresh=cluster.silence_refresh.total_seconds())
        lock = MailboxLock(dsn, node=cluster.node, check=cluster.lease.total_seconds() / 3)
        self._ack_tables = tables
        tables.refresher.start()
        self.status.register_source("ack-mailbox", lock.source())
        return SharedAck(tables, side.silences, key, lock.run)

    async def _stop_ack(self) -> None:
        task, self._ack_task = self._ack_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        tables, self._ack_tables = self._ack_tables, None
        if tables is not None:
            await tables.stop()

    async def _drain_ack(self, deadline: float) -> None:
        await self._stop_ack()

    def _receiver_stage(
        self, prepared: Prepared, previous: ReceiverStage | None = None
    ) -> ReceiverStage:
        # [cluster]: a trap received here goes to the stream, and its shard's owner evaluates it
        sink = self.cluster.submit if self.cluster is not None else self._on_trap
        clocks = self.usm.clocks if self.usm is not None else None
        return ReceiverStage(
            prepared,
            sink=sink,
            engines=self.engines,
            previous=previous,
            clocks=clocks,
            # trap workers match the trap rules too (not in a cluster: the owner does)
            matched=self._on_trap if self.cluster is None else None,
        )

    def _rules_to_workers(self) -> None:
        """Tells the trap workers (if any) which rule set is in force: they match with it."""
        from netalert.traps.workers import TrapWorkers

        receiver = self.receiver
        if isinstance(receiver, TrapWorkers) and self.engine is not None:
            receiver.set_rules(self.engine.engine.token, self.config)

    def _poller_stage(self, prepared: Prepared) -> PollerStage:
        return PollerStage(
            prepared,
            on_result=self._on_poll,
            on_reachability=self._on_reachability,
            engines=self.engines,
            active=self._cluster_devices if self.cluster is not None else None,
        )

    # --- [cluster] (issue 16): this agent as one node of several (netalert/cluster/node.py) ---

    def _cluster_node(self) -> ClusterNode | None:
        """The stage ``cluster`` (right after ``state``), or None without ``[cluster]``."""
        if self.config.cluster is None:
            return None
        from netalert.cluster.node import ClusterNode

        node = ClusterNode(self.prepared, spawn=self._spawn)
        node.set_poller(self._cluster_poll)
        self.status.add_health_check(node.problems)
        self.status.register_source("cluster", node.source())
        self.status.live.cluster = node.view
        return node

    def _cluster_intake(self) -> list[Stage]:
        """Consuming the traps of the node's shards: starts once the alert stage is up,
        drains (what waits published first) before the notifications are flushed."""
        node = self.cluster
        if node is None:
            return []

        async def start() -> None:
            node.set_trap_handler(self._cluster_trap)
            await node.sync()  # the poller, opened next, starts on these shards

        return [Hooks("cluster-intake", start=start, drain=node.stop_consuming)]

    async def _cluster_trap(self, trap: TrapEvent) -> None:
        """A trap of an owned shard: the single-node path, returning once it is committed."""
        self._on_trap(trap)
        await self.committed()

    def _cluster_devices(self) -> list[str]:
        node = self.cluster
        assert node is not None
        acting = node.acting
        return [d.name for d in self.config.devices if node.shard_of_device(d.name) in acting]

    def _cluster_poll(self, shards: frozenset[int]) -> None:
        poller = self.poller
        if poller is not None:
            poller.set_active(self._cluster_devices())

    def _cluster_drops(self, device: str) -> bool:
        """True when a poll result of ``device`` is not this node's to use (its shard
        went to another node, or the lease ran out)."""
        return self.cluster is not None and not self.cluster.acts_on(device)

    def _attach(self, stage: Stage) -> None:
        """Points the status page and the metrics at a stage just started (start and reload)."""
        if stage is self._mail and self.mail is not None:
            self.status.attach(outbox=self.mail.outbox, mail=self.mail.stats)
            if self.cluster_side is not None:  # mails claimed from PostgreSQL wake the sender
                self.cluster_side.outbox.on_ready = self.mail.sender.wake
        elif stage is self._receiver and self.receiver is not None:
            self.status.attach(traps=self.receiver.stats, kernel_drops=self.receiver.kernel_drops)
            self._rules_to_workers()
        elif stage is self._poller and self.poller is not None:
            self.status.attach(poller=self.poller.stats)

    async def _open_state(self) -> None:
        config = self.config
        self.db = open_database(config.agent.state_dir, recover=self.recover)
        writer = self.db.writer
        writer.max_held = config.agent.state_hold_max
        writer.retry_max = config.agent.state_retry_max.total_seconds()
        writer.per_turn = True  # one transaction per loop turn
        writer.on_fatal = self._on_fatal
        self.status.add_health_check(lambda: [p] if (p := writer.problem()) else [])
        self.status.add_health_check(self.supervisor.problems)
        self.status.register_source("state", writer.source())
        self.status.register_source("tasks", self.supervisor.source())

    async def _open_pipeline(self) -> None:
        """Alerts, rules, silences and the dispatcher, rebuilt from the stored alerts."""
        assert self.db is not None
        side = self.cluster_side
        self.nflog = NotificationLog(self.db) if side is None else side.nflog
        store = SqliteAlertStore(self.db) if side is None else side.state
        self.engine = Alerting(self.config, self.prepared.tree, store, rules=self.prepared.rules)
        engine = self.engine
        self.store = engine.table
        self.status.attach(limits=(engine.limits, lambda: engine.rule_names))
        # [cluster]: the silences every node shares (PostgreSQL, read every silence_refresh)
        self.silences = SilenceStore(self.db) if side is None else side.silences
        await self._start_ack()  # [ack] (issue 17): the dispatcher asks it what is acknowledged
        self._new_dispatcher()
        self.status.attach(dispatcher=self.dispatcher)
        if side is not None:  # the shards held now are loaded, the next ones as they come
            await side.attach(engine, lambda: self.dispatcher)

    # --- [cluster] (issue 16): the node and its state side (netalert/cluster/agent.py) ---------

    def _cluster_stages(self, prepared: Prepared) -> list[Stage]:
        """The node's stages, right after "state" (none without ``[cluster]``)."""
        node = self.cluster
        if node is None:
            return []
        from netalert.cluster.agent import ClusterSide

        side = self.cluster_side = ClusterSide(prepared, node)
        self.status.add_health_check(
            lambda: [*node.problems(), *filter(None, [side.state.problem()])]
        )
        self.status.register_source("cluster-state", side.state.source())
        self.status.register_source("cluster-silences", side.silences.source())
        self.status.register_source("cluster-cleanup", side.cleanup.source())
        side.limits = lambda: self.config.limits  # the config in force (reloads)
        side.devices = lambda: [d.name for d in self.config.devices]
        usm = self.usm = self._cluster_usm(prepared)
        return [
            node,  # its lease manager migrates the schema: the tables below exist after it
            Hooks("cluster-usm", open=usm.open, start=self._start_usm, stop=usm.stop),
            Hooks("cluster-state", open=side.open, drain=side.drain, stop=side.stop),
        ]

    def _cluster_usm(self, prepared: Prepared) -> UsmShare:
        """The SNMPv3 senders' clocks and learned engine IDs the nodes share: the trap
        receiver judges replays by what any node learned (netalert/cluster/usm.py)."""
        from netalert.cluster.usm import UsmShare
        from netalert.snmp.wire.timeliness import EngineClocks

        cluster = prepared.config.cluster
        assert cluster is not None
        usm = UsmShare(
            cluster.postgres.get_secret_value(),
            node=cluster.node,
            every=cluster.usm_sync.total_seconds(),
            clocks=EngineClocks(),  # one table for every receiver a reload builds
            engines=self.engines,
            devices=lambda: (d.name for d in self.config.devices),  # the config in force
        )
        self.status.register_source("cluster-usm", usm.source())
        return usm

    async def _start_usm(self) -> None:
        assert self.usm is not None
        self.usm.start(self._spawn)

    async def committed(self) -> None:
        """Returns once the state changes made so far are committed ([cluster]: in
        PostgreSQL; raises ``StaleLeaseError``/``ShardLostError`` when a shard moved on)."""
        if self.cluster_side is not None:
            await self.cluster_side.state.committed()
        elif self.db is not None:
            await self.db.writer.committed()

    async def _start_checkpoint_task(self) -> None:
        self._start_checkpoints()

    def _start_checkpoints(self) -> None:
        """WAL checkpoints in a worker thread; the loop's own only past ``wal_max_pages``.

        Called at start and after each reload (new interval and page limit). A
        checkpointer that cannot open its connection is logged; the loop's commits
        then checkpoint past the limit as SQLite does. Never raises.
        """
        assert self.db is not None
        if self.db.path is None:
            return  # in memory: no log
        agent = self.config.agent
        self.db.conn.execute(f"PRAGMA wal_autocheckpoint = {int(agent.wal_max_pages)}")
        interval = agent.wal_checkpoint_interval.total_seconds()
        if self.checkpointer is not None:  # a reload
            self.checkpointer.interval = interval
            return
        try:
            self.checkpointer = Checkpointer(self.db.path, interval=interval)
        except sqlite3.Error as exc:
            log.error(event("wal_checkpoints_off", db=self.db.path, error=exc))
            return
        self._spawn(self.checkpointer.run, "state-checkpoint", False)
        self.status.register_source("checkpoint", self.checkpointer.source())

    async def _start_pruner(self) -> None:
        assert self.db is not None and self.engine is not None
        store, engine = self.store, self.engine
        assert store is not None
        self.pruner = Pruner(
            nflog=NotificationLog(self.db),
            outbox=self._outbox,
            limits=lambda: self.config.limits,
            live=lambda: live_groups(self.config.routes, store.alerts()),
        )
        pruner = self.pruner
        self.status.attach(pruned=lambda: {"alerts": engine.pruned, **pruner.rows})
        self._spawn(partial(pruner.run, self._stop), "prune", True)

    def _outbox(self) -> MailQueue:
        assert self.mail is not None
        return self.mail.outbox

    def _database(self) -> Database:
        assert self.db is not None
        return self.db

    def _new_dispatcher(self) -> None:
        assert self.nflog is not None and self.store is not None and self.silences is not None
        silences = self.silences
        ack = self.ack
        self.dispatcher = Dispatcher(
            self.config.routes,
            nflog=self.nflog,  # one log across reloads: it answers for held writes too
            maintenance=self.config.maintenance,
            inhibit=self.config.inhibit,
            silences=lambda now: silences.list(now),
            acked=ack.all_acked if ack is not None else lambda alerts: False,  # [ack]
        )
        now = time.time()
        # Rebuild the groups from the alerts kept across a restart or reload;
        # the notification log keeps them from being mailed twice.
        for alert in self.store.active():
            self.dispatcher.update(alert, now)

    def _spawn(
        self, factory: Callable[[], Awaitable[Any]], name: str, restart: bool = True
    ) -> asyncio.Task[Any]:
        """Runs ``factory()`` as a supervised task (restarted after a failure if ``restart``)."""
        task = self.supervisor.spawn(name, factory, restart=restart)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_fatal(self, exc: BaseException) -> None:
        """A failure the agent cannot recover from: stop, and exit 1 with one line."""
        if isinstance(exc, StateCorruptError):
            self.fatal = str(exc)
        else:
            self.fatal = corrupt_message(self.db.path if self.db else None, str(exc))
        self._stop.set()

    # --- the data path ------------------------------------------------------------------

    # The callbacks below are stage boundaries: whatever a stage raises is counted
    # and logged by the supervisor, and the next trap or poll is handled as usual.

    def _on_trap(self, trap: TrapEvent, matched: tuple[str, Matches] | None = None) -> None:
        assert self.engine is not None
        self.counters["traps"] += 1
        try:
            self.status.record_trap(trap)
            self._after(self.engine.on_trap(trap, trap.received, matched))
        except Exception as exc:
            self.supervisor.failed("traps", exc, then="next trap")

    def _on_poll(self, result: PollResult) -> None:
        assert self.engine is not None
        if self._cluster_drops(result.device):
            return
        self.counters["polls"] += 1
        try:
            self.status.record_poll(result)
            if not result.ok:
                return
            self._after(self.engine.on_poll(result, result.time or time.time()))
        except Exception as exc:
            self.supervisor.failed("poller", exc, then="next poll")

    def _on_reachability(self, change: Reachability) -> None:
        assert self.engine is not None
        if self._cluster_drops(change.device):
            return
        try:
            self.status.record_reachability(change)
            if change.reachable:
                transitions = self.engine.device_reachable(change.device, change.time)
            else:
                transitions = self.engine.device_unreachable(
                    change.device, change.time, change.reason, failures=change.failures
                )
            self._after(transitions)
        except Exception as exc:
            self.supervisor.failed("poller", exc, then="next poll")

    def _after(self, transitions: list[Transition]) -> None:
        """Persists the alerts' new state (or holds it, see StateWriter), then hands the
        changes to notify."""
        assert self.engine is not None
        updates = self.engine.limits.take_updates()
        if not transitions and not updates:
            return
        assert self.store is not None and self.dispatcher is not None
        now = time.time()
        for transition in transitions:
            self.counters["transitions"] += 1
            log.info(
                event(
                    "alert",
                    state=transition.alert.state,
                    kind=transition.kind,
                    rule=transition.rule,
                    device=transition.alert.device,
                    fingerprint=transition.fingerprint,
                    value=transition.value,
                )
            )
            self.dispatcher.update(transition.alert, now)
        for alert in updates:  # a summary alert's new count: no transition, no log line
            self.dispatcher.update(alert, now)
        self.status.record_counts(now)
        self._flush_notifications(now)

    def _flush_notifications(self, now: float, *, force: bool = False) -> None:
        """Takes the notifications due at ``now`` and mails them, rendered off the loop.

        One batch at a time: while a batch renders, the dispatcher is not asked
        again (its notification log is written when each mail is queued, so a
        second flush could tell a group twice); the batch wakes the ticker when done.
        """
        assert self.dispatcher is not None and self.mail is not None
        if self._mailing is not None:
            return
        dispatcher = self.dispatcher
        notifications = dispatcher.flush(now, force=force)
        if notifications:
            task = asyncio.get_running_loop().create_task(
                self._mail_out(dispatcher, notifications), name="mail-out"
            )
            self._mailing = task
            task.add_done_callback(self._mail_out_done)

    async def _mail_out(self, dispatcher: Dispatcher, notifications: list[Any]) -> None:
        assert self.mail is not None and self.nflog is not None
        mailer, nflog = self.mail.mailer, self.nflog
        # small mails render on the loop: after each slice of them, traps and the web get a turn
        slice_seconds = self.config.agent.mail_render_slice.total_seconds()
        began = time.perf_counter()
        for notification in notifications:
            if time.perf_counter() - began >= slice_seconds:
                await asyncio.sleep(0)
                began = time.perf_counter()
            # Until the mail and its log entry are committed (at once, or after a
            # disk-full outage), the log answers as if they were: no second mail.
            token = nflog.hold(notification)
            release = partial(_release, nflog, token, notification.route, notification.group_key)
            try:
                await mailer.submit_off_loop(
                    notification,
                    also=partial(dispatcher.sent, notification=notification),
                    on_done=release,
                )
            except NetalertError as exc:
                release(False)
                if isinstance(exc, StateCorruptError):
                    raise
                log.error(event("notification_failed", group=notification.group_key, error=exc))
                continue
            except BaseException:  # not written: the group is decided again at its next flush
                release(False)
                raise
            self.counters["notifications"] += 1
            log.info(
                event(
                    "notification",
                    route=notification.route,
                    reason=notification.reason,
                    group=notification.group_key,
                    alerts=len(notification.alerts),
                    to=",".join(notification.recipients),
                )
            )

    def _mail_out_done(self, task: asyncio.Task[None]) -> None:
        self._mailing = None
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, StateCorruptError):
            self._on_fatal(exc)
        elif exc is not None:
            log.error(event("notification_failed", error=repr(exc)))
        self._wakeup.set()  # groups that came due meanwhile are flushed now

    async def _mailed(self) -> None:
        """Waits for the batch of notifications being rendered and queued, if any."""
        while self._mailing is not None:
            await asyncio.wait({self._mailing})
            await asyncio.sleep(0)  # let its done callback run

    async def _ticker(self) -> None:
        """Once a second, and whenever woken (a batch of mails done, an ack): held writes,
        confirm polls and due groups. The alerts' own clock (``for``, ``resolve_after``,
        clean-up: a walk over every alert) runs once a second, not on every wake-up: a
        storm of distinct alerts wakes the ticker after each batch of mails."""
        assert self.engine is not None and self.db is not None and self.store is not None
        ticked = -TICK  # monotonic time of the last walk over the alerts
        while not self._stop.is_set():
            now = time.time()
            try:
                self._retry_state()
                if time.monotonic() - ticked >= TICK:
                    ticked = time.monotonic()
                    self._after(self.engine.tick(now))
                for request in self.engine.confirm_requests(now):
                    self._spawn(partial(self._confirm, request), "confirm", restart=False)
                self._flush_notifications(now)
                self.heap.tick()
            except StateCorruptError:
                raise
            except NetalertError as exc:  # counted and said once a minute, not every tick
                self.supervisor.failed("ticker", exc, then="next tick")
            left = ticked + TICK - time.monotonic()  # until the next walk is due
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=max(0.0, left))
            self._wakeup.clear()

    def _retry_state(self) -> None:
        """Writes what the state writer holds, when it can; then what the store re-marked."""
        assert self.db is not None and self.engine is not None
        writer = self.db.writer
        if not writer.holding:
            self.engine.commit()  # records a shed write left changed
            return
        if writer.retry():
            self.engine.commit()
            if self.mail is not None:
                self.mail.sender.wake()  # mails committed just now

    async def _confirm(self, request: Any) -> None:
        """A trap rule's ``confirm``: GET the related instances now and feed the answer back."""
        assert self.engine is not None
        poller = self.poller
        if poller is None:
            return
        try:
            result = await poller.get_now(request.device, list(request.oids))
        except (NetalertError, KeyError) as exc:
            log.warning(event("confirm_failed", device=request.device, error=exc))
            return
        self._after(self.engine.on_confirm(request, result, time.time()))

    async def _watchdog(self, interval: float) -> None:
        while not self._stop.is_set():
            self._notifier.watchdog()
            await asyncio.sleep(interval)

    def _status_line(self) -> str:
        active = len(self.store.active()) if self.store else 0
        pending = self.mail.outbox.pending() if self.mail else 0
        return f"{len(self.config.devices)} devices, {active} active alerts, {pending} mails queued"

    # --- reload and stop ------------------------------------------------------------------

    def request_reload(self) -> None:
        """SIGHUP: reload at the next opportunity."""
        self._reload_requested.set()

    def request_stop(self) -> None:
        """SIGTERM/SIGINT: drain and stop."""
        self._stop.set()

    async def reload(self) -> bool:
        """Reloads the config file: everything changes, or nothing.

        The new config goes through :func:`prepare` (in a worker thread); every
        stage whose settings changed is then opened next to the running one (new
        sockets bound, a kept address shared). Only when all are open are they
        swapped in. When a step fails, what was opened is closed again, the old
        stages keep running untouched, and each reason is logged as
        ``reload_rejected``. Returns whether the new config is in force.
        """
        if self.config_path is None:
            return False
        self._notifier.reloading()
        try:
            loop = asyncio.get_running_loop()
            new = await loop.run_in_executor(None, _load_prepared, self.config_path)
        except ConfigError as exc:
            return self._rejected(exc.problems)
        except Exception as exc:  # whatever failed, the running config stays
            return self._rejected([_reason(exc)])
        old = self.prepared
        if new.config.cluster != old.config.cluster:
            return self._rejected(["[cluster] changed: restart netalert to apply it"])
        built: list[Stage] = []
        receiver = poller = mail = web = None
        if receiver_settings(old.config) != receiver_settings(new.config):
            receiver = self._receiver_stage(new, previous=self._receiver)
            built.append(receiver)
        if poller_settings(old.config) != poller_settings(new.config):
            poller = self._poller_stage(new)
            built.append(poller)
        if new.config.smtp != old.config.smtp and self.mail is not None:
            mail = MailRunner(
                new,
                db=self._database,
                spawn=self._spawn,
                settled=self._settled,
                outbox=self.mail.outbox,  # it knows the writes still held in memory
            )
            built.append(mail)
        if web_settings(new.config) != web_settings(old.config):
            web = WebStage(new, self.status, previous=self._web)
            built.append(web)
        try:
            await open_all(built)
        except Exception as exc:
            return self._rejected([_reason(exc)])
        await self._swap(new, receiver=receiver, poller=poller, mail=mail, web=web)
        return True

    async def _swap(
        self,
        new: Prepared,
        *,
        receiver: ReceiverStage | None,
        poller: PollerStage | None,
        mail: MailRunner | None,
        web: WebStage | None,
    ) -> None:
        """Puts ``new`` and the stages opened for it in force, replacing the old ones."""
        assert self.engine is not None
        old, self.prepared = self.prepared, new
        # Intake whose settings changed stops first; a socket it shares with the
        # new receiver stays bound, and what arrives meanwhile waits in its buffer.
        if receiver is not None:
            await self._replace(self._receiver, receiver)
            self._receiver = receiver
        if poller is not None:
            await self._replace(self._poller, poller)
            self._poller = poller
        self.engine.reload(new.config, new.tree, rules=new.rules)
        self._rules_to_workers()  # what they matched with the old set is matched again
        await self._mailed()  # the old dispatcher's last batch is in the notification log
        ack_changed = (new.config.ack, new.config.smtp) != (old.config.ack, old.config.smtp)
        if ack_changed:  # [ack] (issue 17)
            await self._stop_ack()
        if mail is not None:
            await self._replace(self._mail, mail)
            self._mail = mail
            await mail.start()
            self._attach(mail)
        if ack_changed:
            try:
                await self._start_ack()
            except NetalertError as exc:  # its key file: the rest of the reload goes on
                self.ack = None
                log.error(event("ack_failed", error=exc))
        elif self.mail is not None and self.ack is not None:
            self.mail.mailer.ack = self.ack.issuer  # a new mail stage signs as the old did
        self._new_dispatcher()
        if self.mail is not None:
            self.mail.mailer.limits = mail_limits(new.config)
            self.mail.mailer.on_loop_max_alerts = new.config.agent.mail_render_on_loop_max_alerts
        if self.db is not None:
            self._start_checkpoints()
        self.status.attach(dispatcher=self.dispatcher)
        for stage in (receiver, poller):
            if stage is not None:
                await stage.start()
                self._attach(stage)
        if web is not None:  # the new server already answers: the old one can go
            await self._replace(self._web, web)
            self._web = web
        freeze_heap()
        self.heap.interval = new.config.agent.gc_freeze_interval.total_seconds()
        self.counters["reloads"] += 1
        self.reloads["ok"] += 1
        _log_warnings(new)
        log.info(event("reloaded", config=self.config_path, rules=len(new.config.rules)))
        self._notifier.ready(self._status_line())

    async def _replace(self, old: Stage | None, new: Stage) -> None:
        """Stops ``old`` and puts ``new`` in its place in the list of stages."""
        if old is None:
            return
        self.stages[self.stages.index(old)] = new
        await self._step(old.name, old.stop())

    def _rejected(self, problems: list[str]) -> bool:
        """A reload that changed nothing: each reason logged and counted; returns False."""
        for line in problems:
            log.error(event("reload_rejected", problem=line))
        log.error(event("reload_failed", config=self.config_path, kept="old config"))
        self.reloads["rejected"] += 1
        self._notifier.ready(self._status_line())
        return False

    async def run(self) -> None:
        """Serves until a stop is requested; handles reload requests meanwhile."""
        while not self._stop.is_set():
            stop = asyncio.ensure_future(self._stop.wait())
            reload = asyncio.ensure_future(self._reload_requested.wait())
            await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
            for fut in (stop, reload):
                fut.cancel()
            if self._reload_requested.is_set() and not self._stop.is_set():
                self._reload_requested.clear()
                await self.reload()

    async def drain(self, grace: float | None = None) -> None:
        """Drains every stage in reverse start order, then stops each, the same way round.

        Intake stops first; then the notifications are flushed, the outbox gets
        ``grace`` seconds (``[agent].drain_timeout`` by default, counted from the
        end of intake), mail still waiting then stays in the outbox for the next
        start. Writes the state writer still holds get the same grace; what is
        left is counted in :attr:`unsaved` (``run_agent`` then fails). Never
        raises: each step that fails is logged and the next one runs.
        """
        if grace is None:
            grace = self.config.agent.drain_timeout.total_seconds()
        self._notifier.stopping()
        self._stop.set()
        self._wakeup.set()
        running = list(reversed(self.stages))
        self._deadline = None
        for stage in running:
            if stage is self._pipeline:  # intake (later in start order) has stopped
                self._deadline = time.monotonic() + grace
            await self._step(stage.name, stage.drain(self._deadline or time.monotonic() + grace))
        if self._deadline is None:
            self._deadline = time.monotonic() + grace
        for task in self._tasks:  # what no stage owns any more: a confirm GET, a mail batch
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.heap.uninstall()
        for stage in running:
            await self._step(stage.name, stage.stop())
        pending = sent = 0
        if self.mail is not None:
            sent = self.mail.stats.sent_total
            with contextlib.suppress(Exception):  # the closing line must come out
                pending = self.mail.outbox.pending()
        if self.db is not None:
            with contextlib.suppress(Exception):
                self.db.close()
        log.info(
            event(
                "stopped",
                uptime=f"{time.time() - self.started:.0f}s",
                traps=self.counters["traps"],
                polls=self.counters["polls"],
                transitions=self.counters["transitions"],
                notifications=self.counters["notifications"],
                mail_sent=sent,
                outbox_pending=pending,
                reloads=self.counters["reloads"],
                state_unsaved=self.unsaved,
            )
        )
        self._notifier.close()

    @property
    def unsaved(self) -> int:
        """State writes still held in memory (lost if the process ends now)."""
        return self.db.writer.held if self.db is not None else 0

    async def _step(self, name: str, step: Awaitable[None]) -> None:
        await stop_step(name, step)

    async def _final(self, deadline: float) -> None:
        """The notifications stage's drain: every due group flushed into the outbox."""
        if self.engine is None or self.dispatcher is None or self.mail is None:
            return
        self.engine.commit()
        await self._mailed()
        self._flush_notifications(time.time(), force=True)
        await self._mailed()
        self.mail.sender.wake()

    def _settled(self) -> bool:
        """Writes what can be written; True when the outbox is empty and nothing is held."""
        assert self.mail is not None and self.db is not None
        self._retry_state()
        if self.cluster_side is not None:  # the other nodes' mails are theirs
            return self.cluster_side.outbox.settled() and self.cluster_side.state.settled
        return not self.mail.outbox.pending() and not self.db.writer.holding

    async def _close_state(self) -> None:
        """The state stage's stop: held writes get the drain's grace, then the last flush."""
        if self.db is None or self.store is None:
            return
        deadline = self._deadline if self._deadline is not None else time.monotonic()
        writer = self.db.writer
        while writer.holding and time.monotonic() < deadline:
            self._retry_state()
            await asyncio.sleep(0.05)
        writer.retry(force=True)
        outbox = self.mail.outbox if self.mail is not None else None
        if isinstance(outbox, Outbox) and not writer.holding and outbox.rewrite_results():
            # results shed during an outage: unwritten, their mails would go out again
            writer.retry(force=True)
        if writer.holding:
            log.error(
                event(
                    "state_unsaved",
                    path=writer.path,
                    held=writer.held,
                    error=writer.last_error,
                    lost="alert changes and mails not yet written",
                )
            )
        elif self.engine is not None:
            self.engine.commit()


def _reason(exc: Exception) -> str:
    """A failure's text: a NetalertError or OSError says enough; anything else gets its type."""
    if isinstance(exc, NetalertError | OSError) and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _release(nflog: NotifyLog, token: int, route: str, group_key: str, _committed: bool) -> None:
    # committed or shed, the table answers for the group again
    nflog.release(token, route, group_key)


def _log_warnings(prepared: Prepared) -> None:
    """Logs each warning of a config (the lines ``check-config`` prints), once per load."""
    for warning in prepared_warnings(prepared):
        log.warning(event("config_warning", path=warning.path, problem=warning.message))


def freeze_heap(*, start: bool = False) -> None:
    """Moves everything alive now (the MIB tree above all) out of the collector's sight.

    A full collection walks every tracked object; with hundreds of thousands
    of long-lived MIB objects it blocked the loop for 30-200 ms every few
    seconds, which set the trap-to-mail p99. Called after start and after each
    reload, which unfreezes first, so that a replaced tree can be freed. The start
    does not: the command froze its start-up already (:mod:`netalert.gcpause`), and
    walking that again (the MIB tree) cost every start 50 to 70 ms of CPU to free a
    few hundred import-time cycles, which the first reload frees instead.
    """
    if not start:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


def _load_prepared(path: Path) -> Prepared:
    return prepare(load_config(path))


def raise_descriptor_limit() -> tuple[int, int]:
    """Raises this process's soft ``RLIMIT_NOFILE`` to its hard limit (as a server does:
    the gufo poller keeps one socket per device); returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft, hard


async def run_agent(
    prepared: Prepared,
    *,
    config_path: Path | None = None,
    on_started: Callable[[Agent], None] | None = None,
    install_signals: bool = True,
    recover: bool = False,
) -> Agent:
    """Runs the agent until SIGTERM/SIGINT (or :meth:`Agent.request_stop`), then drains.

    Args:
        recover: Move a damaged state database aside and start fresh (``--recover``).

    Raises:
        NetalertError: The agent could not start, or stopped on a failure it cannot
            recover from (a damaged database), or stopped with state writes unsaved;
            one line saying what to do.
    """
    agent = Agent(prepared, config_path=config_path, recover=recover)
    loop = asyncio.get_running_loop()
    if install_signals:
        loop.add_signal_handler(signal.SIGTERM, agent.request_stop)
        loop.add_signal_handler(signal.SIGINT, agent.request_stop)
        loop.add_signal_handler(signal.SIGHUP, agent.request_reload)
    try:
        await agent.start()
        if on_started is not None:
            on_started(agent)
        await agent.run()
    finally:
        await agent.drain()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
    if agent.fatal is not None:
        raise NetalertError(agent.fatal)
    if agent.unsaved:
        assert agent.db is not None
        raise StateError(
            f"stopped with {agent.unsaved} state writes not saved to {agent.db.path} "
            f"({agent.db.writer.last_error}): the alert changes and mails they held are lost"
        )
    return agent


# seconds a step of the stop may take before the log says which one it still waits for
STEP_SLOW = 5.0


async def stop_step(name: str, step: Awaitable[None]) -> None:
    """Runs one stage's drain or stop: a failure is logged (the next step runs all the
    same), and every :data:`STEP_SLOW` seconds it has not finished the log names it
    (``event=drain_step_slow``), so a stop that hangs says where."""
    task = asyncio.ensure_future(step)
    started = time.monotonic()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=STEP_SLOW)
            if done:
                task.result()
                return
            waited = time.monotonic() - started
            log.warning(event("drain_step_slow", step=name, waited=f"{waited:.0f}s"))
    except asyncio.CancelledError:
        task.cancel()
        raise
    except Exception as exc:  # one failing step must not keep the others from running
        log.error(event("drain_step_failed", step=name, error=f"{type(exc).__name__}: {exc}"))
