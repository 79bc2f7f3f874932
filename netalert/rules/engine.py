"""The rule engine: poll results and traps in, observations of alerts out.

It compiles nothing at run time and keeps no alert: it evaluates the compiled
rules (:mod:`netalert.rules.compile`) on what the poller and the trap receiver
hand it and says what it saw, as :class:`~netalert.alerts.Observation` values
for the alert stage (:mod:`netalert.alerts.stage`), which owns the alerts. It
reads the alerts only through the stage's :class:`~netalert.alerts.AlertView`
(is there an alert for this row? is it firing?), and keeps one thing itself:
the previous poll's values of each device, for ``rate()``, ``delta()``,
``changed()`` and ``prev()``. Every method takes ``now``; none reads a clock.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from netalert.alerts import (
    AlertState,
    AlertView,
    Event,
    Observation,
    Policy,
    Watch,
    alert_labels,
    group_of,
)
from netalert.alerts import make_key as alert_key
from netalert.config.models import Config
from netalert.poll.rows import PollResult, Row
from netalert.rules.compile import UNREACHABLE, PollRule, RuleSet, compile_rules
from netalert.rules.evaluate import applies, computed, shown, truth
from netalert.rules.expr import NUMERIC_OID
from netalert.rules.history import DeviceHistory, RowHistory
from netalert.rules.inputs import ConfirmRequest
from netalert.rules.mibview import MIB_ERRORS, MibTreeLike
from netalert.rules.policy import build_policy
from netalert.rules.reachability import reachable, unreachable
from netalert.rules.trapflow import Matches, TrapRules
from netalert.rules.values import plain_value, render_value
from netalert.snmp.types import TrapEvent

__all__ = ["RuleEngine"]

_EMPTY: Mapping[str, str] = MappingProxyType({})
_GONE = "(no longer reported)"
_LOADS = itertools.count(1)  # rule sets loaded in this process: each one's token


def _merged(scalars: Mapping[str, Any], row: Mapping[str, Any]) -> Mapping[str, Any]:
    if not scalars or not row:
        return row or scalars
    return {**scalars, **row}


class _Poll:
    """One poll of one device being evaluated: its names, computed once per row."""

    __slots__ = ("base", "device", "envs", "labels", "previous", "result")

    def __init__(
        self,
        result: PollResult,
        labels: Mapping[str, str],
        base: dict[str, Any],
        previous: DeviceHistory,
    ) -> None:
        self.result = result
        self.device = result.device
        self.labels = labels
        self.base = base
        self.previous = previous
        self.envs: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}


class RuleEngine:
    """Evaluates the compiled rules; the alerts are the alert stage's."""

    def __init__(self, config: Config, tree: MibTreeLike, *, rules: RuleSet | None = None) -> None:
        self._history: dict[str, DeviceHistory] = {}
        self.reload(config, tree, rules=rules)

    def reload(self, config: Config, tree: MibTreeLike, *, rules: RuleSet | None = None) -> None:
        """Switches to a new config (hand :attr:`policy` to the alert stage then).

        Raises:
            ConfigError: The rules do not compile (the old ones stay in force).
        """
        self.rules = rules if rules is not None else compile_rules(config, tree)
        # names this rule set for trap workers: what they matched with another set
        # (before they heard of this one) is matched again here
        self.token = f"{os.getpid()}.{next(_LOADS)}"
        self.policy: Policy = build_policy(self.rules, frozenset(d.name for d in config.devices))
        self._traps = TrapRules(self.rules, self.policy.rules)
        names: set[str] = set()
        for rule in self.rules.poll:
            for expr in (rule.expr, rule.clear, rule.value):
                names |= expr.history if expr is not None else frozenset()
        self._history_names = frozenset(names)
        # value('1.3.6...') in poll rules: the instances to take from PollResult.unnamed
        oids: set[str] = set()
        for rule in self.rules.poll:
            used = rule.expr.names | (rule.clear.names if rule.clear else frozenset())
            oids.update(n for n in used if NUMERIC_OID.fullmatch(n))
        self._value_oids = frozenset(oids)
        self._bits = {n: self.rules.cache.bits(n) for n in names}

    @property
    def rule_names(self) -> frozenset[str]:
        """The names of the rules in force, ``DeviceUnreachable`` included."""
        return frozenset(self.policy.rules)

    # --- polls ------------------------------------------------------------------------

    def on_poll(self, result: PollResult, view: AlertView, now: float) -> list[Observation]:
        """Evaluates the poll rules on one device's poll result.

        A result means the device answered: its DeviceUnreachable sees a good
        poll. Rows an alert was raised for and that are no longer reported are
        observed as recovered (unless the poll was incomplete). A trap alert of
        the device waiting for a confirm poll reads this poll too.
        """
        device = result.device
        out = reachable(self.policy.rules[UNREACHABLE], view, device)
        poll = self._start(result)
        for rule in self.rules.poll:
            if applies(rule, device, poll.labels):
                out += self._rule(rule, poll, view, now)
        for watch in view.watching(device):
            out += self._traps.on_confirm(watch, result)
        self._remember(result, poll)
        return out

    def _start(self, result: PollResult) -> _Poll:
        device = result.device
        labels = self.rules.device_labels.get(device, _EMPTY)
        base: dict[str, Any] = {**labels, **self._traps.convert(result.scalars), "device": device}
        for oid in self._value_oids.intersection(result.unnamed):
            value = result.unnamed[oid].value
            if value is not None:
                base[oid] = plain_value(value)
        previous = self._history.get(device) or DeviceHistory()
        return _Poll(result, labels, base, previous)

    def _rule(self, rule: PollRule, poll: _Poll, view: AlertView, now: float) -> list[Observation]:
        result = poll.result
        if rule.columns:
            rows = [r for r in result.rows if not rule.columns.isdisjoint(r.values)]
        else:
            rows = [result.scalars]
        policy = self.policy.rules[rule.name]
        out: list[Observation] = []
        seen: set[str] = set()
        for row in rows:
            key = alert_key("poll", rule.name, poll.device, row.index)
            seen.add(key)
            obs = self._row(rule, poll, row, key, view)
            if obs is not None:
                out.append(obs)
        if not result.complete:
            return out  # a failed walk is not a row gone
        for key in view.active_keys(group_of(alert_key("poll", rule.name, poll.device, ""))):
            if key not in seen:
                out.append(
                    Observation(
                        policy,
                        key,
                        poll.device,
                        Event.EVALUATED,
                        fire=False,
                        clear=True,
                        value=_GONE,
                    )
                )
        return out

    def _row(
        self, rule: PollRule, poll: _Poll, row: Row, key: str, view: AlertView
    ) -> Observation | None:
        env, ctx = self._names(rule, poll, row)
        fire = truth(rule.expr, env, ctx)
        state = view.state(key)
        if state is None and fire is not True:
            return None
        clear = None
        if rule.clear is not None and state is AlertState.FIRING:
            clear = truth(rule.clear, env, ctx)
        labels = None
        if state is None:
            own = self._index_labels(rule, row)
            labels = alert_labels(
                rule.name,
                rule.severity,
                poll.device,
                own,
                rule.labels,
                poll.labels,
                limit=self.rules.max_label,
            )
        bound = self.rules.max_label
        if rule.value is None:
            value = shown(rule.expr, env, ctx, bound)
        else:
            value = computed(rule.value, env, ctx, bound)
        return Observation(
            self.policy.rules[rule.name],
            key,
            poll.device,
            Event.EVALUATED,
            labels=labels,
            fire=fire,
            clear=clear,
            value=value,
            context={**self._decoded(rule, row), **env, "index": row.index},
        )

    def _names(self, rule: PollRule, poll: _Poll, row: Row) -> tuple[Mapping[str, Any], RowHistory]:
        """What the rule's expressions see on ``row``: names and history functions."""
        result = poll.result
        cached = poll.envs.get(id(row))
        if cached is None:
            env = poll.base if row is result.scalars else {**poll.base, **self._traps.convert(row)}
            raw = {**result.scalars.values, **row.values}
            cached = poll.envs[id(row)] = (env, raw)
        env, raw = cached
        if rule.index_names:
            env = {**self._decoded(rule, row), **env}
        ctx = RowHistory(
            row.index,
            raw,
            result.scalars.values,
            poll.previous,
            result.time,
            self._bits,
            self.rules.cache.converters,
            _merged(result.scalars.rates, row.rates),
            _merged(result.scalars.deltas, row.deltas),
        )
        return env, ctx

    def _remember(self, result: PollResult, poll: _Poll) -> None:
        names = self._history_names
        values: dict[tuple[str, str], Any] = {}
        for name in names.intersection(result.scalars.values):
            values[("", name)] = result.scalars.values[name]
        for row in result.rows:
            for name in names.intersection(row.values):
                values[(row.index, name)] = row.values[name]
        self._history[result.device] = DeviceHistory(result.time, values)

    def _decoded(self, rule: PollRule, row: Row) -> Mapping[str, Any]:
        """The row's INDEX columns by name (``{"ifIndex": 3}``), {} when unknown."""
        if row.index_values:
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

    # --- traps, reachability, confirm polls ----------------------------------------------

    def on_trap(
        self, event: TrapEvent, matched: tuple[str, Matches] | None = None
    ) -> list[Observation]:
        """Matches one trap against the trap rules: what it fires, repeats or clears.

        ``matched`` is what a trap worker found, with the rule set it names by its
        :attr:`token`: taken as it is when that set is the one in force, else the trap
        is matched here (a reload the worker had not caught up with).
        """
        if matched is not None and matched[0] == self.token:
            return self._traps.observed(event, matched[1])
        return self._traps.on_trap(event)

    def device_unreachable(
        self, device: str, view: AlertView, reason: str, *, failures: int
    ) -> list[Observation]:
        """A poll of ``device`` got no answer, the ``failures``-th in a row."""
        policy = self.policy.rules[UNREACHABLE]
        return unreachable(self.rules, policy, view, device, reason, failures=failures)

    def device_reachable(self, device: str, view: AlertView) -> list[Observation]:
        """The poller got an answer from ``device``."""
        return reachable(self.policy.rules[UNREACHABLE], view, device)

    def by_hand(self, rule: str) -> bool:
        """True when only a person can resolve the alerts of ``rule`` (a trap rule
        without a clear trap)."""
        return self._traps.by_hand(rule)

    def resolved_by_hand(self, fingerprint: str, device: str, rule: str, by: str) -> Observation:
        """A person resolved an alert of such a rule."""
        return self._traps.resolved_by_hand(fingerprint, device, rule, by)

    def confirm_requests(self, due: list[Watch], now: float) -> list[ConfirmRequest]:
        """What to GET for the confirm polls the alert stage says are due."""
        out = []
        for watch in due:
            request = self._traps.confirm_request(watch, now)
            if request is not None:
                out.append(request)
        return out

    def on_confirm(self, watch: Watch, result: PollResult) -> list[Observation]:
        """The answer to a confirm poll."""
        return self._traps.on_confirm(watch, result)
