"""A small BER encoder for SNMP messages: the inverse of :mod:`netalert.snmp.wire.ber`.

The receiver's inform Responses are built here: a v2c one whole
(:func:`encode_inform_response`), a v3 one's ScopedPDU and message
(:func:`encode_response_scoped_pdu`, :func:`encode_v3_message`; the fast path
of :mod:`netalert.snmp.wire.usm` encrypts and signs it).
The rest builds whole messages for tests, the bench blaster and the demo's
trap sender.
"""

from __future__ import annotations

from collections.abc import Iterable

from netalert.snmp.types import SnmpType, Value
from netalert.snmp.wire.ber import Message, PduType, RawVarBind, V1Trap

__all__ = [
    "encode_inform_response",
    "encode_message",
    "encode_oid",
    "encode_response_scoped_pdu",
    "encode_tlv",
    "encode_v3_message",
    "encode_value",
]


def encode_tlv(tag: int, content: bytes) -> bytes:
    """Encodes one TLV with a minimal definite length."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(raw))) + raw + content


def _int(value: int) -> bytes:
    return value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)


def encode_oid(oid: str) -> bytes:
    """Encodes a dotted OID's contents (no tag, no length).

    Raises:
        ValueError: for fewer than two arcs or a first arc above 2.
    """
    parts = [int(x) for x in oid.strip(".").split(".")]
    if len(parts) < 2 or parts[0] > 2 or (parts[0] < 2 and parts[1] >= 40):
        raise ValueError(f"invalid OID {oid!r}")
    out = bytearray()
    for subid in [parts[0] * 40 + parts[1], *parts[2:]]:
        chunk = [subid & 0x7F]
        subid >>= 7
        while subid:
            chunk.append(0x80 | (subid & 0x7F))
            subid >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


_TAGS = {
    SnmpType.INTEGER: 0x02,
    SnmpType.OCTET_STRING: 0x04,
    SnmpType.NULL: 0x05,
    SnmpType.OID: 0x06,
    SnmpType.IP_ADDRESS: 0x40,
    SnmpType.COUNTER32: 0x41,
    SnmpType.GAUGE32: 0x42,
    SnmpType.TIMETICKS: 0x43,
    SnmpType.OPAQUE: 0x44,
    SnmpType.COUNTER64: 0x46,
    SnmpType.NO_SUCH_OBJECT: 0x80,
    SnmpType.NO_SUCH_INSTANCE: 0x81,
    SnmpType.END_OF_MIB_VIEW: 0x82,
}


def encode_value(kind: SnmpType, value: Value) -> bytes:
    """Encodes one value as a TLV.

    Raises:
        ValueError: when ``value`` does not fit ``kind``.
    """
    tag = _TAGS[kind]
    if isinstance(value, int):
        return encode_tlv(tag, _int(value))
    if isinstance(value, bytes):
        return encode_tlv(tag, value)
    if value is None:
        return encode_tlv(tag, b"")
    if not isinstance(value, str):  # a float: only decoded from Opaque, never encoded
        raise ValueError(f"cannot encode {value!r} as {kind}")
    if kind is SnmpType.IP_ADDRESS:
        return encode_tlv(tag, bytes(int(x) for x in value.split(".")))
    if kind is SnmpType.OID:
        return encode_tlv(tag, encode_oid(value))
    raise ValueError(f"cannot encode {value!r} as {kind}")


def _varbinds(varbinds: Iterable[RawVarBind]) -> bytes:
    body = b"".join(
        encode_tlv(0x30, encode_tlv(0x06, encode_oid(oid)) + encode_value(kind, value))
        for oid, kind, value in varbinds
    )
    return encode_tlv(0x30, body)


def encode_message(
    *,
    version: int,
    community: bytes,
    pdu_type: int,
    varbinds: Iterable[RawVarBind],
    request_id: int = 0,
    error_status: int = 0,
    error_index: int = 0,
    v1_trap: V1Trap | None = None,
) -> bytes:
    """Encodes an SNMPv1 (``version=0``) or SNMPv2c (``version=1``) message.

    Raises:
        ValueError: for a v1 Trap-PDU without ``v1_trap``, or a value that
            does not fit its type.
    """
    if pdu_type == PduType.TRAP_V1:
        if v1_trap is None:
            raise ValueError("a v1 Trap-PDU needs v1_trap")
        head = (
            encode_tlv(0x06, encode_oid(v1_trap.enterprise))
            + encode_value(SnmpType.IP_ADDRESS, v1_trap.agent_addr)
            + encode_tlv(0x02, _int(v1_trap.generic))
            + encode_tlv(0x02, _int(v1_trap.specific))
            + encode_tlv(0x43, _int(v1_trap.timestamp))
        )
    else:
        head = (
            encode_tlv(0x02, _int(request_id))
            + encode_tlv(0x02, _int(error_status))
            + encode_tlv(0x02, _int(error_index))
        )
    pdu = encode_tlv(pdu_type, head + _varbinds(varbinds))
    return encode_tlv(0x30, encode_tlv(0x02, _int(version)) + encode_tlv(0x04, community) + pdu)


_RESPONSE = 0xA2
_NO_ERROR = b"\x02\x01\x00\x02\x01\x00"  # error-status 0, error-index 0


def encode_response_scoped_pdu(
    context_engine_id: bytes, context_name: bytes, request_id: int, varbind_list: bytes
) -> bytes:
    """The ScopedPDU of a Response (RFC 3416 section 4.2.7, RFC 3412 section 6.8).

    ``varbind_list`` is the request's VarBindList TLV, byte for byte: an inform's
    Response carries the same variable bindings.
    """
    pdu = encode_tlv(_RESPONSE, encode_tlv(0x02, _int(request_id)) + _NO_ERROR + varbind_list)
    return encode_tlv(
        0x30, encode_tlv(0x04, context_engine_id) + encode_tlv(0x04, context_name) + pdu
    )


def encode_v3_message(
    *,
    msg_id: int,
    max_size: int,
    flags: int,
    engine_id: bytes,
    boots: int,
    time: int,
    user: bytes,
    auth_len: int,
    priv_params: bytes,
    msg_data: bytes,
) -> tuple[bytes, int]:
    """An SNMPv3 message with the USM (RFC 3412 section 6, RFC 3414 section 2.4).

    The authentication parameters are ``auth_len`` zero bytes, to be replaced
    by the digest computed over the message as returned. ``msg_data`` is the
    encoded ScopedPDU, or the encrypted one's OCTET STRING TLV.

    Returns:
        The message and the offset of its authentication parameters' contents.
    """
    before_auth = (
        encode_tlv(0x04, engine_id)
        + encode_tlv(0x02, _int(boots))
        + encode_tlv(0x02, _int(time))
        + encode_tlv(0x04, user)
    )
    auth = encode_tlv(0x04, bytes(auth_len))
    usm_body = before_auth + auth + encode_tlv(0x04, priv_params)
    usm = encode_tlv(0x30, usm_body)
    params = encode_tlv(0x04, usm)
    head = encode_tlv(0x02, b"\x03") + encode_tlv(
        0x30,
        encode_tlv(0x02, _int(msg_id))
        + encode_tlv(0x02, _int(max_size))
        + encode_tlv(0x04, bytes((flags,)))
        + encode_tlv(0x02, b"\x03"),  # msgSecurityModel: USM
    )
    body = head + params + msg_data
    message = encode_tlv(0x30, body)
    at = len(message) - len(body) + len(head)  # the OCTET STRING of the security parameters
    at += len(params) - len(usm)  # its tag and length
    at += len(usm) - len(usm_body)  # the USM SEQUENCE's
    at += len(before_auth) + len(auth) - auth_len  # the authentication parameters' header
    return message, at


def encode_inform_response(data: bytes, message: Message) -> bytes:
    """Encodes the Response to a v2c InformRequest (RFC 3416 section 4.2.7).

    The Response carries the same request-id and, byte for byte, the same
    variable bindings, with error-status and error-index 0.

    Args:
        data: the datagram ``message`` was decoded from.
        message: the decoded InformRequest.

    Returns:
        The encoded Response message.
    """
    start, stop = message.varbinds_at
    pdu = encode_tlv(
        _RESPONSE, encode_tlv(0x02, _int(message.request_id)) + _NO_ERROR + data[start:stop]
    )
    head = encode_tlv(0x02, _int(message.version)) + encode_tlv(0x04, message.community)
    return encode_tlv(0x30, head + pdu)
