"""SNMP values as rule expressions see them, and as people read them.

An enumerated INTEGER becomes an :class:`EnumValue`: an ``int`` that also
equals its label, so ``ifOperStatus == 'down'`` and ``ifOperStatus == 2`` both
hold. An OCTET STRING becomes its DISPLAY-HINT rendering when the MIB gives
one (MacAddress), else its text as :func:`netalert.present.octets_text`
reads it (``ifDescr``; colon-separated hex when binary). A TimeTicks value
becomes :class:`Ticks`: a number of hundredths of a second in expressions and
templates, shown as a duration (``3d 4h``) when it is an alert's value.
Missing values (noSuchInstance and friends) are left out of the row, so an
expression that reads one is "unknown" rather than false.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from netalert.present import octets_text
from netalert.snmp.types import Value
from netalert.units import uptime

__all__ = [
    "Converter",
    "EnumValue",
    "OidValue",
    "Ticks",
    "converter_for",
    "enum_class",
    "plain_value",
    "render_value",
]

# Converts a raw SNMP value and its label (enum text / DISPLAY-HINT rendering,
# "" if none) into what expressions and templates see.
Converter = Callable[[Value, str], Any]


class EnumValue(int):
    """An enumerated INTEGER: equal to its number and to its label.

    Subclasses made by :func:`enum_class` carry the label table of one MIB
    object; instances are cached, so converting a value allocates nothing.
    """

    __slots__ = ()
    labels: Mapping[int, str] = {}

    @property
    def label(self) -> str:
        """The enum label, or the number as text when the MIB has none for it."""
        return self.labels.get(int(self), str(int(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return other == self.labels.get(int(self))
        return int.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = int.__hash__

    def __str__(self) -> str:
        return self.label

    def __repr__(self) -> str:
        return f"{self.label}({int(self)})"


class OidValue(str):
    """An OBJECT IDENTIFIER value: equal to its dotted form and to its MIB name.

    ``hrStorageType == 'hrStorageFixedDisk'``,
    ``== 'HOST-RESOURCES-TYPES::hrStorageFixedDisk'`` and
    ``== '1.3.6.1.2.1.25.2.1.4'`` all hold. It prints as its name when known.
    """

    name: str

    def __new__(cls, dotted: str, name: str = "") -> OidValue:
        value = super().__new__(cls, dotted.lstrip("."))
        value.name = name
        return value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str):
            return False
        text = other.lstrip(".")
        if str.__eq__(self, text):
            return True
        return bool(self.name) and text in (self.name, self.name.rpartition("::")[2])

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.name or str.__str__(self)


class Ticks(int):
    """A TimeTicks value (``sysUpTime``): hundredths of a second.

    It is an ``int`` everywhere (``sysUpTime < 90000``, ``{{ sysUpTime }}``
    prints the number); only :func:`render_value`, which makes an alert's
    shown value, writes it as a duration. Arithmetic gives plain numbers.
    """

    __slots__ = ()

    def __str__(self) -> str:
        return int.__repr__(self)

    __repr__ = __str__


def enum_class(name: str, labels: Mapping[int, str]) -> type[EnumValue]:
    """Returns an EnumValue subclass for one MIB object's enumeration."""
    return type(f"{name}Enum", (EnumValue,), {"__slots__": (), "labels": dict(labels)})


def _plain(raw: Value, label: str) -> Any:
    if isinstance(raw, bytes):
        return label or octets_text(raw)
    return raw


def plain_value(raw: Value) -> Any:
    """A value no MIB describes, as expressions see it: numbers as numbers, octets as text."""
    return _plain(raw, "")


def converter_for(name: str, syntax: str, enums: Mapping[int, str], hinted: bool) -> Converter:
    """Returns the converter for one MIB object.

    Args:
        name: The object's short name (names the enum class in reprs).
        syntax: Its base SMI type ("INTEGER", "OCTET STRING", ...; "" if unknown).
        enums: Its enumeration (empty when none).
        hinted: True when its label is a DISPLAY-HINT rendering worth preferring
            to the raw text (MacAddress, DateAndTime, InetAddress).
    """
    if enums:
        cls = enum_class(name, enums)
        cache: dict[int, EnumValue] = {}

        def enum(raw: Value, label: str) -> Any:
            if not isinstance(raw, int):
                return _plain(raw, label)
            value = cache.get(raw)
            if value is None:
                value = cache[raw] = cls(raw)
            return value

        return enum
    if syntax == "TimeTicks":

        def ticks(raw: Value, label: str) -> Any:
            return Ticks(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw

        return ticks
    if syntax in ("OCTET STRING", "Opaque") or hinted:

        def octets(raw: Value, label: str) -> Any:
            if isinstance(raw, bytes):
                return (label if hinted else "") or octets_text(raw)
            return raw

        return octets
    return _plain


def render_value(value: Any) -> str:
    """A value as people read it in a mail: ``down``, ``93.5``, ``1200``, ``eth0``, ``3d 4h``
    (TimeTicks)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, EnumValue):
        return value.label
    if isinstance(value, Ticks):
        return uptime(int(value))
    if isinstance(value, OidValue):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}".rstrip("0").rstrip(".")
        return f"{value:.3g}"
    if isinstance(value, bytes):
        return octets_text(value)
    return str(value)
