"""Turning raw VarBinds into named, typed :class:`Sample` values through the MIB layer.

Pure apart from the MIB tree's caches: no I/O. The type of a sample is the MIB's
syntax when the object is known (so gufo's untyped ints become Counter32,
TimeTicks...; both backends then agree), else the wire type.

Every value gets a name where one exists: an enum its label, an OBJECT
IDENTIFIER value its MIB name (``HOST-RESOURCES-TYPES::hrStorageFixedDisk``),
an Opaque-wrapped float or double its number (the value becomes that float).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from netalert.errors import MibError
from netalert.mib.node import MibNode
from netalert.present import octets_text, timeticks_text
from netalert.snmp.types import Sample, SnmpType, Value, VarBind, maker
from netalert.snmp.wire.opaque import decode_opaque, format_float, render_opaque

__all__ = ["MibTreeLike", "Namer", "oid_label", "opaque_value", "syntax_type"]


class MibTreeLike(Protocol):
    """What the poller, the trap receiver and the rules read of :class:`netalert.mib.MibTree`."""

    def lookup(self, oid: str | tuple[int, ...]) -> tuple[MibNode | None, str]: ...

    def label(self, node: MibNode, value: Value) -> str: ...

    # ``node`` is typed Any: the rules hold nodes through their own MibNodeLike protocol
    def decode_index(self, node: Any, index: str) -> dict[str, int | str | bytes]: ...

    def oid_str(self, name: str) -> str: ...

    def oid(self, name: str) -> tuple[int, ...]: ...

    def node(self, name: str) -> MibNode: ...

    def name(self, oid: str | tuple[int, ...]) -> str: ...

    def notification_objects(self, trap_oid: str) -> list[str]: ...


_SYNTAX: Mapping[str, SnmpType] = {
    "INTEGER": SnmpType.INTEGER,
    "Integer32": SnmpType.INTEGER,
    "Unsigned32": SnmpType.GAUGE32,
    "Gauge32": SnmpType.GAUGE32,
    "Counter32": SnmpType.COUNTER32,
    "Counter64": SnmpType.COUNTER64,
    "TimeTicks": SnmpType.TIMETICKS,
    "IpAddress": SnmpType.IP_ADDRESS,
    "Opaque": SnmpType.OPAQUE,
    "OCTET STRING": SnmpType.OCTET_STRING,
    "BITS": SnmpType.OCTET_STRING,
    "OBJECT IDENTIFIER": SnmpType.OID,
}
_INTS = frozenset(
    {
        SnmpType.INTEGER,
        SnmpType.GAUGE32,
        SnmpType.COUNTER32,
        SnmpType.COUNTER64,
        SnmpType.TIMETICKS,
    }
)
_TEXTS = frozenset({SnmpType.IP_ADDRESS, SnmpType.OID})
_BYTES = frozenset({SnmpType.OCTET_STRING, SnmpType.OPAQUE})
_EXCEPTIONS = frozenset(
    {SnmpType.NO_SUCH_OBJECT, SnmpType.NO_SUCH_INSTANCE, SnmpType.END_OF_MIB_VIEW, SnmpType.NULL}
)


# Sample(device, oid, name, index, type, value, label, timestamp) through its slots
_sample = maker(Sample)
# The Python value types each MIB syntax type accepts (what _fitting tests): one
# dict lookup per sample for the usual exact types; anything else goes to _fitting.
_FITS: dict[SnmpType, dict[type, SnmpType]] = {
    **{t: {int: t} for t in _INTS},
    **{t: {str: t} for t in _TEXTS},
    SnmpType.OCTET_STRING: {bytes: SnmpType.OCTET_STRING},
    SnmpType.OPAQUE: {bytes: SnmpType.OPAQUE, float: SnmpType.OPAQUE},
}
_NO_FITS: dict[type, SnmpType] = {}
# Bound of the per-OID plans a Namer keeps (cleared when full): instances, not objects.
_OID_PLANS = 200_000


def syntax_type(node: MibNode | None, wire: SnmpType, value: Value) -> SnmpType:
    """The sample's type: the MIB syntax when known and compatible with ``value``."""
    if node is None or wire in _EXCEPTIONS:
        return wire
    typed = _SYNTAX.get(node.syntax)
    if typed is None:
        return wire
    return _fitting(typed, wire, value)


def _fitting(typed: SnmpType, wire: SnmpType, value: Value) -> SnmpType:
    # Trust the MIB only where the Python value fits it: a misbehaving agent
    # sending a string for an integer keeps its wire type.
    if isinstance(value, int) and typed in _INTS:
        return typed
    if isinstance(value, str) and typed in _TEXTS:
        return typed
    if isinstance(value, bytes) and typed in _BYTES:
        return typed
    if isinstance(value, float) and typed is SnmpType.OPAQUE:
        return typed
    return wire


def opaque_value(kind: SnmpType, value: Value) -> tuple[Value, str]:
    """An Opaque's float or double as ``(number, "2.08")``; other values unchanged, label "".

    A backend that decoded the float itself hands a float: it is labelled as well.
    """
    if kind is not SnmpType.OPAQUE:
        return value, ""
    if isinstance(value, bytes):
        number = decode_opaque(value)
        return (number, render_opaque(value)) if number is not None else (value, "")
    if isinstance(value, float):
        return value, format_float(value, single=True)
    return value, ""


def oid_label(tree: MibTreeLike, value: str) -> str:
    """An OBJECT IDENTIFIER value's MIB name (``NET-SNMP-TC::linux``); "" when no MIB names
    any part of it or it is not an OID."""
    try:
        name = tree.name(value.lstrip("."))
    except (MibError, LookupError, ValueError, TypeError):  # a malformed OID from the device
        return ""
    return "" if name.replace(".", "").isdigit() else name


class Namer:
    """Names VarBinds of one MIB tree; keeps a small per-prefix cache of nodes."""

    def __init__(self, tree: MibTreeLike) -> None:
        self.tree = tree
        self._index_cache: dict[tuple[tuple[int, ...], str], Mapping[str, int | str | bytes]] = {}
        self._entries: dict[tuple[int, ...], str] = {}
        self._labels: dict[tuple[tuple[int, ...], SnmpType, bytes | str], str] = {}
        self._plans: dict[tuple[int, ...], tuple[str, SnmpType | None, bool]] = {}
        # per OID (instance) as the agent sends it: its node, index and node plan
        self._oid_plans: dict[
            str,
            tuple[MibNode | None, str, str, SnmpType | None, bool, dict[type, SnmpType]],
        ] = {}

    def entry_name(self, column: MibNode) -> str:
        """The row object's name of a column (``IF-MIB::ifEntry`` for ifDescr)."""
        parent = column.oid[:-1]
        name = self._entries.get(parent)
        if name is None:
            node, index = self.tree.lookup(parent)
            name = node.full_name if node is not None and not index else ""
            self._entries[parent] = name
        return name

    def _plan(self, node: MibNode) -> tuple[str, SnmpType | None, bool]:
        """What every sample of ``node`` shares, worked out once per object: its
        ``MODULE::name``, the SnmpType of its syntax (None when no SMI type maps)
        and whether its values take a label (enum or DISPLAY-HINT)."""
        plan = self._plans.get(node.oid)
        if plan is None:
            typed = _SYNTAX.get(node.syntax)
            plan = (node.full_name, typed, bool(node.enums or node.display_hint))
            self._plans[node.oid] = plan
        return plan

    def _oid_plan(
        self, oid: str
    ) -> tuple[MibNode | None, str, str, SnmpType | None, bool, dict[type, SnmpType]]:
        """What every sample of the instance ``oid`` shares: its node and index, and
        its node's plan (:meth:`_plan`) with the value types its syntax accepts as is."""
        node, index = self.tree.lookup(oid)
        if node is None:
            plan: tuple[MibNode | None, str, str, SnmpType | None, bool, dict[type, SnmpType]]
            plan = (None, "", "", None, False, _NO_FITS)
        else:
            name, typed, labelled = self._plan(node)
            fits = _NO_FITS if typed is None else _FITS.get(typed, _NO_FITS)
            plan = (node, index, name, typed, labelled, fits)
        if len(self._oid_plans) >= _OID_PLANS:
            self._oid_plans.clear()
        self._oid_plans[oid] = plan
        return plan

    def sample(self, device: str, vb: VarBind, timestamp: float) -> tuple[Sample, MibNode | None]:
        """The named Sample of ``vb`` and the MIB node it belongs to (None if unknown)."""
        oid, wire, value = vb.oid, vb.type, vb.value
        plan = self._oid_plans.get(oid)
        if plan is None:
            plan = self._oid_plan(oid)
        node, index, name, typed, labelled, fits = plan
        if typed is None or wire in _EXCEPTIONS:
            kind = wire
        else:
            kind = fits.get(type(value)) or _fitting(typed, wire, value)
        label = ""
        if kind is SnmpType.OPAQUE:
            value, label = opaque_value(kind, value)
        if label:
            pass  # an Opaque float or double: its rendering is the label
        elif isinstance(value, bytes):
            # Strings repeat poll after poll (ifDescr, sysName): render each once.
            key: tuple[tuple[int, ...], SnmpType, bytes | str] = (
                node.oid if node is not None else (),
                kind,
                value,
            )
            cached = self._labels.get(key)
            if cached is None:
                if node is not None and kind not in _EXCEPTIONS:
                    cached = self.tree.label(node, value)
                if not cached and kind is SnmpType.OCTET_STRING:
                    cached = octets_text(value)
                if len(self._labels) > 100_000:
                    self._labels.clear()
                self._labels[key] = cached = cached or ""
            label = cached
        elif kind is SnmpType.OID and isinstance(value, str):
            # the same OID values (sysObjectID, hrStorageType) repeat poll after poll
            key = ((), kind, value)
            cached = self._labels.get(key)
            if cached is None:
                if len(self._labels) > 100_000:
                    self._labels.clear()
                self._labels[key] = cached = oid_label(self.tree, value)
            label = cached
        elif labelled and node is not None and kind not in _EXCEPTIONS:
            label = self.tree.label(node, value)
        elif kind is SnmpType.TIMETICKS and isinstance(value, int):
            label = timeticks_text(value)
        return _sample(device, oid, name, index, kind, value, label, timestamp), node

    def index_values(self, node: MibNode, index: str) -> Mapping[str, int | str | bytes]:
        """The decoded INDEX of a row (``{"ifIndex": 2}``); empty when undecodable."""
        key = (node.oid, index)
        found = self._index_cache.get(key)
        if found is None:
            try:
                found = self.tree.decode_index(node, index)
            except Exception:
                found = {}
            if len(self._index_cache) > 200_000:
                self._index_cache.clear()
            self._index_cache[key] = found
        return found
