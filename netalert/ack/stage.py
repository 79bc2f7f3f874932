"""The ack stage as the agent wires it: key, store, token issuer, handler, reader.

``service.py`` builds one :class:`AckStage` when ``[ack]`` is configured, points
the mailer at :attr:`AckStage.issuer`, hands the dispatcher :meth:`all_acked`,
the status page :meth:`ack_line`, and runs :meth:`AckStage.run` as a supervised
task. Everything else the stage needs from the agent comes in as callables.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from netalert.ack.config import AckConfig
from netalert.ack.handler import ReplyHandler
from netalert.ack.issuer import TokenIssuer
from netalert.ack.reader import ImapReader
from netalert.ack.stats import AckStats
from netalert.ack.store import Ack, AckStore, AckTables, ack_text, is_acked
from netalert.ack.token import load_secret
from netalert.alerts.model import Alert, AlertState, Transition
from netalert.logs import event
from netalert.mail.queue import MailQueue
from netalert.notify.silences import Silences, SilenceStore
from netalert.state.db import Database

__all__ = ["AckStage", "AgentHooks", "SharedAck", "secret_path"]

log = logging.getLogger("netalert.ack")

PRUNE_EVERY = 300.0  # seconds between clean-ups of expired tokens and ended acks
ACKS_TTL = 1.0  # seconds a read of the acks table is reused


def secret_path(config: AckConfig, state_dir: Path) -> Path:
    """``[ack].secret_file``, or ``ack.key`` in the state directory."""
    return config.secret_file if config.secret_file is not None else Path(state_dir) / "ack.key"


@dataclass(frozen=True, slots=True)
class AgentHooks:
    """What the stage asks of the agent."""

    alert: Callable[[str], Awaitable[Alert | None]]
    alerts: Callable[[], Sequence[Alert]]
    resolvable: Callable[[str], bool]
    resolve: Callable[[str, float, str], list[Transition]]
    after: Callable[[list[Transition]], None]
    changed: Callable[[], None]


@dataclass(frozen=True, slots=True)
class SharedAck:
    """What a cluster node's ack stage shares with the other nodes (``netalert.cluster.ack``)."""

    tables: AckTables
    silences: Silences
    key: bytes
    leader: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]]


class _Target:
    def __init__(self, hooks: AgentHooks, on_change: Callable[[], None]) -> None:
        self._hooks = hooks
        self._on_change = on_change

    async def alert(self, fingerprint: str) -> Alert | None:
        return await self._hooks.alert(fingerprint)

    def resolvable(self, fingerprint: str) -> bool:
        return self._hooks.resolvable(fingerprint)

    def resolve(self, fingerprint: str, now: float, by: str) -> bool:
        transitions = self._hooks.resolve(fingerprint, now, by)
        self._hooks.after(transitions)
        return bool(transitions)

    def changed(self) -> None:
        self._on_change()
        self._hooks.changed()


class AckStage:
    """One ``[ack]`` config at work."""

    def __init__(
        self,
        config: AckConfig,
        db: Database,
        *,
        state_dir: Path,
        outbox: MailQueue | None,
        mail_from: str,
        hooks: AgentHooks,
        shared: SharedAck | None = None,
    ) -> None:
        """Reads (or makes) the key and opens the tables.

        Args:
            shared: On a cluster node: the tables, silences and key every node shares,
                and the lock under which only one node reads the mailbox.

        Raises:
            NetalertError: The key file cannot be read or made.
            StateError: The migration failed.
        """
        self.config = config
        self.stats = AckStats()
        self.shared = shared
        self.store: AckTables = AckStore(db) if shared is None else shared.tables
        self.hooks = hooks
        key = load_secret(secret_path(config, state_dir)) if shared is None else shared.key
        self.issuer = TokenIssuer(config, key, stats=self.stats, store=self.store)
        self.handler = ReplyHandler(
            config,
            key=key,
            store=self.store,
            silences=SilenceStore(db) if shared is None else shared.silences,
            target=_Target(hooks, self.changed),
            outbox=outbox,
            mail_from=mail_from,
            stats=self.stats,
        )
        self.reader = ImapReader(
            config, store=self.store, handle=self.handler.handle, stats=self.stats
        )
        self._acks: dict[str, Ack] = {}
        self._acks_read = -ACKS_TTL

    async def run(self) -> None:
        """The reader, and the clean-up every few minutes."""
        cleanup = asyncio.ensure_future(self._cleanup())
        try:
            if self.shared is None:
                await self.reader.run()
            else:  # [cluster]: only the node holding the lock reads the mailbox
                await self.shared.leader(self.reader.run)
        finally:
            cleanup.cancel()

    async def _cleanup(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY)
            firing = {
                a.fingerprint: a.starts_at
                for a in self.hooks.alerts()
                if a.state is AlertState.FIRING
            }
            try:
                self.stats.pruned += await self.store.prune(time.time(), firing)
            except Exception as exc:  # a busy or full disk: the next round tries again
                log.warning(event("ack_prune_failed", error=exc))

    def _current(self) -> dict[str, Ack]:
        # The table is read at most once per ACKS_TTL: a status page of thousands of
        # alerts costs one query; `netalert ack` from a shell shows within it.
        now = time.monotonic()
        if now - self._acks_read >= ACKS_TTL:
            self._acks = self.store.acks()
            self._acks_read = now
        return self._acks

    def changed(self) -> None:
        """Acks changed in this process: the next read sees them."""
        self._acks_read = -ACKS_TTL

    def all_acked(self, alerts: Sequence[Alert]) -> bool:
        """For the dispatcher: True when every one of ``alerts`` is acknowledged now."""
        if not alerts:
            return False
        acks = self._current()
        return all(is_acked(a, acks) for a in alerts)

    def ack_line(self, alert: Alert) -> str:
        """For the status page and the JSON API: who acked ``alert`` ("" if nobody)."""
        acks = self._current()
        return ack_text(acks[alert.fingerprint]) if is_acked(alert, acks) else ""
