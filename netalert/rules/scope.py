"""Which names a rule expression may use, resolved against the MIB tree and the config.

A poll rule sees the short names of the MIB objects the config collects from
the devices it applies to, the index columns of those tables (decoded from the
row index when not collected), ``device`` and the devices' label names, and,
through ``value('1.3.6...')``, any collected instance no MIB names (a vendor
OID whose MIB the operator does not have). A trap
rule sees any MIB object (varbinds vary by vendor and firmware), the index
columns of its varbinds, and ``source``, ``community``, ``user``, ``version``,
``trap`` and ``device``. ``confirm`` sees any MIB object (it polls them itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netalert.config.models import Config, Rule
from netalert.rules.expr import NUMERIC_OID, NameInfo, Scope
from netalert.rules.exprtypes import kind_of_syntax
from netalert.rules.mibview import MIB_ERRORS, MibNodeLike, MibTreeLike, short_name
from netalert.rules.values import Converter, OidValue, converter_for
from netalert.snmp.types import Value

__all__ = [
    "POLL_SPECIALS",
    "TRAP_SPECIALS",
    "Collected",
    "NodeCache",
    "collected_for",
    "confirm_scope",
    "poll_scope",
    "trap_scope",
]

POLL_SPECIALS = ("device",)
TRAP_SPECIALS = ("source", "community", "user", "version", "trap", "device")
# DISPLAY-HINT renderings worth showing instead of raw text (the label the MIB layer gives).
_HINTED_TCS = frozenset(
    {"MacAddress", "PhysAddress", "DateAndTime", "InetAddress", "TAddress", "DisplayString"}
)


# device, source, community, user, version, trap: all text
_TEXT_SPECIAL = NameInfo("special", value="text")


def object_info(node: MibNodeLike) -> NameInfo:
    """A MIB object as expressions see it: its enums and the kind of value it holds."""
    kind = kind_of_syntax(node.syntax, node.tc, bool(node.enums))
    return NameInfo("object", node.enums, value=kind, syntax=node.tc or node.syntax)


@dataclass(slots=True)
class NodeCache:
    """Memoised MIB lookups by short or full name (None: the tree does not know it)."""

    tree: MibTreeLike
    nodes: dict[str, MibNodeLike | None] = field(default_factory=dict)
    converters: dict[str, Converter] = field(default_factory=dict)

    def node(self, name: str) -> MibNodeLike | None:
        """The node for ``name``, or None."""
        if name in self.nodes:
            return self.nodes[name]
        try:
            found: MibNodeLike | None = self.tree.node(name)
        except MIB_ERRORS:  # MibError, or anything a half-loaded tree raises
            found = None
        self.nodes[name] = found
        return found

    def resolve(self, name_or_oid: str) -> MibNodeLike | None:
        """The object an instance name or OID (``sysUpTime.0``, ``1.3.6...``) belongs to."""
        try:
            oid = self.tree.oid(name_or_oid)
        except MIB_ERRORS:  # unknown: None
            return None
        return self.resolve_oid(oid)

    def resolve_oid(self, oid: tuple[int, ...]) -> MibNodeLike | None:
        """The longest known node that is a prefix of ``oid`` (None if none)."""
        try:
            node, _ = self.tree.lookup(oid)
        except MIB_ERRORS:  # unknown: None
            return None
        return node

    def converter(self, name: str) -> Converter:
        """How values of ``name`` are shown to expressions and templates."""
        conv = self.converters.get(name)
        if conv is None:
            node = self.node(name)
            if node is None:
                conv = converter_for(name, "", {}, False)
            elif node.syntax == "OBJECT IDENTIFIER":
                conv = self._oid_converter()
            else:
                hinted = bool(node.display_hint) and node.tc in _HINTED_TCS
                conv = converter_for(name, node.syntax, node.enums, hinted)
            self.converters[name] = conv
        return conv

    def _oid_converter(self) -> Converter:
        names: dict[str, OidValue] = {}

        def oid(raw: Value, label: str) -> Any:
            if not isinstance(raw, str):
                return raw
            found = names.get(raw)
            if found is None:
                try:
                    name = self.tree.name(raw.lstrip("."))
                except MIB_ERRORS:
                    name = ""
                # the tree answers a numeric string for an OID it does not know
                name = "" if name.replace(".", "").isdigit() else name
                if len(names) > 10_000:
                    names.clear()  # device data is unbounded; the cache must not be
                found = names[raw] = OidValue(raw, name)
            return found

        return oid

    def bits(self, name: str) -> int | None:
        """32 or 64 for counters, None for other types (for delta/rate)."""
        node = self.node(name)
        syntax = node.syntax if node is not None else ""
        return {"Counter32": 32, "Counter64": 64}.get(syntax)

    def info(self, name: str) -> NameInfo | None:
        """NameInfo of a MIB object, None when unknown or not an object."""
        node = self.node(name)
        if node is None or node.kind not in ("scalar", "column"):
            return None
        return object_info(node)


@dataclass(frozen=True, slots=True)
class Collected:
    """What the devices a rule applies to collect: OID prefixes and index names."""

    prefixes: tuple[tuple[int, ...], ...]
    index_names: frozenset[str]
    written: tuple[str, ...]  # short names as the config writes them (for hints)
    numeric: tuple[tuple[int, ...], ...] = ()  # get/walk entries written as numeric OIDs

    def has(self, node: MibNodeLike) -> bool:
        """True when ``node`` lies under one of the collected prefixes."""
        return any(node.oid[: len(p)] == p for p in self.prefixes)

    def has_oid(self, oid: tuple[int, ...]) -> bool:
        """True when an entry written as a numeric OID is ``oid`` or a subtree holding it."""
        return any(oid[: len(p)] == p for p in self.numeric)


def collected_for(config: Config, rule: Rule, cache: NodeCache) -> Collected:
    """The collected objects of the devices ``rule`` applies to (all devices if none listed)."""
    devices = [d for d in config.devices if not rule.devices or d.name in rule.devices]
    groups = {g for d in devices for g in d.collect}
    if not devices:
        groups = set(config.collect)
    prefixes: list[tuple[int, ...]] = []
    index_names: set[str] = set()
    written: list[str] = []
    numeric: list[tuple[int, ...]] = []
    for group_name in sorted(groups):
        group = config.collect.get(group_name)
        if group is None:
            continue
        for item in (*group.get, *group.walk):
            text = item.strip().lstrip(".")
            if NUMERIC_OID.fullmatch(text):
                numeric.append(tuple(int(arc) for arc in text.split(".")))
            node = cache.resolve(item)
            if node is None:
                continue  # the MIB checks of check-config report it
            written.append(node.name)
            prefixes.append(node.oid)
            index_names.update(_index_of(node, cache))
    return Collected(tuple(prefixes), frozenset(index_names), tuple(written), tuple(numeric))


def _index_of(node: MibNodeLike, cache: NodeCache) -> tuple[str, ...]:
    if node.index:
        return node.index
    if node.kind == "table":
        # The entry is the table's only child, arc 1 (SMI).
        entry = cache.resolve_oid((*node.oid, 1))
        if entry is not None:
            return entry.index
    return ()


def _labels_of(config: Config, rule: Rule) -> set[str]:
    return {
        key
        for d in config.devices
        if not rule.devices or d.name in rule.devices
        for key in d.labels
    }


def poll_scope(config: Config, rule: Rule, cache: NodeCache, collected: Collected) -> Scope:
    """The names a poll rule's ``expr`` and ``clear_expr`` may use."""
    labels = _labels_of(config, rule)
    where = "the rule's devices" if rule.devices else "any device"

    def lookup(name: str) -> NameInfo | str:
        if name in POLL_SPECIALS:
            return _TEXT_SPECIAL
        if NUMERIC_OID.fullmatch(name):
            return _numeric(name, cache, collected, where)
        node = cache.node(name)
        if node is not None and node.kind in ("scalar", "column"):
            if collected.has(node) or name in collected.index_names:
                return object_info(node)
            return f"{name!r} is not collected by {where} (add it to a [collect.*] group)"
        if name in labels:
            return NameInfo("label", value="text", syntax="a device label")
        if node is not None:
            return f"{name!r} is a MIB {node.kind}, not a value"
        return f"unknown name {name!r}"

    candidates = [*collected.written, *collected.index_names, *POLL_SPECIALS, *sorted(labels)]
    return Scope(lookup, candidates)


def _numeric(oid: str, cache: NodeCache, collected: Collected, where: str) -> NameInfo | str:
    """What ``value('1.3.6...')`` may read: a collected instance no MIB object names."""
    arcs = tuple(int(arc) for arc in oid.split("."))
    node = cache.resolve_oid(arcs)
    if node is not None and node.kind in ("scalar", "column"):
        named = f"{node.module}::{node.name}" if node.module else node.name
        return f"{oid} is {named}.{'.'.join(map(str, arcs[len(node.oid) :]))}: use {node.name}"
    if not collected.has_oid(arcs):
        return (
            f"{oid!r} is not collected by {where}"
            " (add it, or a subtree holding it, as a numeric OID to a [collect.*] group)"
        )
    return NameInfo("special")


_POLL_ONLY = "value('...') reads polled instances: use it in poll rules"


def trap_scope(cache: NodeCache, objects: Iterable[str]) -> Scope:
    """The names a trap rule's ``where`` and ``key`` may use; ``objects`` feed the hints."""
    short = [short_name(o) for o in objects]

    def lookup(name: str) -> NameInfo | str:
        if name in TRAP_SPECIALS:
            return _TEXT_SPECIAL
        if NUMERIC_OID.fullmatch(name):
            return _POLL_ONLY
        info = cache.info(name)
        if info is not None:
            return info
        node = cache.node(name)
        if node is not None:
            return f"{name!r} is a MIB {node.kind}, not a value"
        return f"unknown name {name!r}"

    return Scope(lookup, [*short, *TRAP_SPECIALS])


def confirm_scope(cache: NodeCache, hints: Mapping[str, str] | Iterable[str] = ()) -> Scope:
    """The names a trap rule's ``confirm`` may use: MIB objects and ``device``."""

    def lookup(name: str) -> NameInfo | str:
        if name == "device":
            return _TEXT_SPECIAL
        if NUMERIC_OID.fullmatch(name):
            return _POLL_ONLY
        info = cache.info(name)
        if info is not None:
            return info
        return f"unknown name {name!r}"

    return Scope(lookup, [*hints, "device"])
