"""SNMP values as people read them and as JSON carries them: the one place.

Every output that shows an SNMP value renders it here: mails
(:mod:`netalert.mail.views`), the status page (:mod:`netalert.web.live`), the
commands (``netalert poll``, ``traps``, ``alerts --json``, ``mib translate``),
the log, and the labels the naming stage gives samples and trap varbinds
(which rule expressions compare with). One value reads the same everywhere:

============================  ==========================================
value                         text
============================  ==========================================
enumerated INTEGER            ``down(2)`` (any integer whose label differs
                              from its number: ``12.34(1234)`` by a
                              DISPLAY-HINT, ``1d 00:00:00.00(8640000)``)
TimeTicks                     ``1d 00:00:00.00(8640000)``
Counter, Gauge, INTEGER       ``1200``
OCTET STRING                  its DISPLAY-HINT rendering when the MIB has
                              one (``00:1a:2b:3c:4d:5e``); else its text when
                              it is UTF-8 of printable characters, TAB, CR
                              and LF (trailing NUL, CR and LF dropped); else
                              colon-separated hex (``00:ff:10``)
OBJECT IDENTIFIER             its MIB name (``IF-MIB::linkDown``), else dotted
IpAddress                     ``192.0.2.1``
Opaque float or double        the shortest decimal (``2.08``)
NULL, noSuchInstance, ...     ``NULL``, ``noSuchInstance``, ...
============================  ==========================================

The text is not escaped: each medium escapes it its own way (the log and the
terminal with :func:`netalert.logtext.escape`, a mail with
:mod:`netalert.mail.headers`, the status page as text in the DOM). It is
bounded: with a ``limit``, at most ``limit`` characters come back (cut ones
end in ``mark``) and only about ``limit`` bytes of a long value are looked at.

In JSON (``poll --json``, ``traps --json``, ``alerts --json``, the alert
records in the database) a number or a text is itself and bytes are
``{"hex": "00ff10"}`` (:func:`json_value`): a JSON reader tells them apart
without knowing the SNMP type, and :func:`value_from_json` reads every value
back exactly. An alert's *value* (what a rule computed, ``93.5``,
``3d 4h``) is not an SNMP value: :func:`netalert.rules.values.render_value`
writes it.
"""

from __future__ import annotations

import base64
import codecs
import math
from typing import Any

from netalert.snmp.types import SnmpType, Value, VarBind
from netalert.snmp.wire.opaque import format_float, render_opaque

__all__ = [
    "JsonValue",
    "clip",
    "hex_text",
    "json_value",
    "octets_text",
    "timeticks_text",
    "value_from_json",
    "value_text",
    "varbind_from_json",
    "varbind_json",
]

JsonValue = int | float | str | dict[str, str] | None

_ELLIPSIS = "…"
_PADDING = b"\x00\r\n"  # agents pad DisplayStrings with NULs and end them with CR/LF
_ALLOWED = frozenset("\t\r\n")  # DisplayString (NVT ASCII) allows these controls
_EXCEPTIONS = frozenset(
    {SnmpType.NO_SUCH_OBJECT, SnmpType.NO_SUCH_INSTANCE, SnmpType.END_OF_MIB_VIEW}
)


def clip(text: str, limit: int | None, *, cut: bool = False, mark: str = _ELLIPSIS) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and ``mark``.

    ``cut`` says the text was already cut from something longer: it is marked
    whatever its length. The result has at most ``max(limit, len(mark))``
    characters; ``limit`` None keeps the text whole.
    """
    if limit is None or (len(text) <= limit and not cut):
        return text
    return text[: max(0, limit - len(mark))].rstrip() + mark


def hex_text(raw: bytes, *, limit: int | None = None, mark: str = _ELLIPSIS) -> str:
    """``00:1a:2b``: lowercase octets separated by colons (see :func:`clip` for ``limit``)."""
    if limit is None:
        return raw.hex(":")
    shown = limit // 3 + 1  # three characters an octet: look at no more than that
    return clip(raw[:shown].hex(":"), limit, cut=len(raw) > shown, mark=mark)


def _printable(text: str) -> bool:
    return text.isprintable() or all(c.isprintable() or c in _ALLOWED for c in text)


def octets_text(raw: bytes, *, limit: int | None = None, mark: str = _ELLIPSIS) -> str:
    """An OCTET STRING as text when it is printable UTF-8, else as :func:`hex_text`.

    Trailing NUL, CR and LF are padding, not content; a value of padding only
    is binary. Whether the value is text is decided on the part that is
    shown. Never raises.
    """
    if limit is None:
        try:  # the common case first: a short printable string
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex(":")
        if text.isprintable() and text:
            return text
    body = raw.rstrip(_PADDING)
    if body:
        cut = limit is not None and len(body) > limit
        head = body[:limit] if cut else body
        try:
            # a cut may split a character: the incremental decoder leaves it out
            text = codecs.getincrementaldecoder("utf-8")().decode(head, final=not cut)
        except UnicodeDecodeError:
            pass
        else:
            if _printable(text):
                return clip(text, limit, cut=cut, mark=mark)
    return hex_text(raw, limit=limit, mark=mark)


def timeticks_text(value: int) -> str:
    """TimeTicks (hundredths of a second) as ``3d 04:05:06.07``, the way net-snmp counts."""
    if value < 0:
        return str(value)
    # Every trap's sysUpTime.0 is shown so: one %-format costs 40 % fewer instructions
    # than four format specs (and no divmod tuples).
    seconds = value // 100
    clock = "%02d:%02d:%02d.%02d" % (  # noqa: UP031
        seconds // 3600 % 24,
        seconds // 60 % 60,
        seconds % 60,
        value % 100,
    )
    days = seconds // 86400
    return f"{days}d {clock}" if days else clock


def _number(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # more digits than Python prints: no SNMP type has them
        return f"<{value.bit_length()}-bit integer>"


def _bytes_text(kind: SnmpType | None, raw: bytes, limit: int | None, mark: str) -> str:
    if kind is SnmpType.OPAQUE:
        number = render_opaque(raw)
        if number:
            return number
    return octets_text(raw, limit=limit, mark=mark)


def value_text(
    kind: SnmpType | None,
    value: Value,
    label: str = "",
    *,
    limit: int | None = None,
    mark: str = _ELLIPSIS,
) -> str:
    """One SNMP value as people read it (the table in this module's docstring).

    Args:
        kind: The value's type (None when unknown: the Python type decides).
        value: The value as decoded.
        label: Its enum label, DISPLAY-HINT rendering or MIB name ("" if none).
        limit: At most this many characters (see :func:`clip`); None: whole.
        mark: What ends a cut text.

    Never raises.
    """
    if value is None:
        text = kind.value if kind in _EXCEPTIONS and kind is not None else "NULL"
    elif isinstance(value, bool):  # not an SNMP type; a rule's truth value
        text = "true" if value else "false"
    elif isinstance(value, int):
        if not label and kind is SnmpType.TIMETICKS:
            label = timeticks_text(value)
        number = _number(value)
        text = f"{label}({number})" if label and label != number else number
    elif isinstance(value, float):
        text = label or format_float(value)
    elif isinstance(value, bytes):
        if not label:
            return _bytes_text(kind, value, limit, mark)
        text = label
    else:  # an OBJECT IDENTIFIER or IpAddress
        text = label or str(value)
    return clip(text, limit, mark=mark)


def json_value(value: Value) -> JsonValue:
    """``value`` as JSON carries it: numbers, text and None as they are; what JSON
    cannot hold as itself is an object that names its encoding: bytes as
    ``{"hex": "00ff10"}`` (lowercase, no separators), a NaN or an infinity as
    ``{"float": "inf"}``."""
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": str(value)}
    return value


def value_from_json(data: object) -> Value:
    """The value :func:`json_value` wrote; None for anything else.

    Also reads ``{"b64": ...}``, how alert records stored bytes before.
    """
    if isinstance(data, dict):
        try:
            if "hex" in data:
                return bytes.fromhex(str(data["hex"]))
            if "float" in data and str(data["float"]) in ("nan", "inf", "-inf"):
                return float(str(data["float"]))
            return base64.b64decode(str(data["b64"]), validate=True)
        except (KeyError, ValueError):
            return None
    if data is None or isinstance(data, bool):
        return None
    if isinstance(data, int | float | str):
        return data
    return None


def varbind_json(vb: VarBind) -> dict[str, JsonValue]:
    """A varbind as JSON: ``oid``, ``type``, ``value`` (:func:`json_value`), ``name``,
    ``index``, ``label``."""
    # the fields by hand: dataclasses.asdict deep-copies, and would cost a third
    # of a trap's write to the alert records
    return {
        "oid": vb.oid,
        "type": vb.type.value,
        "value": json_value(vb.value),
        "name": vb.name,
        "index": vb.index,
        "label": vb.label,
    }


def varbind_from_json(data: dict[str, Any]) -> VarBind:
    """The varbind :func:`varbind_json` wrote.

    Raises:
        KeyError: No ``oid`` or ``type``.
        ValueError: An unknown ``type``.
    """
    return VarBind(
        oid=data["oid"],
        type=SnmpType(data["type"]),
        value=value_from_json(data.get("value")),
        name=data.get("name", ""),
        index=data.get("index", ""),
        label=data.get("label", ""),
    )
