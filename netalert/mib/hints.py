"""DISPLAY-HINT rendering (RFC 2579 section 3.1) and the usual special cases.

Pure functions: a hint, a value, a string. A hint that does not parse renders
nothing (""), so a vendor's typo never breaks a mail.

Two conventions differ from the letter of the RFC because operators expect
them: hexadecimal octets are zero-padded (a MacAddress reads
``00:1a:2b:3c:4d:5e``, not ``0:1a:2b:...``), and DateAndTime reads
``2026-11-27 13:37:05.0 +01:00`` rather than its hint's ``2026-11-27,13:37:5.0,+1:0``.
InetAddress has no hint (its meaning depends on a sibling InetAddressType), so
its length decides: 4 octets IPv4, 16 IPv6, 8/20 with a zone index.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "render_date_and_time",
    "render_inet_address",
    "render_int",
    "render_octets",
]

_INT_HINT = re.compile(r"^([dxob])(?:-(\d+))?$")
_OCTET_SPEC = re.compile(r"(\*)?(\d+)([xdoat])([^\d*])?")


def render_int(hint: str, value: int) -> str:
    """Renders an integer by an INTEGER DISPLAY-HINT (``d``, ``d-2``, ``x``, ``o``, ``b``)."""
    match = _INT_HINT.match(hint.strip())
    if not match:
        return ""
    fmt, places = match.group(1), int(match.group(2) or 0)
    if fmt == "x":
        return format(value, "x")
    if fmt == "o":
        return format(value, "o")
    if fmt == "b":
        return format(value, "b")
    if not places:
        return str(value)
    sign = "-" if value < 0 else ""
    digits = str(abs(value)).rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def _parse_octet_hint(hint: str) -> list[tuple[bool, int, str, str, str]] | None:
    specs: list[tuple[bool, int, str, str, str]] = []
    pos = 0
    text = hint.strip()
    while pos < len(text):
        match = _OCTET_SPEC.match(text, pos)
        if not match:
            return None
        star, length, fmt, sep = match.group(1), int(match.group(2)), match.group(3), match.group(4)
        pos = match.end()
        terminator = ""
        # With a repeat indicator, a second non-digit character is the terminator.
        if star and sep and pos < len(text) and not text[pos].isdigit() and text[pos] != "*":
            terminator = text[pos]
            pos += 1
        specs.append((bool(star), length, fmt, sep or "", terminator))
    return specs or None


def _format_octets(chunk: bytes, fmt: str) -> str:
    if fmt in ("a", "t"):
        return chunk.decode("utf-8" if fmt == "t" else "ascii", errors="replace")
    number = int.from_bytes(chunk, "big")
    if fmt == "x":
        return format(number, f"0{2 * len(chunk)}x")
    if fmt == "o":
        return format(number, "o")
    return str(number)


def render_octets(hint: str, data: bytes) -> str:
    """Renders an OCTET STRING by its DISPLAY-HINT, e.g. ``1x:`` or ``255a``."""
    specs = _parse_octet_hint(hint)
    if specs is None:
        return ""
    out: list[str] = []
    pos = 0
    index = 0
    while pos < len(data):
        star, length, fmt, sep, terminator = specs[min(index, len(specs) - 1)]
        index += 1
        repeat = 1
        if star:
            repeat = data[pos]
            pos += 1
        for count in range(repeat):
            if pos >= len(data):
                break
            chunk = data[pos : pos + length] if length else b""
            pos += len(chunk)
            out.append(_format_octets(chunk, fmt))
            last = count == repeat - 1
            if star and last and terminator:
                out.append(terminator)
            elif sep and pos < len(data):
                out.append(sep)
        if length == 0 and not star:
            break
    text = "".join(out)
    return text.rstrip("\x00") if any(s[2] in "at" for s in specs) else text


def render_date_and_time(data: bytes) -> str:
    """Renders an SNMPv2-TC DateAndTime (8 or 11 octets); "" when malformed."""
    if len(data) not in (8, 11):
        return ""
    year = int.from_bytes(data[0:2], "big")
    month, day, hour, minute, second, decis = data[2:8]
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        return ""
    text = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}.{decis % 10}"
    if len(data) == 11:
        sign = chr(data[8]) if data[8] in (ord("+"), ord("-")) else "+"
        text += f" {sign}{data[9]:02d}:{data[10]:02d}"
    return text


def render_inet_address(data: bytes) -> str:
    """Renders an INET-ADDRESS-MIB InetAddress by its length; "" when unknown."""
    if len(data) == 4:
        return str(ipaddress.IPv4Address(data))
    if len(data) == 16:
        return str(ipaddress.IPv6Address(data))
    if len(data) == 8:
        return f"{ipaddress.IPv4Address(data[:4])}%{int.from_bytes(data[4:], 'big')}"
    if len(data) == 20:
        return f"{ipaddress.IPv6Address(data[:16])}%{int.from_bytes(data[16:], 'big')}"
    if data and all(0x21 <= b < 0x7F for b in data):
        return data.decode("ascii")  # InetAddressDNS
    return ""
