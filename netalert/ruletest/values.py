"""A value written in a rule test (``'down'``, ``3``, ``'eth0'``) as the wire would carry it.

The MIB decides the type: an enum label becomes its number, text for an
OCTET STRING becomes bytes, a name for an OBJECT IDENTIFIER its dotted OID.
The result is a raw varbind the agent's own naming code then labels, as it
labels what a device sends.
"""

from __future__ import annotations

from netalert.errors import MibError
from netalert.mib import MibTree
from netalert.snmp.naming import syntax_type
from netalert.snmp.types import SnmpType, Value
from netalert.snmp.wire.ber import RawVarBind

__all__ = ["raw_varbind"]

_BYTES = frozenset({"OCTET STRING", "Opaque", "BITS"})


def raw_varbind(tree: MibTree, name: str, value: int | float | str) -> RawVarBind:
    """The (OID, type, value) of ``name`` (``IF-MIB::ifOperStatus.3`` or dotted) = ``value``.

    Raises:
        ValueError: Unknown name, a label the MIB does not define, or a value
            that does not fit the object's type (the message says which).
    """
    try:
        oid = tree.oid_str(name)
        node, _ = tree.lookup(oid)
    except MibError as exc:
        raise ValueError(f"{name}: {exc}") from None
    raw: Value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{name}: SNMP carries whole numbers, got {value:g}")
        value = int(value)
    syntax = node.syntax if node is not None else ""
    if isinstance(value, int):
        raw = value
    elif node is not None and node.enums and syntax != "BITS":
        number = tree.enum_value(node, value)
        if number is None:
            labels = ", ".join(sorted(node.enums.values())[:8])
            raise ValueError(f"{name}: {value!r} is not one of its labels ({labels})")
        raw = number
    elif syntax == "OBJECT IDENTIFIER":
        try:
            raw = tree.oid_str(value)
        except MibError as exc:
            raise ValueError(f"{name}: {exc}") from None
    elif syntax == "IpAddress":
        raw = value
    elif syntax in _BYTES or node is None or not syntax:
        raw = value.encode("utf-8")
    else:
        raise ValueError(f"{name}: {syntax} needs a number, got {value!r}")
    wire = {int: SnmpType.INTEGER, bytes: SnmpType.OCTET_STRING, str: SnmpType.OID}[type(raw)]
    return oid, syntax_type(node, wire, raw), raw
