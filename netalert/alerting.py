"""The rules and the alert stage wired together: polls, traps and time in, transitions out.

The service, the rule tests and replay drive this (every method takes ``now``
and never reads a clock)::

    alerting = Alerting(config, tree, SqliteAlertStore(db))
    for alert in alerting.table.active():      # at start: feed notify what was firing
        dispatcher.update(alert, now)
    alerting.on_poll(result, now)              # per answered poll (snmp.rows.PollResult)
    alerting.device_unreachable(device, now, "timeout", failures=2)  # poller's reachability
    alerting.device_reachable(device, now)
    alerting.on_trap(event, now)               # per accepted trap (snmp.types.TrapEvent)
    alerting.tick(now)                         # every second or so: for, resolve_after, clean-up
    for request in alerting.confirm_requests(now):        # trap rules with confirm
        alerting.on_confirm(request, poller.get(request), now)

Each call is the same three steps: the rules turn the input into observations
(:class:`~netalert.rules.engine.RuleEngine`), the alert stage moves the alerts
(:class:`~netalert.alerts.stage.AlertStage`) and hands what changed to its
store. It returns the :class:`~netalert.alerts.model.Transition` values for
notify. In the agent the store's writes of one event-loop turn are committed
together (see :mod:`netalert.state.writer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from netalert.alerts.limits import AlertLimits
from netalert.alerts.model import Alert, Transition
from netalert.alerts.observe import Observation
from netalert.alerts.stage import AlertStage
from netalert.alerts.store import AlertStore, MemoryAlertStore
from netalert.alerts.table import AlertRecord, AlertTable
from netalert.config.models import Config
from netalert.poll.rows import PollResult
from netalert.rules.compile import RuleSet
from netalert.rules.engine import RuleEngine
from netalert.rules.inputs import ConfirmRequest
from netalert.rules.mibview import MibTreeLike
from netalert.rules.trapflow import Matches
from netalert.snmp.types import TrapEvent

__all__ = ["Alerting"]


class Alerting:
    """A :class:`RuleEngine` feeding an :class:`AlertStage`.

    Args:
        config: The config in force.
        tree: The MIB tree.
        store: Where alerts persist (None: nowhere, :class:`MemoryAlertStore`).
        rules: The rules compiled already (``prepare``), else compiled here.
    """

    def __init__(
        self,
        config: Config,
        tree: MibTreeLike,
        store: AlertStore | None = None,
        *,
        rules: RuleSet | None = None,
    ) -> None:
        self.engine = RuleEngine(config, tree, rules=rules)
        self.stage = AlertStage(
            store if store is not None else MemoryAlertStore(), self.engine.policy, config.limits
        )

    def reload(self, config: Config, tree: MibTreeLike, *, rules: RuleSet | None = None) -> None:
        """Switches to a new config; alerts of removed or changed rules resolve at the next tick.

        Raises:
            ConfigError: The rules do not compile (the old ones stay in force).
        """
        self.engine.reload(config, tree, rules=rules)
        self.stage.configure(self.engine.policy, config.limits)

    @property
    def table(self) -> AlertTable:
        """The alerts kept (active and recently resolved)."""
        return self.stage.table

    @property
    def limits(self) -> AlertLimits:
        """The caps and their counters."""
        return self.stage.limits

    @property
    def pruned(self) -> int:
        """Resolved alerts dropped by the clean-up since the start."""
        return self.stage.pruned

    @property
    def rule_names(self) -> frozenset[str]:
        """The names of the rules in force, ``DeviceUnreachable`` included."""
        return self.engine.rule_names

    def _apply(self, observations: list[Observation], now: float) -> list[Transition]:
        out = self.stage.apply(observations, now)
        self.stage.commit()
        return out

    def on_poll(self, result: PollResult, now: float) -> list[Transition]:
        """One device's poll result."""
        return self._apply(self.engine.on_poll(result, self.stage, now), now)

    def on_trap(
        self, event: TrapEvent, now: float, matched: tuple[str, Matches] | None = None
    ) -> list[Transition]:
        """One accepted trap (``matched``: the rules a trap worker matched it against,
        see :meth:`RuleEngine.on_trap`)."""
        return self._apply(self.engine.on_trap(event, matched), now)

    def device_unreachable(
        self, device: str, now: float, reason: str, *, failures: int
    ) -> list[Transition]:
        """A poll of ``device`` got no answer, the ``failures``-th in a row."""
        observed = self.engine.device_unreachable(device, self.stage, reason, failures=failures)
        return self._apply(observed, now)

    def device_reachable(self, device: str, now: float) -> list[Transition]:
        """The poller got an answer from ``device`` again."""
        return self._apply(self.engine.device_reachable(device, self.stage), now)

    def tick(self, now: float) -> list[Transition]:
        """Time-based changes (``for``, ``resolve_after``, retired rules, clean-up)."""
        out = self.stage.tick(now)
        self.stage.commit()
        return out

    def confirm_requests(self, now: float) -> list[ConfirmRequest]:
        """The confirm polls due now: at once after the trap, then every ``confirm_every``."""
        out = self.engine.confirm_requests(self.stage.confirms_due(now), now)
        self.stage.commit()
        return out

    def on_confirm(
        self, request: ConfirmRequest, result: PollResult, now: float
    ) -> list[Transition]:
        """The answer to a confirm poll: resolves the trap alert if it shows all is well."""
        watch = self.stage.watch(request.fingerprint)
        observed = self.engine.on_confirm(watch, result) if watch is not None else []
        return self._apply(observed, now)

    def resolvable_by_hand(self, fingerprint: str) -> bool:
        """True for an active trap alert whose rule has no clear trap (nothing else ends it)."""
        record = self.stage.table.get(fingerprint)
        return record is not None and record.active and self.engine.by_hand(record.alert.rule)

    def resolve_by_hand(self, fingerprint: str, now: float, *, by: str) -> list[Transition]:
        """Resolves such an alert ([ack], a reply to its mail), as a clear trap would;
        [] when it is not one."""
        record = self.stage.table.get(fingerprint)
        if record is None or not self.resolvable_by_hand(fingerprint):
            return []
        alert = record.alert
        return self._apply(
            [self.engine.resolved_by_hand(fingerprint, alert.device, alert.rule, by)], now
        )

    def adopt(self, records: Iterable[AlertRecord]) -> list[Alert]:
        """Takes stored records of devices this agent now answers for (a cluster node
        taking a shard over); returns their alerts."""
        return self.stage.adopt(records)

    def forget(self, keep: Callable[[Alert], bool]) -> list[Alert]:
        """Drops from memory the alerts ``keep`` refuses (a cluster node lost their
        shard: unsaved, undeleted, unmailed); returns them."""
        doomed = [r.alert.fingerprint for r in self.table.records() if not keep(r.alert)]
        return self.stage.forget(doomed)

    def commit(self) -> None:
        """Hands the alerts changed and not yet saved to the store (after a shed write)."""
        self.stage.commit()
