"""Trap rules compiled per trap OID, and a trap's varbinds laid out for them once.

Matching a trap against its rules needs, per trap, only what those rules read:
the ``where``, ``value`` and ``key`` names, a confirm rule's index column, the
varbinds' decoded indexes (the default key). So the trap rules
(:class:`~netalert.rules.trapflow.TrapRules`) compile, once per trap OID and name:

* a :class:`TrapPlan`: the rules that trap fires or clears (from the
  :class:`~netalert.rules.trapindex.TrapIndex`), whether each is scoped to some
  devices, the names they read, and the trap's short name;

and, once per distinct list of varbind names and indexes a trap carries:

* a :class:`Layout`: the view's index labels (``ifIndex`` = ``3``), and where each
  name the rules may read comes from (the last varbind of that short name, else the
  first decoded index column of that name), as :func:`~netalert.rules.trapenv.view`
  would find it.

A trap then costs a lookup of its plan, one of its layout, and the rules of its OID;
its view holds only the names its rules read (:func:`planned_view`), each converted
from its varbind's value. That view answers every rule of the plan as the whole view
does (a property test compares the two on random rules and traps); a trap with a
missing value (``noSuchInstance``) takes the whole view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from netalert.rules.compile import TrapRule
from netalert.rules.mibview import short_name
from netalert.rules.scope import NodeCache
from netalert.rules.trapcache import Lru
from netalert.rules.trapenv import Named, TrapView, named, trap_device, view
from netalert.rules.trapindex import Hit
from netalert.rules.values import Converter
from netalert.snmp.types import TrapEvent, VarBind, maker

__all__ = ["EMPTY_PLAN", "Layout", "LayoutKey", "TrapPlan", "layout", "plan", "planned_view"]

# The names a trap's view sets after its varbinds (they win over a varbind's name).
SPECIALS = ("source", "community", "user", "version", "trap", "device")
_SPECIAL = frozenset(SPECIALS)
# A layout's key: the varbinds' names and their indexes, in order.
LayoutKey = tuple[tuple[str, ...], tuple[str, ...]]
# Where a name's value comes from: (varbind position, its converter, None), or
# (-1, None, the value decoded from an index).
_Source = tuple[int, Converter | None, Any]
_NAME, _INDEX, _VALUE = attrgetter("name"), attrgetter("index"), attrgetter("value")
_trap_view = maker(TrapView)


@dataclass(frozen=True, slots=True)
class TrapPlan:
    """The rules of one trap OID and name, compiled for matching.

    ``rules``: (rule, its ``trap`` matches, its ``clear_trap`` matches, scoped to some
    devices), in rule order; ``wanted``: the names other than :data:`SPECIALS` any of
    them reads; ``specials``: those of :data:`SPECIALS` they read; ``trap``: the short
    name the view gives the trap.
    """

    rules: tuple[tuple[TrapRule, bool, bool, bool], ...]
    wanted: tuple[str, ...]
    specials: tuple[str, ...]
    trap: str


EMPTY_PLAN = TrapPlan((), (), (), "")  # a trap no rule names


@dataclass(frozen=True, slots=True)
class Layout:
    """A list of varbind names and indexes, as a trap's view reads it (see the module)."""

    index: Mapping[str, str]
    sources: Mapping[str, _Source]


def _reads(rule: TrapRule, clears: bool) -> set[str]:
    """The names of a trap's view ``rule`` reads when it fires (or, ``clears``, clears)."""
    out = {name for name in rule.key or () if name != "device"}
    if clears:  # a clear reads its key only
        return out
    for expr in (rule.where, rule.value):
        if expr is not None:
            out |= expr.names
    columns = [n for n in rule.confirm_nodes if n.kind == "column"]
    if columns and len(columns[0].index) == 1:  # confirm_index's fallback
        out.add(columns[0].index[0])
    return out


def plan(hits: Sequence[Hit], trap_oid: str, trap_name: str) -> TrapPlan:
    """The plan of a trap OID and name whose rules' hits are ``hits``."""
    if not hits:
        return EMPTY_PLAN
    names: set[str] = set()
    for rule, _fires, clears in hits:
        names |= _reads(rule, clears)
    return TrapPlan(
        rules=tuple((r, f, c, bool(r.devices or r.match)) for r, f, c in hits),
        wanted=tuple(sorted(names - _SPECIAL)),
        specials=tuple(n for n in SPECIALS if n in names),
        trap=short_name(trap_name) if trap_name else trap_oid.lstrip("."),
    )


def layout(
    varbinds: Sequence[VarBind], cache: NodeCache, memo: Lru[tuple[str, str], Named]
) -> Layout:
    """The layout of ``varbinds`` (none of whose values is None), as :func:`view` reads
    them: the same dict operations, with where each value comes from in place of it."""
    index: dict[str, str] = {}
    sources: dict[str, _Source] = {}
    for position, vb in enumerate(varbinds):
        if not vb.name:
            continue
        key = (vb.name, vb.index)
        found = memo.get(key)
        short, conv, decoded = (
            found if found is not None else memo.put(key, named(vb.name, vb.index, cache))
        )
        sources[short] = (position, conv, None)
        for col, text, value in decoded:
            index.setdefault(col, text)
            sources.setdefault(col, (-1, None, value))
    return Layout(index, sources)


def planned_view(
    event: TrapEvent,
    trap_plan: TrapPlan,
    layouts: Lru[LayoutKey, Layout],
    cache: NodeCache,
    memo: Lru[tuple[str, str], Named],
) -> TrapView:
    """The view of ``event`` with the names ``trap_plan``'s rules read: for each of them
    what :func:`view` gives (a name it does not set is not set either)."""
    varbinds = event.varbinds
    if None in tuple(map(_VALUE, varbinds)):
        return view(event, cache, memo)  # a missing value: left out of the view
    key = (tuple(map(_NAME, varbinds)), tuple(map(_INDEX, varbinds)))
    found = layouts.get(key)
    if found is None:
        found = layouts.put(key, layout(varbinds, cache, memo))
    sources = found.sources
    names: dict[str, Any] = {}
    for name in trap_plan.wanted:
        source = sources.get(name)
        if source is not None:
            position, conv, value = source
            if conv is None:
                names[name] = value
            else:
                vb = varbinds[position]
                names[name] = conv(vb.value, vb.label)
    device = trap_device(event)
    if trap_plan.specials:
        specials = {
            "source": event.source,
            "community": event.community,
            "user": event.user,
            "version": event.version,
            "trap": trap_plan.trap,
            "device": device,
        }
        for name in trap_plan.specials:
            names[name] = specials[name]
    return _trap_view(device, names, found.index, trap_plan.trap)
