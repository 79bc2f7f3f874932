"""Trap rules and confirm polls: a trap fires, repeats or clears an alert; a poll confirms it.

Pure evaluation: a trap becomes :class:`~netalert.alerts.Observation` values
(one per matching rule), a confirm poll's answer one more. The alert stage
decides what they do to the alerts (``for``, counts, confirm schedule).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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
from netalert.rules.trapenv import (
    Named,
    TrapView,
    clear_key,
    confirm_index,
    key_labels,
    view,
)
from netalert.rules.trapindex import TrapIndex, scan
from netalert.rules.trapplan import Layout, LayoutKey, TrapPlan, plan, planned_view
from netalert.snmp.types import TrapEvent, maker

__all__ = ["Matches", "TrapContext", "TrapRules", "trap_origin"]

_EMPTY: Mapping[str, str] = {}
_observation = maker(Observation)  # every field in order (the trap path's hot loop)
# Read once: an Enum member is an attribute of a class with a __getattr__ (EnumType's),
# which each read goes through (about 800 instructions, twice a trap in observed).
_OCCURRED, _CLEARED = Event.OCCURRED, Event.CLEARED

# An alert's identity as a fired trap gives it: (rule, device, key labels in order).
_LabelsKey = tuple[str, str, tuple[tuple[str, str], ...]]
# ... and what follows from it: (labels, fingerprint, lookup key, labels label_text cut,
# the labels as a dict: one object, handed over by a trap worker trap after trap).
_Identity = tuple[Mapping[str, str], str, str, int, dict[str, str]]
# One observation of a trap as a trap worker hands it to the agent (builtin values only):
# (rule, "o" occurred | "c" cleared, key, labels or None, fingerprint or None, value,
# confirm index or None).
_Match = tuple[str, str, str, dict[str, str] | None, str | None, str, str | None]
# A trap's observations so (what :meth:`TrapRules.observed` takes), and the labels
# cut on the way (counted by the agent as if it had cut them).
Matches = tuple[tuple[_Match, ...], int]


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
        self._matches: Lru[tuple[str, str], TrapPlan] = Lru("matches", rules.trap_cache)
        self._layouts: Lru[LayoutKey, Layout] = Lru("layouts", rules.trap_cache)
        self._rules = {r.name: r for r in rules.trap}
        self._policies = policies
        self._index = TrapIndex(rules.trap)
        self._applicable = self._scanned if linear else self._planned

    def _plan(self, trap_oid: str, trap_name: str) -> TrapPlan:
        """The plan of a trap OID and name, kept for the next such trap."""
        key = (trap_oid, trap_name)
        found = self._matches.get(key)
        if found is None:
            hits = self._index.hits(trap_oid, trap_name)
            found = self._matches.put(key, plan(hits, trap_oid, trap_name))
        return found

    def convert(self, row: Row) -> dict[str, Any]:
        """A row's raw values as expressions see them (enums by label, octets as text...)."""
        conv = self.rules.cache.converter
        return {n: conv(n)(v, row.labels.get(n, "")) for n, v in row.values.items()}

    def on_trap(self, event: TrapEvent) -> list[Observation]:
        """Matches one trap against the trap rules: what it fires, repeats or clears."""
        out: list[Observation] = []
        names: _LazyNames | None = None
        for rule, clears, trap, labels in self._applicable(event):
            if names is None:  # per trap, once one rule matches it: read when rendered
                names = _LazyNames(event, self)
            if clears:
                out.append(self._clear(rule, event, trap, TrapContext(names, origin=False)))
            else:
                out.append(self._fire(rule, event, trap, labels, TrapContext(names, origin=True)))
        return out

    def matches(self, event: TrapEvent) -> Matches:
        """What :meth:`on_trap` makes of ``event``, as builtin values (a trap worker's,
        for the agent's :meth:`observed`), and the labels cut on the way."""
        cut = LABEL_STATS.cut
        out: list[_Match] = []
        for rule, clears, trap, labels in self._applicable(event):
            if clears:
                key = alert_key("trap", rule.name, trap.device, clear_key(key_labels(rule, trap)))
                out.append((rule.name, "c", key, None, None, trap.trap, None))
            else:
                identity, value, index = self._occurred(rule, event, trap, labels)
                _, print_, key, _, plain = identity
                out.append((rule.name, "o", key, plain, print_, value, index))
        return tuple(out), LABEL_STATS.cut - cut

    def _planned(
        self, event: TrapEvent
    ) -> Iterator[tuple[TrapRule, bool, TrapView, Mapping[str, str]]]:
        """The rules ``event`` fires (False) or clears (True), with its view (the names
        they read) and its device's labels: through the plan of its trap OID."""
        found = self._plan(event.trap_oid, event.trap_name)
        if not found.rules:
            return
        rules = self.rules
        trap = planned_view(event, found, self._layouts, rules.cache, self._named)
        device = trap.device
        labels = rules.device_labels.get(device, _EMPTY)
        names = trap.names
        for rule, _fires, clears, scoped in found.rules:
            if scoped and not applies(rule, device, labels):
                continue
            if clears:
                yield rule, True, trap, labels
            elif rule.where is None or truth(rule.where, names, NO_HISTORY) is True:
                yield rule, False, trap, labels

    def _scanned(
        self, event: TrapEvent
    ) -> Iterator[tuple[TrapRule, bool, TrapView, Mapping[str, str]]]:
        """As :meth:`_planned`, the plain way: every rule tried in turn, the whole view
        (the reference the plans are tested and benched against)."""
        trap: TrapView | None = None
        labels = _EMPTY
        for rule, _fires, clears in scan(self.rules.trap, event.trap_oid, event.trap_name):
            if trap is None:  # per trap, once one rule may match it
                trap = view(event, self.rules.cache, self._named)
                labels = self.rules.device_labels.get(trap.device, _EMPTY)
            if not applies(rule, trap.device, labels):
                continue
            if clears:
                yield rule, True, trap, labels
            elif rule.where is None or truth(rule.where, trap.names, NO_HISTORY) is True:
                yield rule, False, trap, labels

    def observed(self, event: TrapEvent, matches: Matches) -> list[Observation]:
        """The observations :meth:`on_trap` makes of ``event``, from what a trap worker
        found with the same rule set (:meth:`matches`): the rules are not matched
        again; the names the templates see are worked out only if they read them."""
        found, cut = matches
        if cut:
            LABEL_STATS.cut += cut
        if not found:
            return []
        policies = self._policies
        names = _lazy_names(event, self)
        device = event.device or event.source  # trapenv.trap_device, inline (one call less)
        out: list[Observation] = []
        make, context = _observation, _context
        for rule, kind, key, labels, print_, value, index in found:
            if kind == "c":  # as _clear makes it
                out.append(
                    make(
                        policies[rule], key, device, _CLEARED, None, None, None, None,
                        value, context(names, False), event.varbinds, None, None,
                        True, None, None,
                    )
                )  # fmt: skip
                continue
            extra = {
                "trap": {
                    "source": event.source,
                    "community": event.community,
                    "version": event.version,
                }
            }
            out.append(  # as _fire makes it
                make(
                    policies[rule], key, device, _OCCURRED, labels, print_, None, None,
                    value, context(names, True), event.varbinds, extra, index,
                    True, None, None,
                )
            )  # fmt: skip
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
                dict(all_labels),
            ),
        )

    def _occurred(
        self, rule: TrapRule, event: TrapEvent, trap: TrapView, labels: Mapping[str, str]
    ) -> tuple[_Identity, str, str | None]:
        """A firing trap's alert identity (labels, fingerprint, key), its value, its
        confirm index."""
        identity = self._identity(rule, trap.device, key_labels(rule, trap), labels)
        value = trap.trap
        if rule.value is not None:
            value = computed(rule.value, trap.names, NO_HISTORY, self.rules.max_label)
        index = None
        if rule.confirm is not None:
            index = confirm_index(rule, event, trap, self.rules.cache)
        return identity, value, index

    def _fire(
        self,
        rule: TrapRule,
        event: TrapEvent,
        trap: TrapView,
        labels: Mapping[str, str],
        context: Mapping[str, Any],
    ) -> Observation:
        (all_labels, print_, key, _, _), value, index = self._occurred(rule, event, trap, labels)
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
            context=context,
            varbinds=event.varbinds,
            extra={
                "trap": {
                    "source": event.source,
                    "community": event.community,
                    "version": event.version,
                }
            },
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
            context=context,
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


class _LazyNames:
    """A trap's names as its rules see them, worked out when first asked for."""

    __slots__ = ("_event", "_names", "_rules")

    def __init__(self, event: TrapEvent, rules: TrapRules) -> None:
        self._event, self._rules = event, rules
        self._names: dict[str, Any] | None = None

    def context(self, origin: bool) -> dict[str, Any]:
        if self._names is None:
            rules = self._rules
            self._names = {
                **view(self._event, rules.rules.cache, rules._named).names,
                "varbinds": self._event.varbinds,
            }
        if origin:
            return {**self._names, "trap_source": trap_origin(self._event)}
        return dict(self._names)


class TrapContext(Mapping[str, Any]):
    """An observation's context (its trap's names) built at the first read: the alert
    stage reads it only to render a rule's templates."""

    __slots__ = ("_data", "_names", "_origin")

    def __init__(self, names: _LazyNames, *, origin: bool) -> None:
        self._names, self._origin = names, origin
        self._data: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        data = self._data
        if data is None:
            data = self._data = self._names.context(self._origin)
        return data

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        return repr(self._load())


def _lazy_names(event: TrapEvent, rules: TrapRules) -> _LazyNames:
    """``_LazyNames(event, rules)`` without ``type.__call__`` finding and calling
    ``__init__`` (:meth:`TrapRules.observed` makes one per trap)."""
    names = _new(_LazyNames)
    names._event, names._rules, names._names = event, rules, None
    return names


def _context(names: _LazyNames, origin: bool) -> TrapContext:
    """``TrapContext(names, origin=origin)`` so (one per observation)."""
    context = _new(TrapContext)
    context._names, context._origin, context._data = names, origin, None
    return context


_new = object.__new__
