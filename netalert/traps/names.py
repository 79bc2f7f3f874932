"""Naming a decoded trap through the MIB layer: trap name, varbind names, labels, index.

This runs for every trap that passes storm control, so each OID's naming
(node, ``MODULE::object``, index) is kept here, in a table of at most
``[traps] name_cache_entries`` OIDs, emptied when full (its entries counted in
``TrapStats.name_cache_evictions``); values are labelled per trap.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from netalert.mib.node import MibNode
from netalert.present import octets_text, timeticks_text
from netalert.snmp.naming import opaque_value
from netalert.snmp.types import SnmpType, TrapEvent, Value, VarBind, maker
from netalert.snmp.wire.ber import RawVarBind
from netalert.traps.stats import TrapStats

__all__ = ["TrapNamer", "TrapTree"]


class TrapTree(Protocol):
    """The part of :class:`netalert.mib.MibTree` the trap receiver uses."""

    def lookup(self, oid: str | tuple[int, ...]) -> tuple[MibNode | None, str]: ...

    def label(self, node: MibNode, value: Value) -> str: ...


_TEXT_HINTS = frozenset({"255a", "255t"})  # DisplayString, SnmpAdminString
_INTEGER, _OPAQUE, _TIMETICKS = SnmpType.INTEGER, SnmpType.OPAQUE, SnmpType.TIMETICKS
# every trap makes one TrapEvent and a VarBind per varbind: the fast constructors
_varbind = maker(VarBind)
_trap_event = maker(TrapEvent)
_Named = tuple[MibNode | None, str, str]  # node, "MODULE::object", index


def _plain_ticks(node: MibNode | None) -> bool:
    """True when a TimeTicks value of ``node`` is shown as plain ticks."""
    return node is None or not (node.enums or node.display_hint)


class TrapNamer:
    """Builds named :class:`TrapEvent` values; one per receiver."""

    def __init__(
        self, tree: TrapTree, *, cache_size: int = 50_000, stats: TrapStats | None = None
    ) -> None:
        self.tree = tree
        self._cache: dict[str, _Named] = {}
        self._cache_size = cache_size
        self._stats = stats

    def __len__(self) -> int:
        """The OIDs whose naming is kept."""
        return len(self._cache)

    def _named(self, oid: str) -> _Named:
        hit = self._cache.get(oid)
        if hit is not None:
            return hit
        try:
            node, index = self.tree.lookup(oid)
        except Exception:  # a naming failure must not cost the trap
            node, index = None, ""
        hit = (None, "", "") if node is None else (node, f"{node.module}::{node.name}", index)
        if len(self._cache) >= self._cache_size:
            # Emptied, not trimmed: no bookkeeping per hit; the working set refills it at once.
            if self._stats is not None:
                self._stats.name_cache_evictions += len(self._cache)
            self._cache.clear()
        self._cache[oid] = hit
        return hit

    def plain_ticks(self, oid: str) -> tuple[str, str] | None:
        """(name, index) of ``oid`` when a TimeTicks value of it is labelled as plain
        ticks (``1 day, 10:17:36.00``: no enumeration, no DISPLAY-HINT), else None."""
        node, name, index = self._named(oid)
        return (name, index) if _plain_ticks(node) else None

    def trap_name(self, trap_oid: str) -> str:
        """``IF-MIB::linkDown``, ``MODULE::object.suffix``, or the numeric OID if unknown."""
        node, name, index = self._named(trap_oid)
        if node is None:
            return trap_oid
        return f"{name}.{index}" if index else name

    def _label(self, node: MibNode | None, kind: SnmpType, value: Value) -> str:
        if (
            kind is SnmpType.OCTET_STRING
            and type(value) is bytes
            and (node is None or node.display_hint in _TEXT_HINTS)
        ):
            # DisplayString and friends: the common, printable case without the generic renderer.
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                text = ""
            if text.isprintable() and text:
                return text
        if node is not None:
            if node.enums and type(value) is int:
                label = node.enums.get(value)
                if label is not None:
                    return label
            elif node.display_hint or node.tc or node.enums:
                try:
                    label = self.tree.label(node, value)
                except Exception:
                    label = ""
                if label:
                    return label
        if kind is SnmpType.OCTET_STRING and isinstance(value, bytes):
            return octets_text(value)
        if kind is SnmpType.TIMETICKS and type(value) is int:
            return timeticks_text(value)
        if kind is SnmpType.OID and type(value) is str:
            # snmpTrapOID.0 = IF-MIB::linkDown reads better than its number
            _, name, index = self._named(value)
            if name:
                return f"{name}.{index}" if index else name
        return ""

    def varbinds(self, raw: Iterable[RawVarBind]) -> tuple[VarBind, ...]:
        """The named VarBinds of a trap."""
        out = []
        cache = self._cache
        for oid, kind, value in raw:
            node, name, index = cache.get(oid) or self._named(oid)
            if kind is _INTEGER and node is not None and node.enums and type(value) is int:
                # an enumeration (ifAdminStatus): its label, the commonest case
                label = node.enums.get(value) or self._label(node, kind, value)
            elif kind is _TIMETICKS and type(value) is int and _plain_ticks(node):
                label = timeticks_text(value)  # sysUpTime.0, in every trap
            elif kind is _OPAQUE:
                value, number = opaque_value(kind, value)  # an Opaque float: its number
                label = number or self._label(node, kind, value)
            else:
                label = self._label(node, kind, value)
            out.append(_varbind(oid, kind, value, name, index, label))
        return tuple(out)

    def event(
        self,
        *,
        source: str,
        port: int,
        version: str,
        trap_oid: str,
        raw: Iterable[RawVarBind],
        uptime: int | None,
        received: float,
        device: str = "",
        community: str = "",
        user: str = "",
        inform: bool = False,
        named: tuple[VarBind, ...] | None = None,
    ) -> TrapEvent:
        """The TrapEvent of one accepted trap, credited to ``device`` ("" when unknown).

        ``named``: the varbinds of ``raw`` already named (:meth:`varbinds`), as the v2c
        fast path takes them from its cache.
        """
        return _trap_event(
            source,
            port,
            version,
            trap_oid,
            self.trap_name(trap_oid),
            self.varbinds(raw) if named is None else named,
            uptime,
            received,
            device,
            community,
            user,
            inform,
            1,  # storm_count
            "",  # message_id: the receiver sets it under [cluster]
        )
