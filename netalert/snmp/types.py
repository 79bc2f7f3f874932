"""Values the SNMP stages hand to the rules: small, frozen, slotted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, TypeVar

__all__ = ["Sample", "SnmpType", "TrapEvent", "Value", "VarBind", "maker"]

_T = TypeVar("_T")

# A decoded SNMP value in Python form: int for INTEGER/counters/gauges/ticks,
# bytes for OCTET STRING and Opaque, str for IpAddress and OBJECT IDENTIFIER,
# None for NULL and the exceptions (noSuchObject, noSuchInstance, endOfMibView).
Value = int | float | bytes | str | None


class SnmpType(StrEnum):
    """The SMI type of a value as it came off the wire."""

    INTEGER = "INTEGER"
    OCTET_STRING = "OCTET STRING"
    NULL = "NULL"
    OID = "OBJECT IDENTIFIER"
    IP_ADDRESS = "IpAddress"
    COUNTER32 = "Counter32"
    GAUGE32 = "Gauge32"
    TIMETICKS = "TimeTicks"
    OPAQUE = "Opaque"
    COUNTER64 = "Counter64"
    NO_SUCH_OBJECT = "noSuchObject"
    NO_SUCH_INSTANCE = "noSuchInstance"
    END_OF_MIB_VIEW = "endOfMibView"


@dataclass(frozen=True, slots=True)
class VarBind:
    """One OID and its value, named through the MIB layer where possible.

    ``name`` is ``MODULE::object`` (empty when unknown), ``index`` the instance
    part after the object's OID (dotted, empty for a column-less OID), ``label``
    the enum label or the DISPLAY-HINT rendering of ``value`` (empty when none).
    """

    oid: str
    type: SnmpType
    value: Value
    name: str = ""
    index: str = ""
    label: str = ""


@dataclass(frozen=True, slots=True)
class Sample:
    """One polled value of one device."""

    device: str
    oid: str
    name: str
    index: str
    type: SnmpType
    value: Value
    label: str
    timestamp: float


@dataclass(frozen=True, slots=True)
class TrapEvent:
    """One accepted trap or inform, in its SNMPv2 form (RFC 3584 for v1)."""

    source: str
    source_port: int
    version: str  # "1" | "2c" | "3"
    trap_oid: str
    trap_name: str
    varbinds: tuple[VarBind, ...]
    uptime: int | None
    received: float
    device: str = ""
    community: str = ""
    user: str = ""
    inform: bool = False
    storm_count: int = 1
    # [cluster]: the receiver's ID of the datagram (the JetStream Nats-Msg-Id), so that
    # one trap received by two nodes is stored once; "" without [cluster]
    message_id: str = field(default="", repr=False, compare=False)


def maker(cls: type[_T]) -> Callable[..., _T]:
    """A constructor of the frozen, slotted dataclass ``cls`` for the trap path: every
    field positional, in order, no defaults; the same value as ``cls(...)``, made in a
    third of the time.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``,
    which looks the field up on the type every time (and setting a slot through its
    descriptor's ``__set__`` is a call of a C wrapper with a tuple of arguments). This
    makes an instance of a twin class with the same slots, not frozen, whose fields the
    interpreter sets as plainly as any attribute, and then gives it ``cls`` as its class:
    Python allows that only between classes of the same layout (it checks), and the
    object is then ``cls``'s in every way (frozen, equal, hashed, shown). A class that
    has no such twin (a base with slots of its own, a ``__dict__``) is made through its
    slots' descriptors. A test checks that both ways make equal values.
    """
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    twin = _twin(cls, names)
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_twin": twin}
    if twin is not None:
        body = ["    obj = _new(_twin)"]
        body += [f"    obj.{name} = {name}" for name in names]
        body.append("    obj.__class__ = _cls")
    else:
        body = ["    obj = _new(_cls)"]
        for n, name in enumerate(names):
            slot = next(k.__dict__[name] for k in cls.__mro__ if name in k.__dict__)
            scope[f"_set{n}"] = slot.__set__
            body.append(f"    _set{n}(obj, {name})")
    source = f"def make({', '.join(names)}):\n" + "\n".join(body) + "\n    return obj\n"
    exec(source, scope)  # noqa: S102 - the source is built from the field names above
    made: Callable[..., _T] = scope["make"]
    made.__qualname__ = made.__name__ = f"make_{cls.__name__}"
    return made


def _twin(cls: type[Any], names: list[str]) -> type[Any] | None:
    """A plain class of ``cls``'s layout (its slots, in its order), or None when ``cls``
    has another (slots inherited, a ``__dict__``, a ``__weakref__``) or Python refuses to
    turn the twin's instance into ``cls``'s."""
    slots = cls.__dict__.get("__slots__")
    if cls.__bases__ != (object,) or slots is None or tuple(slots) != tuple(names):
        return None
    twin = type(f"_{cls.__name__}Twin", (), {"__slots__": tuple(names)})
    probe: Any = object.__new__(twin)
    try:
        probe.__class__ = cls
    except TypeError:
        return None
    return twin
