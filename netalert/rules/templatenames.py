"""The names a rule's templates use that nothing will ever give them (issue 19).

A name a template's context lacks writes nothing: ``{{ ifDesc }}`` (for
``ifDescr``) mails ``core-sw1  is down`` and the reader never learns a value
is missing. What a rule's context holds is known when the rules compile, as
far as it is known at all:

* always: ``device``, ``labels``, ``value``, ``alert``, Jinja2's globals
  (``range``...), and in a ``resolved_summary`` ``firing_summary`` and
  ``fired_for``;
* a poll rule: the names its ``expr`` may use (the objects its devices
  collect, their index columns, the devices' labels) and ``index``; its
  alerts' labels: ``rule``, ``severity``, ``device``, ``index``, the index
  columns, the rule's and its devices' labels;
* a trap rule: the trap's names (``source``, ``trap``...), ``varbinds``,
  ``trap_source`` and every object of the loaded MIBs, since a device may send
  any varbind (which of them a trap carries is not known before it comes);
  its labels depend on ``key`` and the varbinds: not checked.

A name guarded in the template (``x is defined``, ``x | default(...)``) is
the author's known maybe and is not reported; nor is anything under
``alert.`` or a dict method (``labels.get('x')``). What is left is a name
that renders empty on every alert: reported as a warning, never an error (a
typo in a description should not stop an agent), with a close match.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from jinja2 import meta, nodes

from netalert.config.models import Config, Rule
from netalert.config.risks import ConfigWarning
from netalert.rules.expr import Scope
from netalert.rules.mibview import MIB_ERRORS, short_name
from netalert.rules.scope import (
    TRAP_SPECIALS,
    Collected,
    NodeCache,
    collected_for,
    poll_scope,
    trap_scope,
)
from netalert.rules.templates import GLOBALS, template_ast

__all__ = [
    "ALWAYS",
    "RESOLVED_ONLY",
    "TemplateNames",
    "mail_template_warnings",
    "poll_names",
    "rule_names",
    "template_warnings",
    "trap_names",
    "unknown_names",
]

ALWAYS = frozenset({"device", "labels", "value", "alert"})
RESOLVED_ONLY = frozenset({"firing_summary", "fired_for"})
_GUARD_TESTS = frozenset({"defined", "undefined"})
_GUARD_FILTERS = frozenset({"default", "d"})
_DICT_METHODS = frozenset({"get", "items", "keys", "values"})


@dataclass(frozen=True, slots=True)
class TemplateNames:
    """What a rule's templates may name.

    ``known`` says whether a top-level name is given; ``candidates`` feed the
    "did you mean" hint (asked for only when a name is unknown); ``labels`` are
    the label names its alerts can carry (None: not known before the alert
    exists, as for trap rules).
    """

    known: Callable[[str], bool]
    candidates: Callable[[], Iterable[str]]
    labels: frozenset[str] | None


def unknown_names(
    source: str,
    names: TemplateNames,
    *,
    resolved: bool = False,
    always: frozenset[str] = ALWAYS,
    provider: str = "this rule",
) -> list[str]:
    """One sentence per name of ``source`` that renders empty on every alert, in order.

    ``source`` compiles (the caller checked). ``resolved``: a ``resolved_summary``,
    which also sees ``firing_summary`` and ``fired_for``. ``always`` and ``provider``
    (for the sentence): a mail template's are :data:`MAIL_NAMES` and ``a mail``.
    """
    tree = template_ast(source)
    guarded = _guarded(tree)
    extra = RESOLVED_ONLY if resolved else frozenset()
    out: list[str] = []
    for name in sorted(meta.find_undeclared_variables(tree) - guarded):
        if name in always or name in extra or name in GLOBALS or names.known(name):
            continue
        pool = [*always, *extra, *names.candidates()]
        out.append(f"{{{{ {name} }}}} names nothing {provider} provides{_hint(name, pool)}")
    if names.labels is not None and "labels" not in guarded:
        for label in sorted(_label_keys(tree) - names.labels):
            out.append(
                f"labels.{label} is no label of this rule's alerts{_hint(label, names.labels)}"
            )
    return out


def _hint(name: str, pool: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(pool)), n=1)
    return f"; it writes nothing (did you mean {close[0]}?)" if close else "; it writes nothing"


def _guarded(tree: nodes.Template) -> frozenset[str]:
    """Names the template itself allows to be missing: ``x is defined``, ``x | default``."""
    found: set[str] = set()
    for test in tree.find_all(nodes.Test):
        if test.name in _GUARD_TESTS and isinstance(test.node, nodes.Name):
            found.add(test.node.name)
    for flt in tree.find_all(nodes.Filter):
        if flt.name in _GUARD_FILTERS and isinstance(flt.node, nodes.Name):
            found.add(flt.node.name)
    return frozenset(found)


def _label_keys(tree: nodes.Template) -> set[str]:
    """The label names read as ``labels.x`` or ``labels['x']``, less those guarded anywhere."""
    keys: dict[int, str] = {}
    for attr in tree.find_all(nodes.Getattr):
        if _is_labels(attr.node) and attr.attr not in _DICT_METHODS:
            keys[id(attr)] = attr.attr
    for item in tree.find_all(nodes.Getitem):
        arg = item.arg
        if _is_labels(item.node) and isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            keys[id(item)] = arg.value
    guarded = {
        keys[id(n.node)]
        for n in (*tree.find_all(nodes.Test), *tree.find_all(nodes.Filter))
        if n.name in _GUARD_TESTS | _GUARD_FILTERS and id(n.node) in keys
    }
    return set(keys.values()) - guarded


def _is_labels(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "labels"


# --- what a poll or trap rule's context holds ---
_FIXED_LABELS = frozenset({"rule", "severity", "device", "index"})
_TRAP_NAMES = frozenset({"varbinds", "trap_source"})


def rule_names(
    config: Config, rule: Rule, cache: NodeCache, trap_oids: list[str] | None = None
) -> TemplateNames:
    """What the templates of ``rule`` may name; ``trap_oids``: a trap rule's (globs: "")."""
    if trap_oids is None:
        collected = collected_for(config, rule, cache)
        return poll_names(config, rule, poll_scope(config, rule, cache, collected), collected)
    objects: list[str] = []
    for oid in filter(None, trap_oids):
        try:
            objects += cache.tree.notification_objects(oid)
        except MIB_ERRORS:  # a numeric OID no loaded MIB knows
            continue
    return trap_names(trap_scope(cache, objects), cache)


def poll_names(config: Config, rule: Rule, scope: Scope, collected: Collected) -> TemplateNames:
    """A poll rule's: what its ``expr`` may name, the row's ``index``; its alerts' labels."""
    device_labels = {
        key
        for d in config.devices
        if not rule.devices or d.name in rule.devices
        for key in d.labels
    }
    return TemplateNames(
        known=lambda name: name == "index" or not isinstance(scope.lookup(name), str),
        candidates=lambda: [*scope.candidates, "index"],
        labels=_FIXED_LABELS | collected.index_names | set(rule.labels) | device_labels,
    )


def trap_names(scope: Scope, cache: NodeCache) -> TemplateNames:
    """A trap rule's: the trap's names, and any MIB object (a device may send any varbind)."""

    def known(name: str) -> bool:
        return name in _TRAP_NAMES or name in TRAP_SPECIALS or cache.node(name) is not None

    def candidates() -> list[str]:
        every = getattr(cache.tree, "nodes", None)  # the real tree lists its names; fakes need not
        mib = [short_name(n) for n in every()] if callable(every) else []
        return [*scope.candidates, *_TRAP_NAMES, *mib]

    return TemplateNames(known, candidates, None)


def template_warnings(
    where: str, rule: Rule, names: Callable[[], TemplateNames]
) -> list[ConfigWarning]:
    """The warnings of a rule's own templates (``where``: ``rules[i]``).

    The defaults are not checked, and ``names`` is asked for only when the rule has
    templates of its own (a config of thousands of rules with none costs nothing more).
    """
    own = [
        (field_name, text)
        for field_name, text in (
            ("summary", rule.summary),
            ("description", rule.description),
            ("resolved_summary", rule.resolved_summary),
        )
        if text
    ]
    if not own:
        return []
    given = names()
    out: list[ConfigWarning] = []
    for field_name, text in own:
        resolved = field_name == "resolved_summary"
        for problem in unknown_names(text, given, resolved=resolved):
            out.append(ConfigWarning(f"{where}.{field_name}", f"rule {rule.name!r}: {problem}"))
    return out


def mail_template_warnings(templates_dir: Path) -> list[ConfigWarning]:
    """The names the mail templates of ``[smtp] templates_dir`` use that no mail provides
    (the files there compile: :class:`~netalert.mail.render.MailTemplates` checked them)."""
    from netalert.mail.render import MAIL_NAMES, TEMPLATE_NAMES

    given = TemplateNames(lambda name: False, lambda: MAIL_NAMES, None)
    out: list[ConfigWarning] = []
    for name in TEMPLATE_NAMES:
        path = templates_dir / name
        if not path.is_file():
            continue
        source = path.read_text(encoding="utf-8", errors="replace")
        for problem in unknown_names(source, given, always=MAIL_NAMES, provider="a mail"):
            out.append(ConfigWarning("smtp.templates_dir", f"{path}: {problem}"))
    return out
