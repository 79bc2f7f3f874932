"""The agent: every stage on one event loop, its lifecycle in one place.

Start order follows the data's dependencies: state → MIBs → outbox and sender
→ alerts and rules → notify → trap receiver → poller → web, then READY=1.
SIGTERM/SIGINT drain (stop intake, flush notifications, give the outbox a
bounded time, persist, one closing line of counters); SIGHUP reloads (the new
config is validated completely before anything changes).

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
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from netalert.alerts.model import Transition
from netalert.alerts.store import AlertStore
from netalert.config import load_config
from netalert.config.models import Config
from netalert.config.risks import config_warnings
from netalert.configcheck import names_and_rules
from netalert.errors import ConfigError, NetalertError, StateCorruptError, StateError
from netalert.heap import HeapKeeper
from netalert.logs import event
from netalert.mail.outbox import Outbox
from netalert.mail.wiring import MailStage, build_mail_stage, mail_limits
from netalert.mib import MibTree, load_mibs
from netalert.notify.dispatcher import Dispatcher
from netalert.notify.nflog import NotificationLog
from netalert.notify.silences import SilenceStore
from netalert.prune import Pruner, live_groups
from netalert.rules import RuleEngine, RuleSet
from netalert.rules.adapt import from_poller
from netalert.snmp.engines import EngineIdRegistry
from netalert.snmp.plan import build_plans
from netalert.snmp.poller import Poller, Reachability
from netalert.snmp.rows import PollResult
from netalert.snmp.types import TrapEvent
from netalert.state import Database, open_database
from netalert.state.checkpoint import Checkpointer
from netalert.state.db import check_state_dir
from netalert.state.integrity import corrupt_message
from netalert.supervise import Supervisor
from netalert.systemd import Notifier, watchdog_interval
from netalert.web.guard import HttpLimits
from netalert.web.sources import limits_source, pruned_source
from netalert.web.wiring import AgentStatus

__all__ = ["Agent", "Prepared", "prepare", "run_agent"]

log = logging.getLogger("netalert.service")

TICK = 1.0  # seconds between rule ticks (for, resolve_after) and group flushes


@dataclass(frozen=True, slots=True)
class Prepared:
    """A config validated completely: MIB names resolved, rules compiled."""

    config: Config
    tree: MibTree
    rules: RuleSet


def prepare(config: Config, *, tree: MibTree | None = None) -> Prepared:
    """Validates everything a config refers to; nothing is started.

    Raises:
        ConfigError: One line per problem (unknown MIB names, rule errors).
        StateError: The state directory cannot be created or written (read-only,
            full, a file in the way); checked first, before the MIB cache is used.
    """
    if tree is None:
        state_dir = check_state_dir(config.agent.state_dir)
        try:
            tree = load_mibs(config.mibs, state_dir)
        except OSError as exc:  # the cache under state_dir filled the disk, or vanished
            raise StateError(
                f"state_dir {state_dir}: cannot write the MIB cache ({exc.strerror or exc}); "
                "free space there or set [agent].state_dir to a writable folder"
            ) from None
    problems, rules = names_and_rules(config, tree)
    if rules is None:
        raise ConfigError(problems)
    build_plans(config, tree)  # raises ConfigError for names a collect group cannot resolve
    return Prepared(config, tree, rules)


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
        self.nflog: NotificationLog | None = None
        # why the agent must stop with exit 1 (a failure it cannot recover from), if any
        self.fatal: str | None = None
        self.supervisor = Supervisor(
            on_fatal=self._on_fatal,
            retry_max=prepared.config.agent.task_retry_max.total_seconds(),
        )
        self.mail: MailStage | None = None
        self.checkpointer: Checkpointer | None = None
        self.store: AlertStore | None = None
        self.engine: RuleEngine | None = None
        self.dispatcher: Dispatcher | None = None
        self.silences: SilenceStore | None = None
        self.engines = EngineIdRegistry()
        self.poller: Poller | None = None
        self.receiver: Any = None
        self.pruner: Pruner | None = None
        self.ack: Any = None  # [ack] (issue 17): netalert.ack.stage.AckStage when configured
        self._ack_task: asyncio.Task[Any] | None = None
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

    # --- start ------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts every stage in dependency order.

        Raises:
            NetalertError: A stage cannot start (state directory, trap port, web port).
        """
        config = self.config
        self.db = open_database(config.agent.state_dir, recover=self.recover)
        writer = self.db.writer
        writer.max_held = config.agent.state_hold_max
        writer.retry_max = config.agent.state_retry_max.total_seconds()
        self.status.add_health_check(lambda: [p] if (p := writer.problem()) else [])
        self.status.add_health_check(self.supervisor.problems)
        self.status.metrics.register_source("state", writer.source())
        self.status.metrics.register_source("tasks", self.supervisor.source())
        self._start_checkpoints()
        self.mail = build_mail_stage(config, self.db, base_dir=self._base_dir())
        self._spawn(self.mail.sender.run, "mail-sender")
        if self.mail.canary is not None:
            self._spawn(self.mail.canary.run, "mail-canary")
        self.store = AlertStore(self.db)
        self.nflog = NotificationLog(self.db)
        self.engine = RuleEngine(config, self.prepared.tree, self.store, rules=self.prepared.rules)
        engine = self.engine
        self.status.metrics.register_source(
            "limits", limits_source(engine.limits, lambda: engine.rule_names)
        )
        self.silences = SilenceStore(self.db)
        self._start_ack()
        self._new_dispatcher()
        self.status.attach(
            dispatcher=self.dispatcher, outbox=self.mail.outbox, mail=self.mail.stats
        )
        await self._start_intake()
        await self._start_web()
        self._spawn(self._ticker, "ticker")
        self._start_pruner()
        interval = watchdog_interval()
        if interval is not None:
            self._spawn(partial(self._watchdog, interval), "watchdog")
        freeze_heap()
        self.heap.install()
        self.status.metrics.register_source("heap", self.heap.source())
        self._notifier.ready(self._status_line())
        _log_warnings(config)
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

    def _start_ack(self) -> None:
        """Builds the ack stage of ``[ack]`` (if any), signs the mails, starts its reader."""
        from netalert.ack.stage import AckStage, AgentHooks
        from netalert.ack.stats import ack_source

        config = self.config
        assert self.db is not None and self.mail is not None and self.engine is not None
        # Off first: a reload that removes [ack], or whose new stage fails, keeps nothing of it.
        self.ack = None
        self.mail.mailer.ack = None
        self.status.live.acked = None
        self.status.metrics.unregister_source("ack")
        if config.ack is None:
            return
        store, engine = self.store, self.engine
        assert store is not None

        def alert(fingerprint: str) -> Any:
            record = store.get(fingerprint)
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
        )
        self.mail.mailer.ack = self.ack.issuer
        self.status.live.acked = self.ack.ack_line
        self.status.metrics.register_source("ack", ack_source(self.ack.stats))
        self._ack_task = self.supervisor.spawn("ack-reader", self.ack.run)
        self._tasks.add(self._ack_task)
        self._ack_task.add_done_callback(self._tasks.discard)

    async def _stop_ack(self) -> None:
        task, self._ack_task = self._ack_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

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
        self._spawn(self.checkpointer.run, "state-checkpoint", restart=False)
        self.status.metrics.register_source("checkpoint", self.checkpointer.source())

    def _start_pruner(self) -> None:
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
        self.status.metrics.register_source(
            "prune", pruned_source(lambda: {"alerts": engine.pruned, **pruner.rows})
        )
        self._spawn(partial(pruner.run, self._stop), "prune")

    def _outbox(self) -> Outbox:
        assert self.mail is not None
        return self.mail.outbox

    def _base_dir(self) -> Path | None:
        return self.config_path.resolve().parent if self.config_path else None

    def _new_dispatcher(self) -> None:
        assert self.nflog is not None and self.store is not None and self.silences is not None
        silences = self.silences
        ack = self.ack
        self.dispatcher = Dispatcher(
            self.config.routes,
            nflog=self.nflog,  # one log across reloads: it answers for held writes too
            maintenance=self.config.maintenance,
            silences=lambda now: silences.list(now),
            acked=ack.all_acked if ack is not None else lambda alerts: False,  # [ack]
        )
        now = time.time()
        # Rebuild the groups from the alerts kept across a restart or reload;
        # the notification log keeps them from being mailed twice.
        for alert in self.store.active():
            self.dispatcher.update(alert, now)

    async def _start_receiver(self) -> None:
        config = self.config
        if not config.traps.enabled:
            return
        from netalert.snmp.traps import TrapReceiver

        self.receiver = TrapReceiver(
            config.traps,
            sink=self._on_trap,
            tree=self.prepared.tree,
            devices=config.devices,
            engines=self.engines,
            state_dir=Path(config.agent.state_dir),
        )
        try:
            await self.receiver.start()
        except ValueError as exc:  # a malformed engine_id file in state_dir
            self.receiver = None
            raise NetalertError(
                f"trap receiver: {exc}; fix the file, or delete it to make a new engine ID "
                "(SNMPv3 senders then discover it again)"
            ) from None
        self.status.attach(traps=self.receiver.stats, kernel_drops=self.receiver.kernel_drops)

    def _start_poller(self) -> None:
        config = self.config
        self.poller = Poller(
            build_plans(config, self.prepared.tree),
            self.prepared.tree,
            on_result=self._on_poll,
            on_reachability=self._on_reachability,
            engines=self.engines,
            max_in_flight=config.snmp.max_in_flight,
        )
        self.poller.start()
        self.status.attach(poller=self.poller.stats)

    async def _start_intake(self) -> None:
        await self._start_receiver()
        self._start_poller()

    async def _stop_receiver(self) -> None:
        if self.receiver is not None:
            await self.receiver.stop()
            self.receiver = None

    async def _stop_poller(self) -> None:
        if self.poller is not None:
            await self.poller.stop()
            self.poller = None

    async def _stop_intake(self) -> None:
        await self._stop_receiver()
        await self._stop_poller()

    async def _start_web(self) -> None:
        http = self.config.agent.http
        if http is None:
            return
        try:
            server = await self.status.serve(
                http.host, http.port or 9162, HttpLimits.from_config(self.config.agent)
            )
        except OSError as exc:
            raise NetalertError(
                f"[agent].http {http}: cannot listen ({exc.strerror}); "
                'pick another address or set http = "" to disable the status page'
            ) from None
        log.info(event("web", url=server.url))

    def _spawn(self, factory: Callable[[], Any], name: str, *, restart: bool = True) -> None:
        """Runs ``factory()`` as a supervised task (restarted after a failure if ``restart``)."""
        task = self.supervisor.spawn(name, factory, restart=restart)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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

    def _on_trap(self, trap: TrapEvent) -> None:
        assert self.engine is not None
        self.counters["traps"] += 1
        try:
            self.status.live.history.record_trap(trap)
            self._after(self.engine.on_trap(trap, trap.received))
        except Exception as exc:
            self.supervisor.failed("traps", exc, then="next trap")

    def _on_poll(self, result: PollResult) -> None:
        assert self.engine is not None
        self.counters["polls"] += 1
        try:
            self.status.record_poll(result)
            if not result.ok:
                return
            self._after(self.engine.on_poll(from_poller(result), result.time or time.time()))
        except Exception as exc:
            self.supervisor.failed("poller", exc, then="next poll")

    def _on_reachability(self, change: Reachability) -> None:
        assert self.engine is not None
        try:
            self.status.live.board.record_reachability(change)
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
        self.store.flush()
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
        self.status.live.record_counts(now)
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
        assert self.engine is not None and self.db is not None and self.store is not None
        while not self._stop.is_set():
            now = time.time()
            try:
                self._retry_state()
                self._after(self.engine.tick(now))
                for request in self.engine.confirm_requests(now):
                    self._spawn(partial(self._confirm, request), "confirm", restart=False)
                self._flush_notifications(now)
                self.heap.tick()
            except StateCorruptError:
                raise
            except NetalertError as exc:  # counted and said once a minute, not every tick
                self.supervisor.failed("ticker", exc, then="next tick")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=TICK)
            self._wakeup.clear()

    def _retry_state(self) -> None:
        """Writes what the state writer holds, when it can; then what the store re-marked."""
        assert self.db is not None and self.store is not None
        writer = self.db.writer
        if not writer.holding:
            self.store.flush()  # records a shed write left changed
            return
        if writer.retry():
            self.store.flush()
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
        self._after(self.engine.on_confirm(request, from_poller(result), time.time()))

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
        """Reloads the config file; returns False (old config kept) when the new one is bad."""
        if self.config_path is None:
            return False
        self._notifier.reloading()
        try:
            loop = asyncio.get_running_loop()
            new = await loop.run_in_executor(None, _load_prepared, self.config_path)
        except ConfigError as exc:
            for line in exc.problems:
                log.error(event("reload_rejected", problem=line))
            log.error(event("reload_failed", config=self.config_path, kept="old config"))
            self._notifier.ready(self._status_line())
            return False
        except (NetalertError, OSError) as exc:
            log.error(event("reload_failed", config=self.config_path, kept="old config", error=exc))
            self._notifier.ready(self._status_line())
            return False
        assert self.engine is not None
        old = self.prepared
        self.prepared = new
        # Restart only the intake whose settings changed: a trap socket closed
        # for a reload would drop the traps sent meanwhile.
        receiver_changed = _receiver_settings(old.config) != _receiver_settings(new.config)
        poller_changed = _poller_settings(old.config) != _poller_settings(new.config)
        if receiver_changed:
            await self._stop_receiver()
        if poller_changed:
            await self._stop_poller()
        self.engine.reload(new.config, new.tree, rules=new.rules)
        await self._mailed()  # the old dispatcher's last batch is in the notification log
        ack_changed = (new.config.ack, new.config.smtp) != (old.config.ack, old.config.smtp)
        if ack_changed:  # [ack] (issue 17)
            await self._stop_ack()
        if new.config.smtp != old.config.smtp and self.mail is not None and self.db is not None:
            await self.mail.sender.stop()
            self.mail = build_mail_stage(
                new.config, self.db, base_dir=self._base_dir(), outbox=self.mail.outbox
            )
            self._spawn(self.mail.sender.run, "mail-sender")
            self.status.attach(outbox=self.mail.outbox, mail=self.mail.stats)
        if ack_changed:
            try:
                self._start_ack()
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
        if receiver_changed:
            await self._start_receiver()
        if poller_changed:
            self._start_poller()
        if _web_settings(new.config) != _web_settings(old.config):
            await self.status.stop()
            await self._start_web()
        freeze_heap()
        self.heap.interval = new.config.agent.gc_freeze_interval.total_seconds()
        self.counters["reloads"] += 1
        _log_warnings(new.config)
        log.info(event("reloaded", config=self.config_path, rules=len(new.config.rules)))
        self._notifier.ready(self._status_line())
        return True

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
        """Stops intake, flushes notifications, gives the outbox ``grace`` seconds, persists.

        ``grace`` defaults to ``[agent].drain_timeout``; mail still waiting then
        stays in the outbox for the next start. Writes the state writer still
        holds get the same grace; what is left is counted in :attr:`unsaved`
        (``run_agent`` then fails). Never raises: each step that fails is logged
        and the next one runs.
        """
        if grace is None:
            grace = self.config.agent.drain_timeout.total_seconds()
        self._notifier.stopping()
        self._stop.set()
        self._wakeup.set()
        await self._step("intake", self._stop_intake())
        await self._step("ack", self._stop_ack())
        deadline = time.monotonic() + grace
        if self.store is not None and self.dispatcher is not None and self.mail is not None:
            await self._step("notifications", self._final_notifications())
            await self._step("outbox", self._wait_outbox(deadline))
            await self._step("mail-sender", self.mail.sender.stop())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.heap.uninstall()
        await self._step("web", self.status.stop())
        await self._step("state", self._final_state(deadline))
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
        try:
            await step
        except Exception as exc:  # one failing step must not keep the others from running
            log.error(event("drain_step_failed", step=name, error=f"{type(exc).__name__}: {exc}"))

    async def _final_notifications(self) -> None:
        assert self.store is not None and self.mail is not None
        self.store.flush()
        await self._mailed()
        self._flush_notifications(time.time(), force=True)
        await self._mailed()
        self.mail.sender.wake()

    async def _wait_outbox(self, deadline: float) -> None:
        assert self.mail is not None and self.db is not None
        # The outbox is a table the sender empties: poll it, briefly and bounded.
        while time.monotonic() < deadline:
            self._retry_state()
            if not self.mail.outbox.pending() and not self.db.writer.holding:
                return
            await asyncio.sleep(0.05)

    async def _final_state(self, deadline: float) -> None:
        if self.db is None or self.store is None:
            return
        writer = self.db.writer
        while writer.holding and time.monotonic() < deadline:
            self._retry_state()
            await asyncio.sleep(0.05)
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
        else:
            self.store.flush()


def _release(
    nflog: NotificationLog, token: int, route: str, group_key: str, _committed: bool
) -> None:
    # committed or shed, the table answers for the group again
    nflog.release(token, route, group_key)


def _log_warnings(config: Config) -> None:
    """Logs each warning of ``config`` (the lines ``check-config`` prints), once per load."""
    for warning in config_warnings(config):
        log.warning(event("config_warning", path=warning.path, problem=warning.message))


def freeze_heap() -> None:
    """Moves everything alive now (the MIB tree above all) out of the collector's sight.

    A full collection walks every tracked object; with hundreds of thousands
    of long-lived MIB objects it blocked the loop for 30-200 ms every few
    seconds, which set the trap-to-mail p99. Called after start and after each
    reload (unfreezing first, so a replaced tree can still be freed).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _receiver_settings(config: Config) -> tuple[object, ...]:
    return (config.traps, config.devices)


def _poller_settings(config: Config) -> tuple[object, ...]:
    return (config.snmp, config.credentials, config.devices, config.collect, config.mibs)


def _web_settings(config: Config) -> tuple[object, ...]:
    return (config.agent.http, HttpLimits.from_config(config.agent))


def _load_prepared(path: Path) -> Prepared:
    return prepare(load_config(path))


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
