"""The outer layers of an SNMPv3 message (RFC 3412 section 6, RFC 3414 section 2.4).

The receiver reads them to name the user and engine of a v3 message (for
counting and logging rejections precisely) and to route it. The trap fast path
(:mod:`netalert.snmp.wire.usm`) also decodes the ScopedPDU here, plaintext or
decrypted. Neither function raises, like :func:`ber.decode_message`.
"""

from __future__ import annotations

from dataclasses import dataclass

from netalert.snmp.types import maker
from netalert.snmp.wire.ber import (
    _I32_MAX,
    _I32_MIN,
    _V2_PDUS,
    DecodeError,
    RawVarBind,
    _Bad,
    _expect,
    _header,
    _int_field,
    _varbinds,
)

__all__ = [
    "FLAG_AUTH",
    "FLAG_PRIV",
    "FLAG_REPORTABLE",
    "ScopedPdu",
    "V3Header",
    "decode_scoped_pdu",
    "decode_v3_header",
]

FLAG_AUTH = 0x01
FLAG_PRIV = 0x02
FLAG_REPORTABLE = 0x04


@dataclass(frozen=True, slots=True)
class V3Header:
    """Header and USM security parameters of an SNMPv3 message.

    ``auth_at`` is the offset of the authentication parameters' contents in
    the datagram (they are zeroed there to compute the digest); ``data_at``
    the (start, end) of msgData: a plaintext ScopedPDU or, with ``priv``
    set, the contents of the encrypted OCTET STRING.
    """

    msg_id: int
    max_size: int
    flags: int
    security_model: int
    engine_id: bytes
    boots: int
    time: int
    user: bytes
    auth_params: bytes
    auth_at: int
    priv_params: bytes
    data_at: tuple[int, int]

    @property
    def level(self) -> str:
        """``noAuthNoPriv``, ``authNoPriv`` or ``authPriv``."""
        if self.flags & FLAG_PRIV:
            return "authPriv"
        return "authNoPriv" if self.flags & FLAG_AUTH else "noAuthNoPriv"


_v3_header = maker(V3Header)  # every v3 datagram makes one: the fast constructor


def _string(data: bytes, pos: int, end: int) -> tuple[bytes, int, int]:
    start, stop = _expect(data, pos, end, 0x04)
    return data[start:stop], start, stop


def _decode(data: bytes) -> V3Header:
    end = len(data)
    start, stop = _expect(data, 0, end, 0x30)
    if stop != end:
        raise _Bad("trailing_bytes", stop)
    version, pos = _int_field(data, start, stop, 0, _I32_MAX)
    if version != 3:
        raise _Bad("bad_version", start)
    g_start, g_stop = _expect(data, pos, stop, 0x30)
    msg_id, pos = _int_field(data, g_start, g_stop, 0, _I32_MAX)
    max_size, pos = _int_field(data, pos, g_stop, 484, _I32_MAX)
    flags_raw, _, pos = _string(data, pos, g_stop)
    if len(flags_raw) != 1:
        raise _Bad("bad_flags", pos)
    flags = flags_raw[0]
    if flags & FLAG_PRIV and not flags & FLAG_AUTH:
        raise _Bad("bad_flags", pos)  # privacy without authentication (RFC 3412 7.2 (5))
    model, pos = _int_field(data, pos, g_stop, 1, _I32_MAX)
    if pos != g_stop:
        raise _Bad("trailing_bytes", pos)
    s_start, s_stop = _expect(data, g_stop, stop, 0x04)
    u_start, u_stop = _expect(data, s_start, s_stop, 0x30)
    if u_stop != s_stop:
        raise _Bad("trailing_bytes", u_stop)
    engine_id, _, pos = _string(data, u_start, u_stop)
    boots, pos = _int_field(data, pos, u_stop, 0, _I32_MAX)
    time, pos = _int_field(data, pos, u_stop, 0, _I32_MAX)
    user, _, pos = _string(data, pos, u_stop)
    auth_params, auth_at, pos = _string(data, pos, u_stop)
    priv_params, _, pos = _string(data, pos, u_stop)
    if pos != u_stop:
        raise _Bad("trailing_bytes", pos)
    tag, d_start, d_stop = _header(data, s_stop, stop)
    if tag != (0x04 if flags & FLAG_PRIV else 0x30):
        raise _Bad("unexpected_tag", s_stop)
    if d_stop != stop:
        raise _Bad("trailing_bytes", d_stop)
    return _v3_header(
        msg_id,
        max_size,
        flags,
        model,
        engine_id,
        boots,
        time,
        user,
        auth_params,
        auth_at,
        priv_params,
        (d_start, d_stop),
    )


def _length(data: bytes, at: int) -> tuple[int, int]:
    """The length at ``at`` (after a tag) in short form or a one- or two-byte long form, and
    where the contents start; (-1, at) for any other form. May raise IndexError."""
    size = data[at]
    if size < 0x80:
        return size, at + 1
    if size == 0x81:
        return data[at + 1], at + 2
    if size == 0x82:
        return data[at + 1] << 8 | data[at + 2], at + 3
    return -1, at


def _primitives(data: bytes, at: int, tags: bytes) -> tuple[list[bytes], int] | None:
    """The contents of primitive TLVs of ``tags``, one after the other from ``at``, and where
    the last ends; None at the first of another tag, with a long-form length, or an INTEGER
    not of 1 to 4 bytes. May raise IndexError."""
    out = []
    for tag in tags:
        n = data[at + 1]
        if data[at] != tag or n > 0x7F or (tag == 0x02 and not 0 < n < 5):
            return None
        at += 2 + n
        out.append(data[at - n : at])
    return out, at


def _decode_usual(data: bytes) -> V3Header | None:
    """The header of a message of the usual shape, read in one pass; None for any other.

    The usual shape: INTEGERs of 1 to 4 bytes, and short-form lengths (under 128
    bytes) inside msgGlobalData and the USM parameters; the containers may have
    long-form lengths of one or two bytes. Every check of :func:`_decode` is
    made here too, in the same terms, so what this returns :func:`_decode`
    returns; anything unusual or wrong it leaves to :func:`_decode`, which names
    the fault. About half the cost: fewer calls, fewer tuples, no exception.
    May raise IndexError on a short datagram (not the usual shape either).
    """
    end = len(data)
    size, pos = _length(data, 1)
    # version 3, then msgGlobalData: a SEQUENCE with a short-form length
    if data[0] != 0x30 or pos + size != end or data[pos : pos + 4] != b"\x02\x01\x03\x30":
        return None
    g_stop = pos + 5 + data[pos + 4]
    # The fields one by one, unrolled (a loop over their tags costs twice as much):
    # msgID, msgMaxSize, msgFlags (one byte), msgSecurityModel.
    at, n = pos + 5, data[pos + 6]
    if data[at] != 0x02 or not 0 < n < 5:
        return None
    at += 2 + n
    msg_id = int.from_bytes(data[at - n : at], "big", signed=True)
    n = data[at + 1]
    if data[at] != 0x02 or not 0 < n < 5 or data[at + 2 + n : at + 4 + n] != b"\x04\x01":
        return None
    max_size = int.from_bytes(data[at + 2 : at + 2 + n], "big", signed=True)
    at += 5 + n
    flags, n = data[at - 1], data[at + 1]
    if data[at] != 0x02 or not 0 < n < 5 or at + 2 + n != g_stop or g_stop > end:
        return None
    model = int.from_bytes(data[at + 2 : g_stop], "big", signed=True)
    # msgSecurityParameters: an OCTET STRING around the USM SEQUENCE, both ending together
    size, at = _length(data, g_stop + 1) if data[g_stop] == 0x04 else (-1, g_stop)
    s_stop = at + size
    if size < 0 or s_stop > end or data[at] != 0x30:
        return None
    size, at = _length(data, at + 1)
    if size < 0 or at + size != s_stop:
        return None
    # msgAuthoritativeEngineID, ...Boots, ...Time, msgUserName, the authentication and
    # privacy parameters: strings of short-form length, INTEGERs of 1 to 4 bytes
    n = data[at + 1]
    if data[at] != 0x04 or n > 0x7F or data[at + 2 + n] != 0x02:
        return None
    at += 2 + n
    engine_id, n = data[at - n : at], data[at + 1]
    if not 0 < n < 5 or data[at + 2 + n] != 0x02:
        return None
    at += 2 + n
    boots, n = int.from_bytes(data[at - n : at], "big", signed=True), data[at + 1]
    if not 0 < n < 5 or data[at + 2 + n] != 0x04:
        return None
    at += 2 + n
    time, n = int.from_bytes(data[at - n : at], "big", signed=True), data[at + 1]
    if n > 0x7F or data[at + 2 + n] != 0x04:
        return None
    at += 2 + n
    user, n = data[at - n : at], data[at + 1]
    if n > 0x7F or data[at + 2 + n] != 0x04:
        return None
    at += 2 + n
    auth_at, n = at - n, data[at + 1]
    if n > 0x7F or at + 2 + n != s_stop:
        return None
    auth_params, priv_params = data[auth_at:at], data[at + 2 : s_stop]
    # msgData: the encrypted OCTET STRING, or the plaintext ScopedPDU, to the end
    tag = data[s_stop]
    size, data_at = _length(data, s_stop + 1)
    if size < 0 or data_at + size != end or tag != (0x04 if flags & FLAG_PRIV else 0x30):
        return None
    if msg_id < 0 or max_size < 484 or model < 1 or boots < 0 or time < 0:
        return None
    if flags & FLAG_PRIV and not flags & FLAG_AUTH:
        return None
    return _v3_header(
        msg_id,
        max_size,
        flags,
        model,
        engine_id,
        boots,
        time,
        user,
        auth_params,
        auth_at,
        priv_params,
        (data_at, end),
    )


def decode_v3_header(data: bytes) -> V3Header | DecodeError:
    """Decodes the header and USM parameters of an SNMPv3 message; never raises."""
    try:
        header = _decode_usual(data)
    except IndexError:  # shorter than the usual shape: the general reader says where
        header = None
    if header is not None:
        return header
    try:
        return _decode(data)
    except _Bad as bad:
        return DecodeError(bad.reason, bad.offset)
    except Exception as exc:  # a bug here must cost one datagram, not the receiver
        return DecodeError(f"internal:{type(exc).__name__}", 0)


@dataclass(frozen=True, slots=True)
class ScopedPdu:
    """The ScopedPDU of an SNMPv3 message (RFC 3412 section 6.8), with a v2 PDU.

    For GetBulk, ``error_status`` and ``error_index`` hold non-repeaters and
    max-repetitions. ``varbinds_at`` is the (start, end) of the VarBindList TLV
    in the bytes decoded (an inform's Response copies it).
    """

    context_engine_id: bytes
    context_name: bytes
    pdu_type: int
    request_id: int
    error_status: int
    error_index: int
    varbinds: tuple[RawVarBind, ...]
    varbinds_at: tuple[int, int] = (0, 0)


_scoped_pdu = maker(ScopedPdu)  # every v3 notification makes one

_NO_ERROR = b"\x02\x01\x00\x02\x01\x00"  # error-status and error-index 0

# A ScopedPDU's head: contextEngineID, contextName, PDU type, request-id, error-status,
# error-index, and where the VarBindList starts.
_Head = tuple[bytes, bytes, int, int, int, int, int]


def _scoped_head_usual(data: bytes, start: int, stop: int) -> _Head | None:
    """The head of a ScopedPDU of the usual shape, read in one pass; None for any other.

    The usual shape: short-form context strings, a PDU length in short form or
    one or two bytes, INTEGERs of 1 to 4 bytes. Every check of
    :func:`_scoped_head` is made here too, so what this returns it returns; the
    rest it leaves to it, which names the fault. May raise IndexError.
    """
    n = data[start + 1]
    if data[start] != 0x04 or n > 0x7F or data[start + 2 + n] != 0x04:
        return None
    at = start + 2 + n
    engine_id, n = data[start + 2 : at], data[at + 1]
    if n > 0x7F:
        return None
    at += 2 + n
    name, pdu_type = data[at - n : at], data[at]
    size, at = _length(data, at + 1)
    if pdu_type not in _V2_PDUS or size < 0 or at + size != stop:
        return None
    n = data[at + 1]
    if data[at] != 0x02 or not 0 < n < 5:
        return None
    at += 2 + n
    request_id = int.from_bytes(data[at - n : at], "big", signed=True)
    if data[at : at + 6] == _NO_ERROR and at + 6 <= stop:  # nearly every notification
        return engine_id, name, pdu_type, request_id, 0, 0, at + 6
    fields = _primitives(data, at, b"\x02\x02")
    if fields is None or fields[1] > stop:
        return None
    (error_status, error_index), at = fields
    status = int.from_bytes(error_status, "big", signed=True)
    index = int.from_bytes(error_index, "big", signed=True)
    if index < 0 or (status < 0 and pdu_type == 0xA5):
        return None
    return engine_id, name, pdu_type, request_id, status, index, at


def _scoped_head(data: bytes, start: int, stop: int) -> _Head:
    context_engine_id, _, pos = _string(data, start, stop)
    context_name, _, pos = _string(data, pos, stop)
    pdu_type, p_start, p_stop = _header(data, pos, stop)
    if pdu_type not in _V2_PDUS:
        raise _Bad("bad_pdu_type", pos)
    if p_stop != stop:
        raise _Bad("trailing_bytes", p_stop)
    request_id, pos = _int_field(data, p_start, p_stop, _I32_MIN, _I32_MAX)
    low = 0 if pdu_type == 0xA5 else _I32_MIN  # non-repeaters is never negative
    error_status, pos = _int_field(data, pos, p_stop, low, _I32_MAX)
    error_index, pos = _int_field(data, pos, p_stop, 0, _I32_MAX)
    return context_engine_id, context_name, pdu_type, request_id, error_status, error_index, pos


def _scoped(
    data: bytes, start: int, stop: int, limit: int, subtrees: tuple[bytes, ...] = (), skip: int = 0
) -> ScopedPdu:
    try:
        head = _scoped_head_usual(data, start, stop)
    except IndexError:  # shorter than the usual shape: the general reader says where
        head = None
    if head is None:
        head = _scoped_head(data, start, stop)
    list_at = head[6]
    varbinds, pos = _varbinds(data, list_at, stop, True, limit, subtrees, skip)
    if pos != stop:
        raise _Bad("trailing_bytes", pos)
    return _scoped_pdu(*head[:6], varbinds, (list_at, pos))


def decode_scoped_pdu(
    data: bytes,
    span: tuple[int, int] | None = None,
    *,
    max_varbinds: int = 0,
    subtrees: tuple[bytes, ...] = (),
    skip: int = 0,
) -> ScopedPdu | DecodeError:
    """Decodes a ScopedPDU; never raises.

    Args:
        data: a decrypted ScopedPDU (``span`` None): bytes after its SEQUENCE
            are ignored, as padding (RFC 3414 section 8.1.1.2) and as pysnmp
            does; or a whole datagram whose plaintext ScopedPDU contents are
            ``data[span[0]:span[1]]`` (:attr:`V3Header.data_at`).
        span: see ``data``.
        max_varbinds: more variable bindings give ``too_many_varbinds`` (0: the
            decoder's own bound, :data:`ber.MAX_VARBINDS`).
        subtrees: see :func:`ber.decode_message`.
        skip: see :func:`ber.decode_message`.

    Returns:
        The ScopedPDU, or a DecodeError naming the first problem.
    """
    try:
        if span is None:
            start, stop = _expect(data, 0, len(data), 0x30)
        else:
            start, stop = span
        return _scoped(data, start, stop, max_varbinds, subtrees, skip)
    except _Bad as bad:
        return DecodeError(bad.reason, bad.offset)
    except Exception as exc:  # a bug here must cost one datagram, not the receiver
        return DecodeError(f"internal:{type(exc).__name__}", 0)
