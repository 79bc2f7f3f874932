"""A small BER encoder for SNMPv1/v2c messages: the inverse of :mod:`netalert.snmp.ber`.

The receiver itself only needs the inform Response (in ``ber``); this encoder
builds whole messages for tests, the bench blaster and the demo's trap sender.
"""

from __future__ import annotations

from collections.abc import Iterable

from netalert.snmp.ber import PduType, RawVarBind, V1Trap
from netalert.snmp.types import SnmpType, Value

__all__ = ["encode_message", "encode_oid", "encode_tlv", "encode_value"]


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
