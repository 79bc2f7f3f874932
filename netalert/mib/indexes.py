"""Row index decoding and encoding (RFC 2578 section 7.7), as pure functions.

An instance OID's suffix after a column carries the row's INDEX values in
order: an integer as one sub-identifier, an IpAddress as four, a fixed-length
string as its octets, a variable-length string or OBJECT IDENTIFIER as a length
then its sub-identifiers, except the last one when the INDEX says IMPLIED,
which takes the rest without a length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netalert.errors import MibError

__all__ = ["IndexPart", "decode_index", "encode_index"]

IndexValue = int | str | bytes
_INTEGERS = frozenset(
    {"INTEGER", "Integer32", "Unsigned32", "Gauge32", "Counter32", "Counter64", "TimeTicks"}
)
_TEXT_HINT = re.compile(r"^\d*[at]$")


@dataclass(frozen=True, slots=True)
class IndexPart:
    """One INDEX object: its name and what its encoding depends on.

    ``text`` marks a string shown as text (DisplayString, SnmpAdminString): it
    decodes to ``str`` when its octets are UTF-8, to ``bytes`` otherwise.
    ``network_address`` marks an SMIv1 NetworkAddress (an IpAddress after a tag).
    """

    name: str
    syntax: str
    fixed_size: int = 0
    text: bool = False
    network_address: bool = False

    @staticmethod
    def is_text(tc: str, display_hint: str) -> bool:
        """Whether a string type reads as text."""
        return tc in ("DisplayString", "SnmpAdminString") or bool(_TEXT_HINT.match(display_hint))


def decode_index(
    parts: Sequence[IndexPart], subids: Sequence[int], implied: bool = False
) -> dict[str, IndexValue]:
    """Splits an instance suffix into the values of the INDEX objects.

    Raises:
        MibError: The suffix is too short, too long or out of range for the INDEX.
    """
    out: dict[str, IndexValue] = {}
    pos = 0
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part.syntax in _INTEGERS:
            value: IndexValue = _take(subids, pos, 1, part)[0]
            pos += 1
        elif part.syntax == "IpAddress":
            if part.network_address:
                # RFC 1212 4.1.6: a NetworkAddress is its CHOICE tag (1, internet), then 4 octets.
                if _take(subids, pos, 1, part)[0] != 1:
                    raise MibError(f"index object {part.name}: not an internet NetworkAddress")
                pos += 1
            octets = _octets(_take(subids, pos, 4, part), part)
            value = ".".join(str(b) for b in octets)
            pos += 4
        elif part.syntax == "OBJECT IDENTIFIER":
            length = len(subids) - pos if implied and last else _take(subids, pos, 1, part)[0]
            pos += 0 if implied and last else 1
            value = ".".join(str(x) for x in _take(subids, pos, length, part))
            pos += length
        elif part.syntax in ("OCTET STRING", "Opaque", "BITS"):
            if part.fixed_size:
                length = part.fixed_size
            elif implied and last:
                length = len(subids) - pos
            else:
                length = _take(subids, pos, 1, part)[0]
                pos += 1
            raw = _octets(_take(subids, pos, length, part), part)
            pos += length
            value = _text(raw) if part.text else raw
        else:
            raise MibError(
                f"cannot decode index object {part.name}: unknown syntax {part.syntax!r}"
            )
        out[part.name] = value
    if pos != len(subids):
        extra = len(subids) - pos
        raise MibError(f"index has {extra} sub-identifier(s) more than its INDEX takes")
    return out


def encode_index(
    parts: Sequence[IndexPart], values: Mapping[str, IndexValue], implied: bool = False
) -> tuple[int, ...]:
    """The instance suffix of a row whose INDEX objects have ``values``.

    Raises:
        MibError: A value is missing or does not fit its INDEX object.
    """
    out: list[int] = []
    for i, part in enumerate(parts):
        if part.name not in values:
            raise MibError(f"no value for index object {part.name}")
        value = values[part.name]
        last = i == len(parts) - 1
        if part.syntax in _INTEGERS:
            if not isinstance(value, int) or value < 0:
                raise MibError(f"index object {part.name} needs a non-negative integer")
            out.append(value)
        elif part.syntax == "IpAddress":
            octets = [int(x) for x in str(value).split(".")]
            if len(octets) != 4 or any(not 0 <= x <= 255 for x in octets):
                raise MibError(f"index object {part.name} needs an IPv4 address")
            out += [1, *octets] if part.network_address else octets
        elif part.syntax == "OBJECT IDENTIFIER":
            subids = [int(x) for x in str(value).split(".")] if value != "" else []
            out += subids if implied and last else [len(subids), *subids]
        else:
            raw = value.encode() if isinstance(value, str) else bytes(value)
            if part.fixed_size:
                if len(raw) != part.fixed_size:
                    raise MibError(f"index object {part.name} needs {part.fixed_size} octets")
                out += raw
            else:
                out += list(raw) if implied and last else [len(raw), *raw]
    return tuple(out)


def _take(subids: Sequence[int], pos: int, count: int, part: IndexPart) -> Sequence[int]:
    if count < 0 or pos + count > len(subids):
        raise MibError(f"index too short for index object {part.name}")
    return subids[pos : pos + count]


def _octets(values: Sequence[int], part: IndexPart) -> bytes:
    if any(not 0 <= v <= 255 for v in values):
        raise MibError(f"index object {part.name}: a sub-identifier is not an octet (0-255)")
    return bytes(values)


def _text(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
