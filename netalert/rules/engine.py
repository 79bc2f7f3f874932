"""The rule engine: poll results and traps in, alert transitions out.

The service wires it like this (every method takes ``now`` and never reads a clock)::

    engine = RuleEngine(config, tree, AlertStore(db))
    for alert in engine.store.active():      # at start: feed notify what was firing
        dispatcher.update(alert, now)
    engine.on_poll(result, now)              # per device poll (rules.inputs.PollResult)
    engine.device_unreachable(device, now, "timeout", failures=2)  # poller's reachability
    engine.device_reachable(device, now)
    engine.on_trap(event, now)               # per accepted trap (snmp.types.TrapEvent)
    engine.tick(now)                         # every second or so: for, resolve_after, clean-up
    for request in engine.confirm_requests(now):        # trap rules with confirm
        engine.on_confirm(request, poller.get(request), now)

Each call returns the :class:`~netalert.alerts.model.Transition` values to hand
to notify, and has written the alert store (one transaction) before returning.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from netalert.alerts.caps import SUMMARY_SOURCE
from netalert.alerts.flap import FlapSettings
from netalert.alerts.lifecycle import INACTIVE, poll_step, trap_clear, trap_tick
from netalert.alerts.model import AlertState, Transition
from netalert.alerts.store import RESOLVED_KEPT, AlertRecord, AlertStore, group_of, make_key
from netalert.config.models import Config
from netalert.rules.apply import Target, advance, alert_labels, signature
from netalert.rules.compile import UNREACHABLE, PollRule, RuleSet, compile_rules
from netalert.rules.evaluate import applies, computed, shown, truth
from netalert.rules.expr import NUMERIC_OID
from netalert.rules.history import DeviceHistory, RowHistory, rebooted
from netalert.rules.inputs import PollResult, Row
from netalert.rules.limits import AlertLimits
from netalert.rules.mibview import MIB_ERRORS, MibTreeLike
from netalert.rules.reachability import DeviceReachability
from netalert.rules.trapflow import TrapFlow
from netalert.rules.values import plain_value, render_value

__all__ = ["IDLE_SAMPLE", "RuleEngine"]

# A quiet trap alert still needs flap-detection results to settle: one per minute.
IDLE_SAMPLE = 60.0
_EMPTY: Mapping[str, str] = MappingProxyType({})


def _merged(
    scalars: Mapping[str, Any] | None, row: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    if row is None or scalars is None:
        return row if scalars is None else scalars
    return {**scalars, **row}


class RuleEngine(TrapFlow, DeviceReachability):
    """Evaluates the compiled rules and keeps the alerts in ``store``."""

    def __init__(
        self,
        config: Config,
        tree: MibTreeLike,
        store: AlertStore,
        *,
        rules: RuleSet | None = None,
    ) -> None:
        self.store = store
        self.limits = AlertLimits(store, config.limits)
        # Resolved alerts dropped by the clean-up since the start (netalert_pruned_rows_total).
        self.pruned = 0
        self._history: dict[str, DeviceHistory] = {}
        self.reload(config, tree, rules=rules)

    def reload(self, config: Config, tree: MibTreeLike, *, rules: RuleSet | None = None) -> None:
        """Switches to a new config; alerts of removed or changed rules resolve at the next tick.

        Raises:
            ConfigError: The rules do not compile (the old ones stay in force).
        """
        self.rules = rules if rules is not None else compile_rules(config, tree)
        self.limits.configure(config.limits)
        self._kept = min(RESOLVED_KEPT, config.limits.retention.total_seconds())
        self._batch = config.limits.prune_batch
        self._devices = frozenset(d.name for d in config.devices)
        self._poll = {r.name: r for r in self.rules.poll}
        self._trap = {r.name: r for r in self.rules.trap}
        self._signatures = {
            r.name: signature("poll", r.severity, r.labels) for r in self.rules.poll
        }
        self._signatures |= {
            r.name: signature("trap", r.severity, r.labels) for r in self.rules.trap
        }
        self._signatures[UNREACHABLE] = signature("builtin", self.rules.unreachable_severity, {})
        names: set[str] = set()
        for rule in self.rules.poll:
            for expr in (rule.expr, rule.clear, rule.value):
                names |= expr.history if expr is not None else frozenset()
        self._history_names = frozenset(names)
        # value('1.3.6...') in poll rules: the instances to take from PollResult.by_oid
        oids: set[str] = set()
        for rule in self.rules.poll:
            used = rule.expr.names | (rule.clear.names if rule.clear else frozenset())
            oids.update(n for n in used if NUMERIC_OID.fullmatch(n))
        self._value_oids = frozenset(oids)
        self._bits = {n: self.rules.cache.bits(n) for n in names}
        self._confirming = {
            r.alert.fingerprint for r in self.store.records() if r.confirm_next is not None
        }

    @property
    def rule_names(self) -> frozenset[str]:
        """The names of the rules in force, ``DeviceUnreachable`` included."""
        return frozenset(self._signatures)

    # --- polls ------------------------------------------------------------------------

    def on_poll(self, result: PollResult, now: float) -> list[Transition]:
        """Evaluates the poll rules on one device's poll result.

        A result means the device answered: a firing DeviceUnreachable resolves.
        Rows an alert was raised for and that are no longer reported count as recovered.
        """
        device = result.device
        out = self._reachable(device, now)
        labels = self.rules.device_labels.get(device, _EMPTY)
        last = self._history.get(device)
        uptime = result.scalars.values.get("sysUpTime")
        uptime = uptime if isinstance(uptime, int) else None
        reboot = last is not None and rebooted(last.uptime, uptime, result.time - last.time)
        previous = last if last is not None else DeviceHistory()
        scalars = self._convert(result.scalars)
        base: dict[str, Any] = {**labels, **scalars, "device": device}
        for oid in self._value_oids.intersection(result.by_oid):
            base[oid] = plain_value(result.by_oid[oid])
        envs: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        for rule in self.rules.poll:
            if not applies(rule, device, labels):
                continue
            if rule.columns:
                rows = [r for r in result.rows if not rule.columns.isdisjoint(r.values)]
            else:
                rows = [result.scalars]
            seen: set[str] = set()
            for row in rows:
                key = make_key("poll", rule.name, device, row.index)
                seen.add(key)
                cached = envs.get(id(row))
                if cached is None:
                    env = base if row is result.scalars else {**base, **self._convert(row)}
                    raw = {**result.scalars.values, **row.values}
                    cached = envs[id(row)] = (env, raw)
                env, raw = cached
                if rule.index_names:
                    env = {**self._decoded(rule, row), **env}
                ctx = RowHistory(
                    row.index,
                    raw,
                    result.scalars.values,
                    previous,
                    result.time,
                    reboot,
                    self._bits,
                    self.rules.cache.converters,
                    _merged(result.scalars.rates, row.rates),
                    _merged(result.scalars.deltas, row.deltas),
                )
                fire = truth(rule.expr, env, ctx)
                found = self.store.by_key(key)
                record = found[0] if found else None
                if record is None and fire is not True:
                    continue
                change = self._poll_change(
                    rule, record, key, device, labels, row, env, ctx, fire, now
                )
                if change is not None:
                    out.append(change)
            if not result.complete:
                continue  # a failed walk is not a row gone
            for record in self.store.by_group(group_of(make_key("poll", rule.name, device, ""))):
                if record.key not in seen and record.active:
                    phase = poll_step(
                        record.phase,
                        fire=False,
                        clear=True,
                        hysteresis=rule.clear is not None,
                        now=now,
                        for_=rule.for_,
                        keep_firing_for=rule.keep_firing_for,
                    )
                    target = self._poll_target(rule, device, labels, record)
                    gone = advance(
                        self.store,
                        target,
                        record,
                        phase,
                        now=now,
                        sample=True,
                        value="(no longer reported)",
                        context={},
                    )
                    if gone is not None:
                        out.append(gone)
        out += self._confirm_from_poll(result, now)
        self._remember(result, uptime)
        self.store.flush()
        return out

    def _remember(self, result: PollResult, uptime: int | None) -> None:
        names = self._history_names
        values: dict[tuple[str, str], Any] = {}
        for name in names.intersection(result.scalars.values):
            values[("", name)] = result.scalars.values[name]
        for row in result.rows:
            for name in names.intersection(row.values):
                values[(row.index, name)] = row.values[name]
        self._history[result.device] = DeviceHistory(result.time, uptime, values)

    def _poll_target(
        self,
        rule: PollRule,
        device: str,
        labels: Mapping[str, str],
        record: AlertRecord | None,
        row: Row | None = None,
    ) -> Target:
        if record is not None:
            own: Mapping[str, str] = record.alert.labels
            key = record.key
        else:
            own = alert_labels(
                rule.name,
                rule.severity,
                device,
                self._index_labels(rule, row) if row is not None else {},
                rule.labels,
                labels,
            )
            key = make_key("poll", rule.name, device, row.index if row is not None else "")
        return Target(
            rule.name,
            rule.severity,
            device,
            own,
            "poll",
            key,
            self._signatures[rule.name],
            rule.flap,
            rule.summary,
            rule.description,
            resolved_summary=rule.resolved_summary,
        )

    def _decoded(self, rule: PollRule, row: Row) -> Mapping[str, Any]:
        """The row's INDEX columns by name (``{"ifIndex": 3}``), {} when unknown."""
        if row.index_values is not None:
            return row.index_values
        if rule.index_node is None or not row.index:
            return {}
        try:
            return self.rules.cache.tree.decode_index(rule.index_node, row.index)
        except MIB_ERRORS:  # an index the MIB cannot decode
            return {}

    def _index_labels(self, rule: PollRule, row: Row) -> dict[str, str]:
        if rule.index_node is None or not row.index:
            return {}
        decoded = self._decoded(rule, row)
        return {k: render_value(v) for k, v in decoded.items()} or {"index": row.index}

    def _poll_change(
        self,
        rule: PollRule,
        record: AlertRecord | None,
        key: str,
        device: str,
        labels: Mapping[str, str],
        row: Row,
        env: Mapping[str, Any],
        ctx: RowHistory,
        fire: bool | None,
        now: float,
    ) -> Transition | None:
        phase = record.phase if record is not None else INACTIVE
        clear = None
        if rule.clear is not None and phase.state is AlertState.FIRING:
            clear = truth(rule.clear, env, ctx)
        new = poll_step(
            phase,
            fire=fire,
            clear=clear,
            hysteresis=rule.clear is not None,
            now=now,
            for_=rule.for_,
            keep_firing_for=rule.keep_firing_for,
        )
        if record is None and new.state is AlertState.RESOLVED:
            return None
        target = self._poll_target(rule, device, labels, record, row)
        if not self.limits.admits(rule.name, record, new):
            return self.limits.suppress(target, rule.labels, now)
        value = shown(rule.expr, env, ctx)
        if rule.value is not None:
            value = computed(rule.value, env, ctx)
        context = {**self._decoded(rule, row), **env, "index": row.index}
        return advance(
            self.store, target, record, new, now=now, sample=True, value=value, context=context
        )

    def tick(self, now: float) -> list[Transition]:
        """Time-based changes: trap ``for`` and ``resolve_after``, quiet flap samples,
        alerts of removed or changed rules and devices, summary alerts of the caps,
        and clean-up of resolved records (at most ``[limits] prune_batch`` per tick)."""
        out: list[Transition] = []
        budget = self._batch
        for record in self.store.records():
            alert = record.alert
            change: Transition | None = None
            if self._obsolete(record):
                change = self._retire(record, now)
            elif alert.source == SUMMARY_SOURCE:
                change = self.limits.step(record, now)
            elif alert.source == "trap":
                rule = self._trap[alert.rule]
                phase = trap_tick(
                    record.phase, now=now, for_=rule.for_, resolve_after=rule.resolve_after
                )
                idle = now - record.sampled_at >= IDLE_SAMPLE and (
                    alert.flapping or "1" in record.history
                )
                if phase is not record.phase or idle:
                    target = self._trap_target(rule, alert.device, alert.labels, record.key)
                    value = "expired" if phase.state is AlertState.RESOLVED else alert.value
                    if phase.state is record.phase.state:
                        value = alert.value
                    change = advance(
                        self.store,
                        target,
                        record,
                        phase,
                        now=now,
                        sample=True,
                        value=value,
                        context=self._stored_names(record),
                    )
            if change is not None:
                out.append(change)
            if budget > 0 and self._collect(record, now):
                budget -= 1
        self.store.flush()
        return out

    def _obsolete(self, record: AlertRecord) -> bool:
        alert = record.alert
        if record.signature != self._signatures.get(alert.rule):
            return True
        if alert.source == "trap":
            return alert.rule not in self._trap
        if alert.source == "builtin":
            return not self.rules.unreachable or alert.device not in self._devices
        if alert.source == SUMMARY_SOURCE:
            unreachable = alert.rule == UNREACHABLE and self.rules.unreachable
            return not (unreachable or alert.rule in self._trap or alert.rule in self._poll)
        return alert.rule not in self._poll or alert.device not in self._devices

    def _retire(self, record: AlertRecord, now: float) -> Transition | None:
        alert = record.alert
        target = Target(
            alert.rule,
            alert.severity,
            alert.device,
            alert.labels,
            alert.source,
            record.key,
            record.signature,
            FlapSettings(enabled=False),
            None,
            None,
        )
        change = None
        if record.active or alert.flapping:
            change = advance(
                self.store,
                target,
                record,
                trap_clear(record.phase, now=now),
                now=now,
                sample=False,
                value="rule or device removed",
                context={},
            )
        self.store.remove(alert.fingerprint)
        self._confirming.discard(alert.fingerprint)
        if alert.source == SUMMARY_SOURCE:
            self.limits.forget(alert.rule)
        return change

    def _collect(self, record: AlertRecord, now: float) -> bool:
        """Drops a resolved record nobody needs any more; True when it did."""
        alert = record.alert
        if record.active or alert.flapping or self.store.get(alert.fingerprint) is None:
            return False
        if "1" in record.history and now - (alert.ends_at or now) <= self._kept:
            return False
        self.store.remove(alert.fingerprint)
        self.pruned += 1
        return True
