"""Compiling ``[[rules]]`` once, when the config loads: expressions, traps, keys, templates.

Every problem becomes one ``rules[i].field: message`` line, collected before
raising, so ``check-config`` reports them all at once. The result is a
:class:`RuleSet` the engine evaluates without further checks.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from types import MappingProxyType

from jinja2.environment import Template

from netalert.alerts import MAX_LABEL, FlapSettings
from netalert.config.models import Config, Rule
from netalert.config.risks import ConfigWarning
from netalert.errors import ConfigError
from netalert.rules.expr import Expr, ExprError, Scope, compile_expr
from netalert.rules.mibview import MIB_ERRORS, MibNodeLike, MibTreeLike, short_name
from netalert.rules.scope import (
    NodeCache,
    collected_for,
    confirm_scope,
    poll_scope,
    trap_scope,
)
from netalert.rules.templatenames import rule_names, template_warnings
from netalert.rules.templates import (
    DEFAULT_RESOLVED,
    EMPTY,
    AnyTemplate,
    TemplateProblem,
    compile_template,
)
from netalert.rules.trapcache import TRAP_CACHE_ENTRIES

__all__ = [
    "PollRule",
    "RuleSet",
    "TrapMatcher",
    "TrapRule",
    "check_rules",
    "compile_rules",
    "trap_resolve_after",
]

UNREACHABLE = "DeviceUnreachable"


@dataclass(frozen=True, slots=True)
class PollRule:
    """A compiled poll rule.

    ``columns`` are the table columns the expressions read: the rule runs on
    every row carrying at least one of them (once on the scalars when empty).
    ``index_node`` decodes a row index into labels (``ifIndex``);
    ``index_names`` are the INDEX columns the expressions read, which come from
    the decoded index when the row does not carry them. ``value`` is the rule's
    ``value`` expression (None: the deciding operand of ``expr`` is shown);
    ``resolved_summary`` is the template of a resolved alert's summary.
    """

    position: int
    name: str
    severity: str
    expr: Expr
    clear: Expr | None
    for_: float
    keep_firing_for: float
    devices: frozenset[str]
    match: Mapping[str, str]
    labels: Mapping[str, str]
    columns: frozenset[str]
    index_node: MibNodeLike | None
    index_names: frozenset[str]
    summary: Template
    description: AnyTemplate
    flap: FlapSettings
    value: Expr | None = None
    resolved_summary: AnyTemplate | None = None


@dataclass(frozen=True, slots=True)
class TrapMatcher:
    """Matches a trap by name, numeric OID, or a glob over either."""

    pattern: str
    oid: str = ""
    glob: str = ""

    def matches(self, trap_oid: str, trap_name: str) -> bool:
        """True when the trap (numeric OID, ``MODULE::name``) matches."""
        oid = trap_oid.lstrip(".")
        if self.oid:
            return oid == self.oid
        return (
            fnmatch.fnmatchcase(trap_name, self.glob)
            or fnmatch.fnmatchcase(short_name(trap_name), self.glob)
            or fnmatch.fnmatchcase(oid, self.glob.lstrip("."))
        )


@dataclass(frozen=True, slots=True)
class TrapRule:
    """A compiled trap rule. ``key`` None means the default key (the varbinds' indexes).

    ``value`` (None: the trap's name is shown) is evaluated over the firing trap's names.
    """

    position: int
    name: str
    severity: str
    trap: TrapMatcher
    clear_trap: TrapMatcher | None
    where: Expr | None
    key: tuple[str, ...] | None
    for_: float
    resolve_after: float | None
    confirm: Expr | None
    confirm_nodes: tuple[MibNodeLike, ...]
    confirm_every: float
    devices: frozenset[str]
    match: Mapping[str, str]
    labels: Mapping[str, str]
    summary: Template
    description: AnyTemplate
    flap: FlapSettings
    value: Expr | None = None
    resolved_summary: AnyTemplate | None = None


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every compiled rule of a config, plus what the engine needs to read rows."""

    poll: tuple[PollRule, ...]
    trap: tuple[TrapRule, ...]
    cache: NodeCache
    device_labels: Mapping[str, Mapping[str, str]]
    unreachable: bool
    unreachable_after: int = 2
    unreachable_severity: str = "critical"
    max_label: int = MAX_LABEL  # [limits] max_label_chars
    trap_cache: int = TRAP_CACHE_ENTRIES  # [limits] trap_cache_entries
    warnings: tuple[ConfigWarning, ...] = ()  # template names nothing provides (issue 19)


def check_rules(config: Config, tree: MibTreeLike) -> list[str]:
    """Compiles every rule and returns the problems, one ``rules[i].field: message`` each."""
    try:
        compile_rules(config, tree)
    except ConfigError as exc:
        return exc.problems
    return []


def compile_rules(config: Config, tree: MibTreeLike) -> RuleSet:
    """Compiles the rules of ``config`` against ``tree``.

    Raises:
        ConfigError: One line per problem, e.g. ``rules[0].expr: unknown name
            'ifOperStatu' at column 1 (did you mean 'ifOperStatus'?)``.
    """
    cache = NodeCache(tree)
    problems: list[str] = []
    warnings: list[ConfigWarning] = []
    poll: list[PollRule] = []
    trap: list[TrapRule] = []
    for position, rule in enumerate(config.rules):
        where = f"rules[{position}]"
        if rule.is_trap_rule:
            compiled_trap = _trap_rule(
                position, rule, cache, where, problems, config.limits.trap_resolve_after
            )
            if compiled_trap is not None:
                trap.append(compiled_trap)
                oids = [m.oid for m in (compiled_trap.trap, compiled_trap.clear_trap) if m]
                names = partial(rule_names, config, rule, cache, oids)
                warnings += template_warnings(where, rule, names)
        else:
            compiled_poll = _poll_rule(config, position, rule, cache, where, problems)
            if compiled_poll is not None:
                poll.append(compiled_poll)
                warnings += template_warnings(where, rule, partial(rule_names, config, rule, cache))
    if problems:
        raise ConfigError(problems)
    labels = {d.name: MappingProxyType(dict(d.labels)) for d in config.devices}
    return RuleSet(
        poll=tuple(poll),
        trap=tuple(trap),
        cache=cache,
        device_labels=MappingProxyType(labels),
        unreachable=config.agent.device_unreachable,
        unreachable_after=config.agent.unreachable_after,
        unreachable_severity=config.agent.unreachable_severity,
        max_label=config.limits.max_label_chars,
        trap_cache=config.limits.trap_cache_entries,
        warnings=tuple(warnings),
    )


def _expr(source: str, scope: Scope, where: str, problems: list[str]) -> Expr | None:
    try:
        return compile_expr(source, scope)
    except ExprError as exc:
        problems.append(f"{where}: {exc.message}")
        return None


def _templates(
    rule: Rule, where: str, problems: list[str], default: str
) -> tuple[Template, AnyTemplate, AnyTemplate] | None:
    """The summary, description and resolved_summary templates (None: one failed).

    A description or resolved_summary left out is netalert's own (empty, the default
    "resolved after..."), one for every rule, compiled when first rendered.
    """
    try:
        summary: Template | None = compile_template(rule.summary or default)
    except TemplateProblem as exc:
        problems.append(f"{where}.summary: {exc}")
        summary = None
    out: list[AnyTemplate] = []
    for field_name, text, own in (
        ("description", rule.description, EMPTY),
        ("resolved_summary", rule.resolved_summary, DEFAULT_RESOLVED),
    ):
        try:
            out.append(compile_template(text) if text else own)
        except TemplateProblem as exc:
            problems.append(f"{where}.{field_name}: {exc}")
    return (summary, out[0], out[1]) if summary is not None and len(out) == 2 else None


def _flap(rule: Rule) -> FlapSettings:
    return FlapSettings(rule.flap_detection, rule.flap_start, rule.flap_stop)


def _poll_rule(
    config: Config, position: int, rule: Rule, cache: NodeCache, where: str, problems: list[str]
) -> PollRule | None:
    assert rule.expr is not None
    before = len(problems)
    collected = collected_for(config, rule, cache)
    scope = poll_scope(config, rule, cache, collected)
    expr = _expr(rule.expr, scope, f"{where}.expr", problems)
    clear = None
    if rule.clear_expr is not None:
        clear = _expr(rule.clear_expr, scope, f"{where}.clear_expr", problems)
    value = None
    if rule.value is not None:
        value = _expr(rule.value, scope, f"{where}.value", problems)
    if len(problems) > before or expr is None:
        return None
    names = expr.names
    for extra in (clear, value):
        names |= extra.names if extra is not None else frozenset()
    columns: dict[str, MibNodeLike] = {}
    for name in sorted(names):
        node = cache.node(name)
        if node is not None and node.kind == "column":
            columns[name] = node
    index_node = None
    if columns:
        # The table rows are joined by index: columns of tables indexed differently
        # (ifTable by ifIndex, hrStorageTable by hrStorageIndex) never share a row.
        by_index: dict[tuple[str, ...], str] = {}
        for name, node in columns.items():
            by_index.setdefault(node.index, name)
        if len(by_index) > 1:
            shown = " and ".join(
                f"{name} (index {', '.join(index) or '?'})" for index, name in by_index.items()
            )
            problems.append(f"{where}.expr: reads tables with different indexes: {shown}")
        index_node = next(iter(columns.values()))
    default = "{{ device }}: " + rule.name + " ({{ value }})"
    templates = _templates(rule, where, problems, default)
    if templates is None or len(problems) > before:
        return None
    return PollRule(
        position=position,
        name=rule.name,
        severity=rule.severity,
        expr=expr,
        clear=clear,
        for_=rule.for_.total_seconds(),
        keep_firing_for=rule.keep_firing_for.total_seconds(),
        devices=frozenset(rule.devices),
        match=MappingProxyType(dict(rule.match)),
        labels=MappingProxyType(dict(rule.labels)),
        columns=frozenset(columns),
        index_node=index_node,
        index_names=frozenset(names & set(index_node.index if index_node else ())),
        summary=templates[0],
        description=templates[1],
        flap=_flap(rule),
        value=value,
        resolved_summary=templates[2],
    )


def _matcher(
    pattern: str, cache: NodeCache, where: str, problems: list[str]
) -> tuple[TrapMatcher | None, list[str]]:
    """The matcher of a ``trap``/``clear_trap`` and the trap's OBJECTS (for hints)."""
    text = pattern.strip()
    if any(c in text for c in "*?["):
        return TrapMatcher(text, glob=text), []
    numeric = text.lstrip(".")
    if numeric.replace(".", "").isdigit():
        oid = numeric
    else:
        try:
            oid = ".".join(str(arc) for arc in cache.tree.oid(text))
        except MIB_ERRORS:  # MibError and friends
            problems.append(f"{where}: unknown trap {pattern!r} (load its MIB, or give the OID)")
            return None, []
    try:
        objects = list(cache.tree.notification_objects(oid))
    except MIB_ERRORS:  # a numeric OID the MIBs do not know
        objects = []
    return TrapMatcher(text, oid=oid), objects


def trap_resolve_after(rule: Rule, default: timedelta) -> float | None:
    """A trap rule's ``resolve_after`` in seconds; None means never by time.

    The rule's own value wins, ``"0s"`` opting out. A rule that sets none and
    has no ``clear_trap`` gets ``default`` (``[limits] trap_resolve_after``,
    ``"0s"``: never), so an alert nothing else would end still ends. A rule
    with a ``clear_trap`` and no ``resolve_after`` waits for its clearing trap.
    """
    value = rule.resolve_after
    if value is None:
        value = default if rule.clear_trap is None else timedelta(0)
    seconds = value.total_seconds()
    return seconds if seconds > 0 else None


def _trap_rule(
    position: int,
    rule: Rule,
    cache: NodeCache,
    where: str,
    problems: list[str],
    default_resolve_after: timedelta,
) -> TrapRule | None:
    assert rule.trap is not None
    before = len(problems)
    matcher, objects = _matcher(rule.trap, cache, f"{where}.trap", problems)
    clear_matcher = None
    if rule.clear_trap is not None:
        clear_matcher, clear_objects = _matcher(
            rule.clear_trap, cache, f"{where}.clear_trap", problems
        )
        objects += clear_objects
    scope = trap_scope(cache, objects)
    where_expr = None
    if rule.where is not None:
        where_expr = _expr(rule.where, scope, f"{where}.where", problems)
    value = None
    if rule.value is not None:
        value = _expr(rule.value, scope, f"{where}.value", problems)
    key = None
    if rule.key is not None:
        for j, name in enumerate(rule.key):
            info = scope.lookup(name)
            if isinstance(info, str):
                problems.append(f"{where}.key[{j}]: {info}")
        key = tuple(rule.key)
    confirm = None
    confirm_nodes: list[MibNodeLike] = []
    if rule.confirm is not None:
        confirm = _expr(rule.confirm, confirm_scope(cache, objects), f"{where}.confirm", problems)
        if confirm is not None:
            for name in sorted(confirm.names - {"device"}):
                node = cache.node(name)
                if node is not None:
                    confirm_nodes.append(node)
            indexes = {n.index for n in confirm_nodes if n.kind == "column"}
            if len(indexes) > 1:
                problems.append(f"{where}.confirm: reads tables with different indexes")
            if not confirm_nodes:
                problems.append(f"{where}.confirm: names no MIB object to poll")
    default = "{{ device }}: " + rule.name + " ({{ trap }})"
    templates = _templates(rule, where, problems, default)
    if matcher is None or templates is None or len(problems) > before:
        return None
    return TrapRule(
        position=position,
        name=rule.name,
        severity=rule.severity,
        trap=matcher,
        clear_trap=clear_matcher,
        where=where_expr,
        key=key,
        for_=rule.for_.total_seconds(),
        resolve_after=trap_resolve_after(rule, default_resolve_after),
        confirm=confirm,
        confirm_nodes=tuple(confirm_nodes),
        confirm_every=rule.confirm_every.total_seconds(),
        devices=frozenset(rule.devices),
        match=MappingProxyType(dict(rule.match)),
        labels=MappingProxyType(dict(rule.labels)),
        summary=templates[0],
        description=templates[1],
        flap=_flap(rule),
        value=value,
        resolved_summary=templates[2],
    )
