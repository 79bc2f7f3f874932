"""A decoded trap on the wire between nodes: compact JSON, and its message ID.

:func:`encode` writes a :class:`TrapEvent` as one JSON array (fields by position,
no names), a varbind as ``[oid, type, kind, value, name, index, label]`` where
``kind`` says how the value is written (``i`` int, ``f`` float, ``s`` str, ``b``
bytes in base64, ``n`` none). The first element is the format version;
:func:`decode` refuses another version and any other shape (:class:`CodecError`),
and whatever no receiver writes: numbers outside their SNMP range, non-finite
JSON constants, text that cannot be stored (lone surrogates), too many varbinds.

:func:`message_id` is the JetStream ``Nats-Msg-Id`` of a received trap: the same
datagram received by two nodes gives the same ID, and JetStream stores it once
within its duplicate window.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from typing import Any

from netalert.cluster.errors import CodecError
from netalert.snmp.types import SnmpType, TrapEvent, Value, VarBind

__all__ = ["FORMAT", "MAX_MESSAGE_BYTES", "MAX_VARBINDS", "decode", "encode", "message_id"]

FORMAT = 1
# A trap datagram is at most 64 KiB; its decoded form in base64 and JSON stays under 4x that.
MAX_MESSAGE_BYTES = 256 * 1024
# The highest [traps].max_varbinds: no receiver publishes a trap with more.
MAX_VARBINDS = 1024
_VERSIONS = ("1", "2c", "3")
_UINT32 = 2**32 - 1  # TimeTicks
_INT_MAX_SIGNED = 2**63 - 1
# SNMP integers span Integer32 to Counter64
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def message_id(source: str, engine_id: bytes, pdu: bytes) -> str:
    """The ID of one received trap: a hash of its source address (without the port),
    the sender's SNMPv3 engine ID (``b""`` for v1/v2c) and the PDU's bytes (for v3,
    the decrypted scoped PDU: each receiver's copy is encrypted apart)."""
    digest = hashlib.blake2b(digest_size=20, person=b"netalert-trap")
    for part in (source.encode(), engine_id, pdu):
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return digest.hexdigest()


def _value(value: Value) -> tuple[str, Any]:
    if value is None:
        return "n", None
    if isinstance(value, bool):  # not a Value, but an int to isinstance
        raise TypeError("a bool is not an SNMP value")
    if isinstance(value, int):
        return "i", value
    if isinstance(value, float):
        # JSON has no NaN or infinity: write them as text, as float() reads them back
        return ("f", value) if math.isfinite(value) else ("F", repr(value))
    if isinstance(value, bytes):
        return "b", base64.b64encode(value).decode("ascii")
    return "s", value


def encode(trap: TrapEvent) -> bytes:
    """The trap as compact JSON bytes."""
    varbinds = []
    for vb in trap.varbinds:
        kind, value = _value(vb.value)
        varbinds.append([vb.oid, vb.type.value, kind, value, vb.name, vb.index, vb.label])
    record = [
        FORMAT,
        trap.source,
        trap.source_port,
        trap.version,
        trap.trap_oid,
        trap.trap_name,
        varbinds,
        trap.uptime,
        trap.received,
        trap.device,
        trap.community,
        trap.user,
        trap.inform,
        trap.storm_count,
    ]
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


def _want(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise CodecError(f"trap message: {what} has the wrong type")
    return value


def _text(value: Any, what: str) -> str:
    text: str = _want(value, str, what)
    try:  # a lone surrogate (a JSON "\ud800") is no text a receiver makes, nor can store
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise CodecError(f"trap message: {what} is not UTF-8 text") from None
    return text


def _int(value: Any, what: str, low: int, high: int) -> int:
    number: int = _want(value, int, what)
    if not low <= number <= high:
        raise CodecError(f"trap message: {what} is out of range")
    return number


def _decode_value(kind: Any, value: Any) -> Value:
    if kind == "n" and value is None:
        return None
    if kind == "i":
        return _int(value, "an integer value", _INT_MIN, _INT_MAX)
    if kind == "f":
        return float(_want(value, (int, float), "a float value"))
    if kind == "F" and value in ("nan", "inf", "-inf"):
        return float(value)
    if kind == "s":
        return _text(value, "a text value")
    if kind == "b":
        try:
            return base64.b64decode(_want(value, str, "a bytes value"), validate=True)
        except binascii.Error:
            raise CodecError("trap message: a bytes value is not base64") from None
    raise CodecError(f"trap message: unknown value kind {kind!r}")


def _varbind(item: Any) -> VarBind:
    if not isinstance(item, list) or len(item) != 7:
        raise CodecError("trap message: a varbind is not a list of 7")
    oid, type_name, kind, value, name, index, label = item
    try:
        snmp_type = SnmpType(_want(type_name, str, "a varbind type"))
    except ValueError:
        raise CodecError(f"trap message: unknown SNMP type {type_name!r}") from None
    return VarBind(
        oid=_text(oid, "a varbind OID"),
        type=snmp_type,
        value=_decode_value(kind, value),
        name=_text(name, "a varbind name"),
        index=_text(index, "a varbind index"),
        label=_text(label, "a varbind label"),
    )


def _strict(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def decode(data: bytes) -> TrapEvent:
    """The trap :func:`encode` wrote.

    Raises:
        CodecError: ``data`` is too large, not JSON, of another format version, or
            not the shape of a trap (wrong types, numbers out of their range, text
            that is not UTF-8, more than :data:`MAX_VARBINDS` varbinds); its
            ``reason`` says which.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise CodecError(
            f"trap message of {len(data)} bytes, over {MAX_MESSAGE_BYTES}", "too_large"
        )
    try:
        record = json.loads(data, parse_constant=_strict)
    except (ValueError, RecursionError):
        raise CodecError("trap message is not JSON", "not_json") from None
    if not isinstance(record, list) or not record or record[0] != FORMAT:
        raise CodecError(f"trap message is not of format {FORMAT}", "wrong_version")
    if len(record) != 14:
        raise CodecError("trap message: wrong number of fields")
    (_, source, port, version, oid, name, varbinds, uptime, received, device, community,
     user, inform, storm) = record  # fmt: skip
    if uptime is not None:
        uptime = _int(uptime, "uptime", 0, _UINT32)
    if version not in _VERSIONS:
        raise CodecError("trap message: version is not 1, 2c or 3")
    if len(_want(varbinds, list, "varbinds")) > MAX_VARBINDS:
        raise CodecError(f"trap message: more than {MAX_VARBINDS} varbinds")
    when = float(_want(received, (int, float), "received"))
    if not (math.isfinite(when) and when >= 0):
        raise CodecError("trap message: received is out of range")
    return TrapEvent(
        source=_text(source, "source"),
        source_port=_int(port, "source_port", 0, 65535),
        version=version,
        trap_oid=_text(oid, "trap_oid"),
        trap_name=_text(name, "trap_name"),
        varbinds=tuple(_varbind(item) for item in varbinds),
        uptime=uptime,
        received=when,
        device=_text(device, "device"),
        community=_text(community, "community"),
        user=_text(user, "user"),
        inform=_want(inform, bool, "inform"),
        storm_count=_int(storm, "storm_count", 0, _INT_MAX_SIGNED),
    )
