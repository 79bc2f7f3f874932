"""Floats and doubles wrapped in an SNMP Opaque, as net-snmp sends them.

SMIv2 has no floating-point type. net-snmp (UCD-SNMP-MIB's ``laLoadFloat``,
``extend`` outputs, many vendor agents after it) follows the expired
draft-perkins-opaque: the Opaque's octets are themselves a BER value with an
extended application tag, ``9f 78`` for a 4-byte IEEE 754 float and ``9f 79``
for an 8-byte double, then the length and the big-endian bytes. Anything else
in an Opaque stays bytes.
"""

from __future__ import annotations

import math
import struct

__all__ = ["decode_opaque", "format_float", "render_opaque"]

_FLOAT = b"\x9f\x78\x04"
_DOUBLE = b"\x9f\x79\x08"


def decode_opaque(raw: bytes) -> float | None:
    """The float or double an Opaque carries, None when it carries something else.

    A float comes back as the shortest decimal that is the same float32
    (``2.08``, not ``2.0799999237060547``); the whole value must be the
    wrapped number, with nothing after it.
    """
    if len(raw) == 7 and raw.startswith(_FLOAT):
        (single,) = struct.unpack(">f", raw[3:])
        return float(format_float(single, single=True)) if math.isfinite(single) else single
    if len(raw) == 11 and raw.startswith(_DOUBLE):
        (double,) = struct.unpack(">d", raw[3:])
        return float(double)
    return None


def format_float(value: float, *, single: bool = False) -> str:
    """The shortest text that reads back as ``value`` (as a float32 with ``single``)."""
    if not math.isfinite(value):
        return str(value)
    if single:
        for digits in range(1, 10):
            text = f"{value:.{digits}g}"
            try:
                if struct.unpack(">f", struct.pack(">f", float(text)))[0] == value:
                    return _plain(text)
            except OverflowError:  # beyond float32 (a double, or rounded up past the top)
                continue
    return _plain(repr(value))


def _plain(text: str) -> str:
    # "1e+03" reads worse than "1000" for the magnitudes agents report
    if "e" in text:
        number = float(text)
        if 1e-4 <= abs(number) < 1e15:
            text = f"{number:f}".rstrip("0").rstrip(".")
    return text


def render_opaque(raw: bytes) -> str:
    """The number an Opaque carries as text (``"2.08"``), "" when it is not a float/double."""
    value = decode_opaque(raw)
    if value is None:
        return ""
    return format_float(value, single=raw.startswith(_FLOAT))
