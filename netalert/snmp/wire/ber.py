"""A strict, fast BER decoder for SNMPv1/v2c messages.

The encoder is :mod:`netalert.snmp.wire.berenc`.

pyasn1 spends ~0.5 ms on a six-varbind trap because it builds a typed object
tree; the receiver needs plain values, so this module walks the bytes once.

Strict means: definite lengths only, primitive encodings for simple types
(RFC 3417 section 8), every length exactly filling its container, no bytes
after the message, values inside their SMI ranges, OIDs of at most 128
sub-identifiers below 2**32 (RFC 2578 section 3.5). Nesting is bounded by the
fixed shape of an SNMP message. :func:`decode_message` never raises: it
returns a :class:`Message` or a :class:`DecodeError` naming the reason.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from enum import IntEnum

from netalert.snmp.types import SnmpType, Value, maker

__all__ = [
    "MAX_MESSAGE",
    "MAX_VARBINDS",
    "DecodeError",
    "Message",
    "PduType",
    "RawVarBind",
    "V1Trap",
    "decode_message",
    "decode_varbind",
    "message_version",
]

MAX_MESSAGE = 65535  # the largest UDP payload; anything longer did not come off a socket
MAX_VARBINDS = 1024  # far above any real trap; caps the work one datagram can cause
_MAX_SUBIDS = 128
_MAX_SUBID = 0xFFFFFFFF
_MAX_SUBID_BYTES = 5  # 7 bits each: 35 bits hold any sub-identifier below 2**32
_MAX_OID_BYTES = _MAX_SUBIDS * _MAX_SUBID_BYTES
_I32_MIN, _I32_MAX = -0x80000000, 0x7FFFFFFF
_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF


class PduType(IntEnum):
    """Context tags of the SNMP PDUs (RFC 1157, RFC 3416)."""

    GET = 0xA0
    GET_NEXT = 0xA1
    RESPONSE = 0xA2
    SET = 0xA3
    TRAP_V1 = 0xA4
    GET_BULK = 0xA5
    INFORM = 0xA6
    TRAP_V2 = 0xA7
    REPORT = 0xA8


_V1_PDUS = frozenset({0xA0, 0xA1, 0xA2, 0xA3, 0xA4})
_V2_PDUS = frozenset({0xA0, 0xA1, 0xA2, 0xA3, 0xA5, 0xA6, 0xA7, 0xA8})

# (oid, type, value): the decoder's varbind, turned into a named VarBind later.
RawVarBind = tuple[str, SnmpType, Value]


@dataclass(frozen=True, slots=True)
class V1Trap:
    """The fields only an SNMPv1 Trap-PDU has (RFC 1157 section 4.1.6)."""

    enterprise: str
    agent_addr: str
    generic: int
    specific: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded SNMPv1 or v2c message.

    ``version`` is the wire value (0 for v1, 1 for v2c). For GetBulk,
    ``error_status`` and ``error_index`` hold non-repeaters and
    max-repetitions. ``varbinds_at`` is the (start, end) of the encoded
    VarBindList in the datagram, so a Response can echo it byte for byte.
    """

    version: int
    community: bytes
    pdu_type: int
    request_id: int
    error_status: int
    error_index: int
    varbinds: tuple[RawVarBind, ...]
    v1_trap: V1Trap | None = None
    varbinds_at: tuple[int, int] = (0, 0)


_message = maker(Message)  # every datagram makes one: the fast constructor


@dataclass(frozen=True, slots=True)
class DecodeError:
    """Why a datagram is not a well-formed SNMP message, and where."""

    reason: str
    offset: int


class _Bad(Exception):
    """Internal: aborts a decode; never leaves this module."""

    def __init__(self, reason: str, offset: int) -> None:
        self.reason = reason
        self.offset = offset


def _header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Reads one tag and length at ``pos``; returns (tag, content start, content end)."""
    if pos + 2 > end:
        raise _Bad("truncated", pos)
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise _Bad("bad_tag", pos)  # multi-byte tag numbers never occur in SNMP
    first = data[pos + 1]
    if first < 0x80:
        start = pos + 2
        stop = start + first
    elif first == 0x80:
        raise _Bad("indefinite_length", pos)
    else:
        count = first & 0x7F
        if count > 4:
            raise _Bad("bad_length", pos)  # no SNMP message needs a length above 2**32
        start = pos + 2 + count
        if start > end:
            raise _Bad("truncated", pos)
        stop = start + int.from_bytes(data[pos + 2 : start], "big")
    if stop > end:
        raise _Bad("bad_length", pos)
    return tag, start, stop


def _expect(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    got, start, stop = _header(data, pos, end)
    if got != tag:
        if got == tag | 0x20:
            raise _Bad("constructed_primitive", pos)
        raise _Bad("unexpected_tag", pos)
    return start, stop


def _integer(data: bytes, start: int, stop: int, low: int, high: int) -> int:
    if start == stop:
        raise _Bad("empty_integer", start)
    value = int.from_bytes(data[start:stop], "big", signed=True)
    if not low <= value <= high:
        raise _Bad("integer_range", start)
    return value


def _int_field(data: bytes, pos: int, end: int, low: int, high: int) -> tuple[int, int]:
    # Hot path: a short-form INTEGER of 1-4 bytes inside its range (request IDs, error fields)
    if pos + 3 <= end and data[pos] == 0x02 and 0 < data[pos + 1] <= 4:
        stop = pos + 2 + data[pos + 1]
        if stop <= end:
            value = int.from_bytes(data[pos + 2 : stop], "big", signed=True)
            if low <= value <= high:
                return value, stop
    start, stop = _expect(data, pos, end, 0x02)
    return _integer(data, start, stop, low, high), stop


_OID_CACHE: dict[bytes, str] = {}
_OID_CACHE_MAX = 8192


def _oid(data: bytes, start: int, stop: int) -> str:
    raw = data[start:stop]
    text = _OID_CACHE.get(raw)
    if text is not None:
        return text
    if not raw:
        raise _Bad("bad_oid", start)
    if len(raw) > _MAX_OID_BYTES:
        raise _Bad("oid_limits", start)
    # Each sub-identifier is bounded as it is read (at most 5 bytes: 2**32 needs 33 bits),
    # so a hostile OID costs linear time, never a growing integer per byte.
    subids: list[int] = []
    value = 0
    width = 0
    for byte in raw:
        if width == 0 and byte == 0x80:
            raise _Bad("bad_oid", start)  # a non-minimal sub-identifier (X.690 8.19.2)
        value = (value << 7) | (byte & 0x7F)
        width += 1
        if byte & 0x80:
            if width == _MAX_SUBID_BYTES:
                raise _Bad("oid_limits", start)
            continue
        subids.append(value)
        value = 0
        width = 0
    if width:
        raise _Bad("bad_oid", start)  # the last sub-identifier is cut short
    first = subids[0]
    if first < 40:
        subids[0:1] = [0, first]
    elif first < 80:
        subids[0:1] = [1, first - 40]
    else:
        subids[0:1] = [2, first - 80]
    if len(subids) > _MAX_SUBIDS or max(subids) > _MAX_SUBID:
        raise _Bad("oid_limits", start)
    text = ".".join(map(str, subids))
    if len(_OID_CACHE) >= _OID_CACHE_MAX:
        _OID_CACHE.clear()  # cheap bound; the working set of trap OIDs refills it at once
    _OID_CACHE[raw] = text
    return text


_INTEGER, _OCTET_STRING, _OID = SnmpType.INTEGER, SnmpType.OCTET_STRING, SnmpType.OID
_COUNTER64 = SnmpType.COUNTER64
_UNSIGNED = {
    0x41: (SnmpType.COUNTER32, _U32_MAX),
    0x42: (SnmpType.GAUGE32, _U32_MAX),
    0x43: (SnmpType.TIMETICKS, _U32_MAX),
    0x46: (SnmpType.COUNTER64, _U64_MAX),
}
_SMALL_UNSIGNED = {tag: kind for tag, (kind, _) in _UNSIGNED.items() if tag != 0x46}
_EXCEPTIONS = {
    0x80: SnmpType.NO_SUCH_OBJECT,
    0x81: SnmpType.NO_SUCH_INSTANCE,
    0x82: SnmpType.END_OF_MIB_VIEW,
}


def _value(data: bytes, pos: int, end: int, v2: bool) -> tuple[SnmpType, Value, int]:
    tag, start, stop = _header(data, pos, end)
    if tag == 0x02:
        return SnmpType.INTEGER, _integer(data, start, stop, _I32_MIN, _I32_MAX), stop
    if tag == 0x04:
        return SnmpType.OCTET_STRING, data[start:stop], stop
    if tag == 0x06:
        return SnmpType.OID, _oid(data, start, stop), stop
    unsigned = _UNSIGNED.get(tag)
    if unsigned is not None and (v2 or tag != 0x46):
        return unsigned[0], _integer(data, start, stop, 0, unsigned[1]), stop
    if tag == 0x40:
        if stop - start != 4:
            raise _Bad("bad_ip_address", start)
        return SnmpType.IP_ADDRESS, ".".join(map(str, data[start:stop])), stop
    if tag == 0x44:
        return SnmpType.OPAQUE, data[start:stop], stop
    exception = _EXCEPTIONS.get(tag) if v2 else None
    if tag == 0x05 or exception is not None:
        if start != stop:
            raise _Bad("bad_null", start)
        return exception or SnmpType.NULL, None, stop
    if tag in (0x24, 0x26, 0x60, 0x64):
        raise _Bad("constructed_primitive", pos)
    raise _Bad("unexpected_tag", pos)


def _varbinds(
    data: bytes,
    pos: int,
    end: int,
    v2: bool,
    limit: int = 0,
    subtrees: tuple[bytes, ...] = (),
    skip: int = 0,
) -> tuple[tuple[RawVarBind, ...], int]:
    """The VarBindList at ``pos``; with ``subtrees`` (OIDs' encoded contents, the
    columns a GETBULK walks, its variable bindings taking them in turn), up to and
    including the first row of them whose names are under none of their columns (a
    walk ends there, and the rest of the answer is not decoded). The first ``skip``
    variable bindings (a GETBULK's non-repeaters) are in no column."""
    start, stop = _expect(data, pos, end, 0x30)
    return _varbind_list(data, start, stop, v2, limit, subtrees, skip), stop


def _varbind_list(
    data: bytes,
    start: int,
    stop: int,
    v2: bool,
    limit: int,
    subtrees: tuple[bytes, ...] = (),
    skip: int = 0,
) -> tuple[RawVarBind, ...]:
    """The VarBinds encoded in ``data[start:stop]`` (the VarBindList's content); ``subtrees``
    and ``skip`` as in :func:`_varbinds`."""
    out: list[RawVarBind] = []
    oids = _OID_CACHE
    pos = start
    limit = limit or MAX_VARBINDS
    outside = False
    width = len(subtrees)
    row_inside = False
    while pos < stop:
        if outside:
            break
        if len(out) == limit:
            raise _Bad("too_many_varbinds", pos)
        # Hot path: short-form VarBind and OID headers (nearly every trap), a known OID.
        if (
            pos + 4 <= stop
            and data[pos] == 0x30
            and data[pos + 1] < 0x80
            and data[pos + 2] == 0x06
            and data[pos + 3] < 0x80
        ):
            vb_stop = pos + 2 + data[pos + 1]
            name_stop = pos + 4 + data[pos + 3]
            if vb_stop > stop or name_stop > vb_stop:
                raise _Bad("bad_length", pos)
            oid = oids.get(data[pos + 4 : name_stop]) or _oid(data, pos + 4, name_stop)
            name_start = pos + 4
        else:
            vb_start, vb_stop = _expect(data, pos, stop, 0x30)
            name_start, name_stop = _expect(data, vb_start, vb_stop, 0x06)
            oid = _oid(data, name_start, name_stop)
        if width and len(out) >= skip:
            column = (len(out) - skip) % width
            if data.startswith(subtrees[column], name_start):
                row_inside = True
            if column == width - 1:  # a row ends: if none was inside, it is the last read
                outside = not row_inside
                row_inside = False
        pos = vb_stop
        # Hot path: a short-form value header that fills the VarBind exactly, of the
        # types traps carry most; anything else (and any doubt) takes the general path.
        if (
            name_stop + 2 <= vb_stop
            and data[name_stop + 1] < 0x80
            and name_stop + 2 + data[name_stop + 1] == vb_stop
        ):
            tag = data[name_stop]
            at = name_stop + 2
            size = vb_stop - at
            if tag == 0x02 and 0 < size <= 4:  # an INTEGER of 4 bytes or less is an Integer32
                if size == 1:
                    number = data[at]
                    number = number - 256 if number & 0x80 else number
                else:
                    number = int.from_bytes(data[at:vb_stop], "big", signed=True)
                out.append((oid, _INTEGER, number))
                continue
            if tag in _SMALL_UNSIGNED and 0 < size <= 4 and data[at] < 0x80:
                # 4 bytes with the sign bit clear: below 2**31, inside every unsigned range
                out.append((oid, _SMALL_UNSIGNED[tag], int.from_bytes(data[at:vb_stop], "big")))
                continue
            if tag == 0x46 and v2 and 0 < size <= 8 and data[at] < 0x80:
                # a polled Counter64 (ifHCInOctets): below 2**63, inside its range
                out.append((oid, _COUNTER64, int.from_bytes(data[at:vb_stop], "big")))
                continue
            if tag == 0x04:
                out.append((oid, _OCTET_STRING, data[at:vb_stop]))
                continue
            if tag == 0x06 and at < vb_stop:
                text = oids.get(data[at:vb_stop]) or _oid(data, at, vb_stop)
                out.append((oid, _OID, text))
                continue
        kind, value, end = _value(data, name_stop, vb_stop, v2)
        if end != vb_stop:
            raise _Bad("trailing_bytes", end)
        out.append((oid, kind, value))
    return tuple(out)


def _v1_trap(data: bytes, pos: int, end: int) -> tuple[V1Trap, int]:
    start, stop = _expect(data, pos, end, 0x06)
    enterprise = _oid(data, start, stop)
    start, stop = _expect(data, stop, end, 0x40)
    if stop - start != 4:
        raise _Bad("bad_ip_address", start)
    agent = ".".join(map(str, data[start:stop]))
    generic, pos = _int_field(data, stop, end, 0, 6)
    specific, pos = _int_field(data, pos, end, _I32_MIN, _I32_MAX)
    start, stop = _expect(data, pos, end, 0x43)
    timestamp = _integer(data, start, stop, 0, _U32_MAX)
    return V1Trap(enterprise, agent, generic, specific, timestamp), stop


def _decode(
    data: bytes,
    limit: int,
    communities: Container[bytes] | None,
    subtrees: tuple[bytes, ...] = (),
    skip: int = 0,
) -> Message:
    end = len(data)
    if end > MAX_MESSAGE:
        raise _Bad("too_large", 0)
    start, stop = _expect(data, 0, end, 0x30)
    if stop != end:
        raise _Bad("trailing_bytes", stop)
    version, pos = _int_field(data, start, stop, _I32_MIN, _I32_MAX)
    if version not in (0, 1):
        raise _Bad("bad_version", start)
    c_start, c_stop = _expect(data, pos, stop, 0x04)
    community = data[c_start:c_stop]
    if communities is not None and community not in communities:
        # Checked before the PDU is read: a stranger's datagram costs only its header.
        raise _Bad("bad_community", c_start)
    pdu_type, p_start, p_stop = _header(data, c_stop, stop)
    if pdu_type not in (_V2_PDUS if version else _V1_PDUS):
        raise _Bad("bad_pdu_type", c_stop)
    if p_stop != stop:
        raise _Bad("trailing_bytes", p_stop)
    v1_trap = None
    if pdu_type == 0xA4:
        v1_trap, pos = _v1_trap(data, p_start, p_stop)
        request_id = error_status = error_index = 0
    else:
        request_id, pos = _int_field(data, p_start, p_stop, _I32_MIN, _I32_MAX)
        error_status, pos = _int_field(data, pos, p_stop, _I32_MIN, _I32_MAX)
        low = 0 if version else _I32_MIN  # pysnmp's v2c PDUs bound error-index at 0
        error_index, pos = _int_field(data, pos, p_stop, low, _I32_MAX)
        if pdu_type == 0xA5 and error_status < 0:
            raise _Bad("integer_range", pos)
    vb_at = pos
    varbinds, pos = _varbinds(data, pos, p_stop, version == 1, limit, subtrees, skip)
    if pos != p_stop:
        raise _Bad("trailing_bytes", pos)
    return _message(
        version,
        community,
        pdu_type,
        request_id,
        error_status,
        error_index,
        varbinds,
        v1_trap,
        (vb_at, pos),
    )


def decode_message(
    data: bytes,
    *,
    max_varbinds: int = MAX_VARBINDS,
    communities: Container[bytes] | None = None,
    subtrees: tuple[bytes, ...] = (),
    skip: int = 0,
) -> Message | DecodeError:
    """Decodes one SNMPv1 or SNMPv2c message; never raises.

    Args:
        data: the whole UDP payload.
        max_varbinds: more variable bindings than this give ``too_many_varbinds``.
        communities: when given, a community outside it gives ``bad_community``
            before anything after the community is decoded.
        subtrees: when given (OIDs' encoded contents: the roots a GETBULK walks, which
            its variable bindings take in turn), the variable bindings end with the
            first row of them that has no name under its root: the rest of the list is
            not read.
        skip: with ``subtrees``, how many variable bindings come before the rows (a
            GETBULK's non-repeaters).

    Returns:
        The message, or a DecodeError whose ``reason`` names the first problem
        (``truncated``, ``bad_length``, ``indefinite_length``, ``bad_version``,
        ``integer_range``, ``bad_oid``, ...). SNMPv3 gives ``bad_version``:
        check :func:`message_version` first.
    """
    try:
        return _decode(data, max_varbinds, communities, subtrees, skip)
    except _Bad as bad:
        return DecodeError(bad.reason, bad.offset)
    except Exception as exc:  # a decoder bug must cost one datagram, not the receiver
        return DecodeError(f"internal:{type(exc).__name__}", 0)


def decode_varbind(data: bytes, *, v2: bool = True) -> RawVarBind | DecodeError:
    """Decodes one whole VarBind (its SEQUENCE, nothing after it) as
    :func:`decode_message` decodes each VarBind of a v2c (``v2``) or v1 message;
    never raises.

    Returns:
        The varbind, or a DecodeError naming the first problem (as in decode_message).
    """
    try:
        found = _varbind_list(data, 0, len(data), v2, 1)
    except _Bad as bad:
        return DecodeError(bad.reason, bad.offset)
    except Exception as exc:  # a decoder bug must cost one datagram, not the receiver
        return DecodeError(f"internal:{type(exc).__name__}", 0)
    if not found:
        return DecodeError("truncated", 0)
    return found[0]


def message_version(data: bytes) -> int | None:
    """Returns the wire version of an SNMP message (0, 1, 3, ...), None if unreadable.

    Only the outer SEQUENCE header and the version INTEGER are checked; the
    outer length must match the datagram.
    """
    try:
        start, stop = _expect(data, 0, len(data), 0x30)
        if stop != len(data):
            return None
        return _int_field(data, start, stop, _I32_MIN, _I32_MAX)[0]
    except _Bad:
        return None
    except Exception:  # never let a header peek raise into the receive loop
        return None
