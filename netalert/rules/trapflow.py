"""Trap rules and confirm polls: a trap fires, repeats or clears an alert; a poll confirms it.

Pure evaluation: a trap becomes :class:`~netalert.alerts.Observation` values
(one per matching rule), a confirm poll's answer one more. The alert stage
decides what they do to the alerts (``for``, counts, confirm schedule).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from netalert.alerts import (
    LABEL_STATS,
    Event,
    Observation,
    RulePolicy,
    Watch,
    alert_labels,
    fingerprint,
)
from netalert.alerts import make_key as alert_key
from netalert.poll.rows import PollResult, Row
from netalert.rules.compile import RuleSet, TrapRule
from netalert.rules.evaluate import applies, computed, shown, truth
from netalert.rules.history import NO_HISTORY
from netalert.rules.inputs import ConfirmRequest
from netalert.rules.trapcache import Lru
from netalert.rules.trapenv import Named, TrapView, clear_key, confirm_index, key_labels, view
from netalert.rules.trapindex import Hit, TrapIndex, scan
from netalert.snmp.types import TrapEvent, maker

__all__ = ["TrapRules", "trap_origin"]

_EMPTY: Mapping[str, str] = {}
# every trap rule a trap fires makes one: the fast constructor (every field given)
_observation = maker(Observation)

# An alert's identity as a fired trap gives it: (rule, device, key labels in order).
_LabelsKey = tuple[str, str, tuple[tuple[str, str], ...]]
# ... and what follows from it: (labels, fingerprint, lookup key, labels label_text cut).
_Identity = tuple[Mapping[str, str], str, str, int]


class TrapRules:
    """The trap rules in force and their policies.

    A trap is matched through a :class:`~netalert.rules.trapindex.TrapIndex` of
    the rules, built here, once per rule set; ``linear`` tries every rule in
    turn instead (the reference the index is tested and benched against).
    What is the same trap after trap (the rules a trap OID matches; a varbind's
    decoded index; an alert's labels, fingerprint and key) is kept in bounded caches
    (:mod:`~netalert.rules.trapcache`), empty again with every rule set.
    """

    def __init__(
        self, rules: RuleSet, policies: Mapping[str, RulePolicy], *, linear: bool = False
    ) -> None:
        self.rules = rules
        self._named: Lru[tuple[str, str], Named] = Lru("index", rules.trap_cache)
        self._identities: Lru[_LabelsKey, _Identity] = Lru("labels", rules.trap_cache)
        self._matches: Lru[tuple[str, str], Sequence[Hit]] = Lru("matches", rules.trap_cache)
        self._rules = {r.name: r for r in rules.trap}
        self._policies = policies
        self._hits: Callable[[str, str], Sequence[Hit]] = (
            partial(scan, rules.trap) if linear else self._indexed(TrapIndex(rules.trap))
        )

    def _indexed(self, index: TrapIndex) -> Callable[[str, str], Sequence[Hit]]:
        """The index's hits for a trap OID and name, kept for the next such trap."""
        matches = self._matches

        def hits(trap_oid: str, trap_name: str) -> Sequence[Hit]:
            key = (trap_oid, trap_name)
            found = matches.get(key)
            if found is None:
                found = matches.put(key, tuple(index.hits(trap_oid, trap_name)))
            return found

        return hits

    def convert(self, row: Row) -> dict[str, Any]:
        """A row's raw values as expressions see them (enums by label, octets as text...)."""
        conv = self.rules.cache.converter
        return {n: conv(n)(v, row.labels.get(n, "")) for n, v in row.values.items()}

    def on_trap(self, event: TrapEvent) -> list[Observation]:
        """Matches one trap against the trap rules: what it fires, repeats or clears."""
        out: list[Observation] = []
        trap: TrapView | None = None
        labels = _EMPTY
        context: dict[str, Any] = {}
        for rule, _fires, clears in self._hits(event.trap_oid, event.trap_name):
            if trap is None:  # per trap, once one rule may match it
                trap = view(event, self.rules.cache, self._named)
                labels = self.rules.device_labels.get(trap.device, _EMPTY)
                context = {**trap.names, "varbinds": event.varbinds}
            if not applies(rule, trap.device, labels):
                continue
            if clears:
                out.append(self._clear(rule, event, trap, context))
            elif rule.where is None or truth(rule.where, trap.names, NO_HISTORY) is True:
                out.append(self._fire(rule, event, trap, labels, context))
        return out

    def _identity(
        self, rule: TrapRule, device: str, own: dict[str, str], labels: Mapping[str, str]
    ) -> _Identity:
        """An alert's labels, fingerprint and key, worked out once per distinct input."""
        key = (rule.name, device, tuple(own.items()))
        found = self._identities.get(key)
        if found is not None:
            LABEL_STATS.cut += found[3]  # counted as if label_text ran again
            return found
        cut = LABEL_STATS.cut
        all_labels = alert_labels(
            rule.name, rule.severity, device, own, rule.labels, labels, limit=self.rules.max_label
        )
        return self._identities.put(
            key,
            (
                all_labels,
                fingerprint(all_labels),
                alert_key("trap", rule.name, device, clear_key(own)),
                LABEL_STATS.cut - cut,
            ),
        )

    def _fire(
        self,
        rule: TrapRule,
        event: TrapEvent,
        trap: TrapView,
        labels: Mapping[str, str],
        context: Mapping[str, Any],
    ) -> Observation:
        all_labels, print_, key, _ = self._identity(
            rule, trap.device, key_labels(rule, trap), labels
        )
        value = trap.trap
        if rule.value is not None:
            value = computed(rule.value, trap.names, NO_HISTORY, self.rules.max_label)
        index = None
        if rule.confirm is not None:
            index = confirm_index(rule, event, trap, self.rules.cache)
        return _observation(
            policy=self._policies[rule.name],
            key=key,
            device=trap.device,
            event=Event.OCCURRED,
            labels=all_labels,
            fingerprint=print_,
            fire=None,
            clear=None,
            value=value,
            context={**context, "trap_source": trap_origin(event)},
            varbinds=event.varbinds,
            extra={"trap": {k: trap.names[k] for k in ("source", "community", "version")}},
            confirm_index=index,
            sample=True,
            phase=None,
            count=None,
        )

    def _clear(
        self, rule: TrapRule, event: TrapEvent, trap: TrapView, context: Mapping[str, Any]
    ) -> Observation:
        return Observation(
            self._policies[rule.name],
            alert_key("trap", rule.name, trap.device, clear_key(key_labels(rule, trap))),
            trap.device,
            Event.CLEARED,
            value=trap.trap,
            context=dict(context),
            varbinds=event.varbinds,
        )

    # --- resolve by hand ([ack], issue 17) ----------------------------------------------

    def by_hand(self, rule: str) -> bool:
        """True for a trap rule without a clear trap: nothing but a person ends its alerts."""
        found = self._rules.get(rule)
        return found is not None and found.clear_trap is None

    def resolved_by_hand(self, fingerprint: str, device: str, rule: str, by: str) -> Observation:
        """A person resolved an alert of such a rule (a reply to its mail): a clear trap."""
        return Observation(
            self._policies[rule],
            "",
            device,
            Event.CLEARED,
            fingerprint=fingerprint,
            value=f"resolved by {by}",
            context=None,
        )

    # --- confirm polls -------------------------------------------------------------------

    def confirm_request(self, watch: Watch, now: float) -> ConfirmRequest | None:
        """What to GET for one due confirm poll (None: its rule no longer confirms)."""
        rule = self._rules.get(watch.rule)
        if rule is None or rule.confirm is None:
            return None
        index = watch.index
        return ConfirmRequest(
            rule=rule.name,
            fingerprint=watch.fingerprint,
            device=watch.device,
            index=index,
            names=tuple(f"{n.module}::{n.name}.{index}" for n in rule.confirm_nodes),
            oids=tuple(".".join(map(str, (*n.oid, index))) for n in rule.confirm_nodes),
            requested=now,
        )

    def on_confirm(self, watch: Watch, result: PollResult) -> list[Observation]:
        """A poll's answer about a trap alert: still bad, all well, or nothing to say."""
        rule = self._rules.get(watch.rule)
        if rule is None or rule.confirm is None:
            return []
        if watch.index == "0":
            row: Row | None = result.scalars
        else:
            row = next((r for r in result.rows if r.index == watch.index), None)
        if row is None:
            return []
        env = {**self.convert(result.scalars), **self.convert(row), "device": watch.device}
        bad = truth(rule.confirm, env, NO_HISTORY)
        if bad is None:
            return []
        policy = self._policies[rule.name]
        if bad:
            event, value = Event.STILL_BAD, ""
        else:
            event, value = (
                Event.CLEARED,
                "confirmed clear: " + shown(rule.confirm, env, NO_HISTORY, self.rules.max_label),
            )
        return [
            Observation(
                policy,
                "",
                watch.device,
                event,
                fingerprint=watch.fingerprint,
                value=value,
                context=None,
            )
        ]


def trap_origin(event: TrapEvent) -> str:
    """Where a trap came from, for the mail: ``192.0.2.9:50162 (SNMPv2c)``, v3 with its user."""
    host = f"[{event.source}]" if ":" in event.source else event.source
    kind = f"SNMPv3 user {event.user}" if event.version == "3" else f"SNMPv{event.version}"
    return f"{host}:{event.source_port} ({kind}{', inform' if event.inform else ''})"
