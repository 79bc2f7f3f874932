"""Trap rules and confirm polls, the half of the rule engine that listens to traps.

A mixin of :class:`netalert.rules.engine.RuleEngine`, split out to keep each
module to one job: here a trap fires, folds into, or clears alerts, and a trap
alert with ``confirm`` asks the poller to look and resolves on a good answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from netalert.alerts.lifecycle import INACTIVE, trap_clear, trap_occurred
from netalert.alerts.model import Transition
from netalert.alerts.store import AlertRecord, AlertStore, make_key
from netalert.rules.apply import Target, advance, alert_labels
from netalert.rules.compile import RuleSet, TrapRule
from netalert.rules.evaluate import applies, computed, shown, truth
from netalert.rules.history import NO_HISTORY
from netalert.rules.inputs import ConfirmRequest, PollResult, Row
from netalert.rules.limits import AlertLimits
from netalert.rules.mibview import short_name
from netalert.rules.trapenv import TrapView, clear_key, confirm_index, key_labels, view
from netalert.snmp.types import TrapEvent

__all__ = ["TrapFlow"]

_EMPTY: Mapping[str, str] = {}


class TrapFlow:
    """Trap handling and confirm polls; state lives in the attributes RuleEngine sets."""

    store: AlertStore
    rules: RuleSet
    limits: AlertLimits
    _trap: dict[str, TrapRule]
    _signatures: dict[str, str]
    _confirming: set[str]

    def _convert(self, row: Row) -> dict[str, Any]:
        conv = self.rules.cache.converter
        return {n: conv(n)(v, row.labels.get(n, "")) for n, v in row.values.items()}

    # --- traps ---------------------------------------------------------------------------

    def on_trap(self, event: TrapEvent, now: float) -> list[Transition]:
        """Matches one trap against the trap rules: fires, folds repeats, or clears."""
        out: list[Transition] = []
        trap: TrapView | None = None
        for rule in self.rules.trap:
            fires = rule.trap.matches(event.trap_oid, event.trap_name)
            clears = rule.clear_trap is not None and rule.clear_trap.matches(
                event.trap_oid, event.trap_name
            )
            if not (fires or clears):
                continue
            if trap is None:
                trap = view(event, self.rules.cache)
            labels = self.rules.device_labels.get(trap.device, _EMPTY)
            if not applies(rule, trap.device, labels):
                continue
            if clears:
                out += self._trap_clear(rule, event, trap, labels, now)
            elif rule.where is None or truth(rule.where, trap.names, NO_HISTORY) is True:
                change = self._trap_fire(rule, event, trap, labels, now)
                if change is not None:
                    out.append(change)
        self.store.flush()
        return out

    def _trap_target(self, rule: TrapRule, device: str, own: Mapping[str, str], key: str) -> Target:
        return Target(
            rule.name,
            rule.severity,
            device,
            own,
            "trap",
            key,
            self._signatures[rule.name],
            rule.flap,
            rule.summary,
            rule.description,
            resolved_summary=rule.resolved_summary,
        )

    def _trap_fire(
        self,
        rule: TrapRule,
        event: TrapEvent,
        trap: TrapView,
        labels: Mapping[str, str],
        now: float,
    ) -> Transition | None:
        own = key_labels(rule, trap)
        all_labels = alert_labels(rule.name, rule.severity, trap.device, own, rule.labels, labels)
        key = make_key("trap", rule.name, trap.device, clear_key(own))
        target = self._trap_target(rule, trap.device, all_labels, key)
        record = self.store.get(target.fingerprint)
        phase = trap_occurred(record.phase if record else INACTIVE, now=now, for_=rule.for_)
        if not self.limits.admits(rule.name, record, phase):
            return self.limits.suppress(target, rule.labels, now)
        count = record.alert.count + 1 if record is not None and record.active else 1
        context = {**trap.names, "varbinds": event.varbinds, "trap_source": trap_origin(event)}
        value = trap.trap
        if rule.value is not None:
            value = computed(rule.value, trap.names, NO_HISTORY)
        change = advance(
            self.store,
            target,
            record,
            phase,
            now=now,
            sample=True,
            value=value,
            context=context,
            count=count,
            varbinds=event.varbinds,
        )
        stored = self.store.get(target.fingerprint)
        if stored is not None:
            stored.extra["trap"] = {k: trap.names[k] for k in ("source", "community", "version")}
            if rule.confirm is not None and stored.active:
                stored.confirm_index = confirm_index(rule, event, trap, self.rules.cache)
                if stored.confirm_index is not None:
                    stored.confirm_next = now
                    self._confirming.add(stored.alert.fingerprint)
        return change

    def _trap_clear(
        self,
        rule: TrapRule,
        event: TrapEvent,
        trap: TrapView,
        labels: Mapping[str, str],
        now: float,
    ) -> list[Transition]:
        key = make_key("trap", rule.name, trap.device, clear_key(key_labels(rule, trap)))
        out = []
        context = {**trap.names, "varbinds": event.varbinds}
        for record in self.store.by_key(key):
            target = self._trap_target(rule, trap.device, record.alert.labels, key)
            phase = trap_clear(record.phase, now=now)
            change = advance(
                self.store,
                target,
                record,
                phase,
                now=now,
                sample=True,
                value=trap.trap,
                context=context,
                varbinds=event.varbinds,
            )
            if change is not None:
                out.append(change)
        return out

    # --- confirm polls -------------------------------------------------------------------

    def confirm_requests(self, now: float) -> list[ConfirmRequest]:
        """The confirm polls due now: at once after the trap, then every ``confirm_every``."""
        out = []
        for fp in list(self._confirming):
            record = self.store.get(fp)
            rule = self._trap.get(record.alert.rule) if record is not None else None
            if record is None or rule is None or not record.active or rule.confirm is None:
                self._confirming.discard(fp)
                if record is not None:
                    record.confirm_next = None
                    self.store.put(record)
                continue
            index = record.confirm_index
            if record.confirm_next is None or record.confirm_next > now or index is None:
                continue
            out.append(
                ConfirmRequest(
                    rule=rule.name,
                    fingerprint=fp,
                    device=record.alert.device,
                    index=index,
                    names=tuple(f"{n.module}::{n.name}.{index}" for n in rule.confirm_nodes),
                    oids=tuple(".".join(map(str, (*n.oid, index))) for n in rule.confirm_nodes),
                    requested=now,
                )
            )
            record.confirm_next = now + rule.confirm_every
            self.store.put(record)
        self.store.flush()
        return out

    def on_confirm(
        self, request: ConfirmRequest, result: PollResult, now: float
    ) -> list[Transition]:
        """Takes the answer to a confirm poll: resolves the trap alert if it shows all is well."""
        record = self.store.get(request.fingerprint)
        out = self._check_confirm(record, result, now) if record is not None else []
        self.store.flush()
        return out

    def _confirm_from_poll(self, result: PollResult, now: float) -> list[Transition]:
        out = []
        for fp in list(self._confirming):
            record = self.store.get(fp)
            if record is not None and record.alert.device == result.device:
                out += self._check_confirm(record, result, now)
        return out

    def _check_confirm(
        self, record: AlertRecord, result: PollResult, now: float
    ) -> list[Transition]:
        rule = self._trap.get(record.alert.rule)
        if rule is None or rule.confirm is None or not record.active:
            return []
        if record.confirm_index == "0":
            row: Row | None = result.scalars
        else:
            row = next((r for r in result.rows if r.index == record.confirm_index), None)
        if row is None:
            return []
        env = {
            **self._convert(result.scalars),
            **self._convert(row),
            "device": record.alert.device,
        }
        bad = truth(rule.confirm, env, NO_HISTORY)
        if bad is None:
            return []
        if bad:
            record.phase = replace(record.phase, last_bad=now)
            self.store.put(record)
            return []
        target = self._trap_target(rule, record.alert.device, record.alert.labels, record.key)
        value = "confirmed clear: " + shown(rule.confirm, env, NO_HISTORY)
        change = advance(
            self.store,
            target,
            record,
            trap_clear(record.phase, now=now),
            now=now,
            sample=True,
            value=value,
            context=self._stored_names(record),
        )
        self._confirming.discard(record.alert.fingerprint)
        record.confirm_next = None
        return [change] if change is not None else []

    # --- resolve by hand ([ack], issue 17) ----------------------------------------------

    def resolvable_by_hand(self, fingerprint: str) -> bool:
        """True for an active trap alert whose rule has no clear trap (nothing else ends it)."""
        record = self.store.get(fingerprint)
        if record is None or not record.active:
            return False
        rule = self._trap.get(record.alert.rule)
        return rule is not None and rule.clear_trap is None

    def resolve_by_hand(self, fingerprint: str, now: float, *, by: str) -> list[Transition]:
        """Resolves such an alert, as a clear trap would; [] when it is not one."""
        if not self.resolvable_by_hand(fingerprint):
            return []
        record = self.store.get(fingerprint)
        assert record is not None
        rule = self._trap[record.alert.rule]
        target = self._trap_target(rule, record.alert.device, record.alert.labels, record.key)
        change = advance(
            self.store,
            target,
            record,
            trap_clear(record.phase, now=now),
            now=now,
            sample=True,
            value=f"resolved by {by}",
            context=self._stored_names(record),
        )
        self._confirming.discard(fingerprint)
        self.store.flush()
        return [change] if change is not None else []

    # --- time --------------------------------------------------------------------------

    def _stored_names(self, record: AlertRecord) -> dict[str, Any]:
        conv = self.rules.cache.converter
        names: dict[str, Any] = {
            short_name(vb.name): conv(short_name(vb.name))(vb.value, vb.label)
            for vb in record.alert.varbinds
            if vb.name and vb.value is not None
        }
        names.update(record.extra.get("trap", {}))
        names.update(device=record.alert.device, varbinds=record.alert.varbinds)
        return names


def trap_origin(event: TrapEvent) -> str:
    """Where a trap came from, for the mail: ``192.0.2.9:50162 (SNMPv2c)``, v3 with its user."""
    host = f"[{event.source}]" if ":" in event.source else event.source
    kind = f"SNMPv3 user {event.user}" if event.version == "3" else f"SNMPv{event.version}"
    return f"{host}:{event.source_port} ({kind}{', inform' if event.inform else ''})"
