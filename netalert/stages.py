"""The agent's stages with sockets or tasks of their own, behind :mod:`netalert.lifecycle`.

Each is built from a :class:`~netalert.prepare.Prepared` config; a reload
builds a new one next to the running one (``previous``) and swaps them. A trap
receiver or web server whose address did not change shares the running
stage's bound socket (a second descriptor of it), so the address never goes
unbound; a new address is bound before the old one is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netalert.errors import NetalertError
from netalert.lifecycle import BaseStage, Spawn
from netalert.logs import event
from netalert.mail.wiring import MailStage, build_mail_stage
from netalert.poll.poller import Poller, PollResult, Reachability
from netalert.prepare import Prepared
from netalert.snmp.types import TrapEvent
from netalert.snmp.wire.engines import EngineIdRegistry
from netalert.snmp.wire.timeliness import EngineClocks
from netalert.web.limits import HttpLimits

if TYPE_CHECKING:
    from netalert.config.models import Config
    from netalert.mail.queue import MailQueue
    from netalert.rules.trapflow import Matches
    from netalert.state import Database
    from netalert.traps.receiver import TrapReceiver
    from netalert.traps.workers import TrapWorkers
    from netalert.web.app import WebServer
    from netalert.web.wiring import AgentStatus

__all__ = [
    "MailRunner",
    "PollerStage",
    "ReceiverStage",
    "WebStage",
    "poller_settings",
    "receiver_settings",
    "web_settings",
]

log = logging.getLogger("netalert.service")


def receiver_settings(config: Config) -> tuple[object, ...]:
    """What the trap receiver is built from: a reload rebuilds it when this changes (other
    ``[mibs]``: traps are named with the new MIB tree, in the trap workers too)."""
    return (config.traps, config.devices, config.mibs)


def poller_settings(config: Config) -> tuple[object, ...]:
    """What the poller is built from."""
    return (config.snmp, config.credentials, config.devices, config.collect, config.mibs)


def web_settings(config: Config) -> tuple[object, ...]:
    """What the web server is built from."""
    return (config.agent.http, HttpLimits.from_config(config.agent))


class ReceiverStage(BaseStage):
    """The trap receiver (``[traps]``); nothing when traps are off."""

    name = "traps"

    def __init__(
        self,
        prepared: Prepared,
        *,
        sink: Callable[[TrapEvent], None],
        engines: EngineIdRegistry,
        previous: ReceiverStage | None = None,
        clocks: EngineClocks | None = None,
        matched: Callable[[TrapEvent, tuple[str, Matches]], None] | None = None,
    ) -> None:
        self._prepared = prepared
        self._sink = sink
        self._matched = matched  # trap workers match the rules: see TrapWorkers.set_rules
        self._engines = engines
        self._clocks = clocks  # [cluster]: the SNMPv3 senders' clocks the nodes share
        self._previous = previous
        self.receiver: TrapReceiver | TrapWorkers | None = None
        self._stopped = False

    async def open(self) -> None:
        """Binds every listen address (sharing the running receiver's sockets of the same ones).

        Raises:
            NetalertError: An address cannot be bound, the engine_id file is malformed,
                or the number of trap workers changed.
        """
        config = self._prepared.config
        if not config.traps.enabled:
            return
        from netalert.traps.workers import TrapWorkers, worker_count

        old = self._previous.receiver if self._previous is not None else None
        count = worker_count(config.traps)
        running = old.count if isinstance(old, TrapWorkers) else 1 if old is not None else None
        if old is not None and running != count and _same_listen(old, config):
            raise NetalertError(
                f"traps.workers: {count} trap workers where {running} run; the number "
                f"changes at a restart (or set workers = {running} again)"
            )
        try:
            if count > 1:
                self.receiver = await self._open_workers(config, count, old)
            else:
                self.receiver = await self._open_receiver(config, old)
        except ValueError as exc:  # a malformed engine_id file in state_dir
            raise NetalertError(
                f"trap receiver: {exc}; fix the file, or delete it to make a new engine ID "
                "(SNMPv3 senders then discover it again)"
            ) from None
        self._previous = None  # not kept alive past the swap

    async def _open_receiver(
        self, config: Config, old: TrapReceiver | TrapWorkers | None
    ) -> TrapReceiver:
        from netalert.traps.receiver import TrapReceiver

        receiver = TrapReceiver(
            config.traps,
            sink=self._sink,
            tree=self._prepared.tree,
            devices=config.devices,
            engines=self._engines,
            state_dir=Path(config.agent.state_dir),
            message_ids=config.cluster is not None,  # the stream stores a trap once
            clocks=self._clocks,
        )
        inherit = old.sockets if isinstance(old, TrapReceiver) else None
        await receiver.open(
            inherit=inherit,
            # the running receiver writes the recording until the swap
            record_later=old is not None and old.recorder is not None,
        )
        return receiver

    async def _open_workers(
        self, config: Config, count: int, old: TrapReceiver | TrapWorkers | None
    ) -> TrapWorkers:
        from netalert.traps.workers import TrapWorkers

        workers = TrapWorkers(
            config,
            sink=self._sink,
            tree=self._prepared.tree,
            engines=self._engines,
            count=count,
            message_ids=config.cluster is not None,
            clocks=self._clocks,
            matched=self._matched,
        )
        previous = old if isinstance(old, TrapWorkers) else None
        # the running engine ID and time, unless the reload sets another engine_id
        same_engine = previous is not None and previous.config.engine_id == config.traps.engine_id
        await workers.open(
            inherit=previous.sockets if previous is not None else None,
            record_later=old is not None and old.recorder is not None,
            engine=previous.engine if previous is not None and same_engine else None,
        )
        return workers

    async def start(self) -> None:
        """Starts reading the sockets."""
        if self.receiver is not None:
            self.receiver.begin()

    async def drain(self, deadline: float) -> None:
        """Stops receiving (intake ends first)."""
        await self.stop()

    async def stop(self) -> None:
        """Closes this receiver's sockets (a shared socket stays bound for the other)."""
        if self.receiver is not None and not self._stopped:
            self._stopped = True
            await self.receiver.stop()


def _same_listen(old: TrapReceiver | TrapWorkers, config: Config) -> bool:
    """True when ``config`` listens on an address ``old`` listens on (its sockets are shared)."""
    wanted = {str(address.with_default(162)) for address in config.traps.listen}
    return bool(wanted & set(old.sockets))


class PollerStage(BaseStage):
    """The poller: one schedule per device, from the prepared poll plans."""

    name = "poller"

    def __init__(
        self,
        prepared: Prepared,
        *,
        on_result: Callable[[PollResult], None],
        on_reachability: Callable[[Reachability], None],
        engines: EngineIdRegistry,
        active: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self._prepared = prepared
        self._on_result = on_result
        self._on_reachability = on_reachability
        self._engines = engines
        self._active = active  # [cluster]: the devices of this node's shards
        self.poller: Poller | None = None
        self._started = False

    async def open(self) -> None:
        """Builds the poller (no socket is opened before the first poll)."""
        self.poller = Poller(
            self._prepared.plans,
            self._prepared.tree,
            on_result=self._on_result,
            on_reachability=self._on_reachability,
            engines=self._engines,
            max_in_flight=self._prepared.config.snmp.max_in_flight,
            max_sessions=self._prepared.config.snmp.max_sessions,
        )

    async def start(self) -> None:
        """Schedules every device (with ``active``, those it names)."""
        assert self.poller is not None
        if self._active is not None:
            self.poller.set_active(self._active())
        self.poller.start()
        self._started = True

    async def drain(self, deadline: float) -> None:
        """Stops scheduling, waits briefly for polls under way, closes the clients."""
        await self.stop()

    async def stop(self) -> None:
        """The same as :meth:`drain` (nothing when never started)."""
        if self.poller is not None and self._started:
            self._started = False
            await self.poller.stop()


@dataclass(frozen=True, slots=True)
class _MailDeps:
    db: Callable[[], Database]  # opened by the state stage, before this one
    spawn: Spawn
    settled: Callable[[], bool]  # True when the outbox is empty and no state write is held


class MailRunner(BaseStage):
    """The outbox, the sender task and the canary, built by :func:`build_mail_stage`."""

    name = "mail"

    def __init__(
        self,
        prepared: Prepared,
        *,
        db: Callable[[], Database],
        spawn: Spawn,
        settled: Callable[[], bool],
        outbox: MailQueue | None = None,
    ) -> None:
        self._prepared = prepared
        self._deps = _MailDeps(db, spawn, settled)
        self._outbox = outbox
        self.mail: MailStage | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    async def open(self) -> None:
        """Builds the mail stage from the prepared templates and TLS contexts.

        Raises:
            StateError: The outbox tables cannot be created.
        """
        prepared = self._prepared
        self.mail = build_mail_stage(
            prepared.config,
            self._deps.db(),
            outbox=self._outbox,
            templates=prepared.templates,
            tls=None if prepared.tls is None else (prepared.tls.primary, prepared.tls.fallback),
        )

    async def start(self) -> None:
        """Starts the sender, and the canary when configured."""
        assert self.mail is not None
        self._tasks.append(self._deps.spawn(self.mail.sender.run, "mail-sender", True))
        if self.mail.canary is not None:
            self._tasks.append(self._deps.spawn(self.mail.canary.run, "mail-canary", True))

    async def drain(self, deadline: float) -> None:
        """Gives the sender until ``deadline`` to empty the outbox, then stops it.

        Mail still waiting then stays in the outbox for the next start.
        """
        if self.mail is None:
            return
        # The outbox is a table the sender empties: poll it, briefly and bounded.
        while time.monotonic() < deadline:
            if self._deps.settled():
                break
            await asyncio.sleep(0.05)
        await self.mail.sender.stop()

    async def stop(self) -> None:
        """Stops the sender and the canary."""
        if self.mail is not None:
            await self.mail.sender.stop()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class WebStage(BaseStage):
    """The status page, ``/metrics``, ``/healthz`` and the JSON API; nothing when ``http = ""``."""

    name = "web"

    def __init__(
        self, prepared: Prepared, status: AgentStatus, *, previous: WebStage | None = None
    ) -> None:
        self._config = prepared.config
        self._status = status
        self._previous = previous
        self.server: WebServer | None = None

    async def open(self) -> None:
        """Listens (on the running server's socket when the address is the same), and serves.

        Raises:
            NetalertError: The address cannot be bound.
        """
        http = self._config.agent.http
        if http is None:
            return
        old = self._previous
        sock = None
        if old is not None and old.server is not None and old._config.agent.http == http:
            sock = old.server.share()
        limits = HttpLimits.from_config(self._config.agent)
        try:
            self.server = await self._status.serve(http.host, http.port or 9162, limits, sock=sock)
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise NetalertError(
                f"[agent].http {http}: cannot listen ({exc.strerror}); "
                'pick another address or set http = "" to disable the status page'
            ) from None
        self._previous = None
        log.info(event("web", url=self.server.url))

    async def stop(self) -> None:
        """Closes the listening socket (a shared one stays with the other) and the connections."""
        server, self.server = self.server, None
        if server is not None:
            await self._status.stop(server)
