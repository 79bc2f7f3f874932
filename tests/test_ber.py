"""The fast BER decoder: decoding, strictness, the inform Response, no crash on junk."""

from __future__ import annotations

import random

import pytest
from pyasn1.codec.ber import decoder as asn1_decoder
from pysnmp.proto.api import v2c

from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import (
    DecodeError,
    Message,
    PduType,
    V1Trap,
    decode_message,
    message_version,
)
from netalert.snmp.wire.berenc import encode_inform_response, encode_message, encode_oid, encode_tlv

UPTIME = "1.3.6.1.2.1.1.3.0"
TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"

LINK_DOWN = (
    (UPTIME, SnmpType.TIMETICKS, 71250),
    (TRAP_OID, SnmpType.OID, "1.3.6.1.6.3.1.1.5.3"),
    ("1.3.6.1.2.1.2.2.1.1.2", SnmpType.INTEGER, 2),
    ("1.3.6.1.2.1.2.2.1.7.2", SnmpType.INTEGER, 1),
    ("1.3.6.1.2.1.2.2.1.8.2", SnmpType.INTEGER, 2),
    ("1.3.6.1.2.1.2.2.1.2.2", SnmpType.OCTET_STRING, b"eth0 uplink"),
)

# A v2c linkDown trap exactly as net-snmp's snmptrap 5.9 sends it.
SNMPTRAP_V2C = bytes.fromhex(
    "30819402010104067075626c6963a7818602046a9159720201000201003078300f06082b06010201010300"
    "43030116523017060a2b06010603010104010006092b0601060301010503300f060a2b0601020102020101"
    "02020102300f060a2b060102010202010702020101300f060a2b0601020102020108020201023019060a2b"
    "060102010202010202040b657468302075706c696e6b"
)


def test_decodes_a_net_snmp_v2c_trap() -> None:
    msg = decode_message(SNMPTRAP_V2C)
    assert isinstance(msg, Message)
    assert (msg.version, msg.community, msg.pdu_type) == (1, b"public", PduType.TRAP_V2)
    assert msg.request_id == 0x6A915972
    assert msg.varbinds == LINK_DOWN
    assert message_version(SNMPTRAP_V2C) == 1


def test_every_value_type_round_trips() -> None:
    varbinds = (
        ("1.3.6.1.2.1.1.1.0", SnmpType.OCTET_STRING, b"\x00\xffbin"),
        ("1.3.6.1.2.1.1.2.0", SnmpType.OID, "1.3.6.1.4.1.8072.3.2.10"),
        ("1.3.6.1.4.1.1.1", SnmpType.INTEGER, -(2**31)),
        ("1.3.6.1.4.1.1.2", SnmpType.INTEGER, 2**31 - 1),
        ("1.3.6.1.4.1.1.3", SnmpType.IP_ADDRESS, "192.0.2.255"),
        ("1.3.6.1.4.1.1.4", SnmpType.COUNTER32, 2**32 - 1),
        ("1.3.6.1.4.1.1.5", SnmpType.GAUGE32, 0),
        ("1.3.6.1.4.1.1.6", SnmpType.TIMETICKS, 4_000_000_000),
        ("1.3.6.1.4.1.1.7", SnmpType.OPAQUE, b"\x9f\x78\x04\x00\x00\x00\x00"),
        ("1.3.6.1.4.1.1.8", SnmpType.COUNTER64, 2**64 - 1),
        ("1.3.6.1.4.1.1.9", SnmpType.NULL, None),
        ("1.3.6.1.4.1.1.10", SnmpType.NO_SUCH_OBJECT, None),
        ("1.3.6.1.4.1.1.11", SnmpType.NO_SUCH_INSTANCE, None),
        ("1.3.6.1.4.1.1.12", SnmpType.END_OF_MIB_VIEW, None),
        ("2.999.4294967295", SnmpType.NULL, None),
    )
    data = encode_message(
        version=1, community=b"c", pdu_type=PduType.RESPONSE, request_id=-5, varbinds=varbinds
    )
    msg = decode_message(data)
    assert isinstance(msg, Message)
    assert msg.varbinds == varbinds
    assert msg.request_id == -5


def test_v1_trap_fields() -> None:
    trap = V1Trap("1.3.6.1.4.1.8072.2.3", "192.0.2.7", 6, 17, 12345)
    data = encode_message(
        version=0,
        community=b"private",
        pdu_type=PduType.TRAP_V1,
        varbinds=[("1.3.6.1.4.1.8072.2.3.2.1", SnmpType.INTEGER, 42)],
        v1_trap=trap,
    )
    msg = decode_message(data)
    assert isinstance(msg, Message)
    assert msg.v1_trap == trap
    assert msg.varbinds == (("1.3.6.1.4.1.8072.2.3.2.1", SnmpType.INTEGER, 42),)


def _v2c_trap(
    varbind_list: bytes, *, head: bytes = b"\x02\x01\x07\x02\x01\x00\x02\x01\x00"
) -> bytes:
    pdu = encode_tlv(0xA7, head + varbind_list)
    return encode_tlv(0x30, b"\x02\x01\x01\x04\x01p" + pdu)


def _vbl(*varbinds: bytes) -> bytes:
    return encode_tlv(0x30, b"".join(varbinds))


def _vb(oid: str, value: bytes) -> bytes:
    return encode_tlv(0x30, encode_tlv(0x06, encode_oid(oid)) + value)


GOOD_VB = _vb(UPTIME, b"\x43\x01\x05")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated"),
        (b"\x30", "truncated"),
        (SNMPTRAP_V2C[:-1], "bad_length"),
        (SNMPTRAP_V2C + b"\x00", "trailing_bytes"),
        (_v2c_trap(b"\x30\x80" + GOOD_VB + b"\x00\x00"), "indefinite_length"),
        (_v2c_trap(_vbl(_vb(UPTIME, b"\x24\x04\x04\x02ab"))), "constructed_primitive"),
        (_v2c_trap(_vbl(_vb(UPTIME, b"\x43\x00"))), "empty_integer"),
        (_v2c_trap(_vbl(_vb(UPTIME, b"\x43\x05\x01\x00\x00\x00\x00"))), "integer_range"),
        (_v2c_trap(_vbl(_vb(UPTIME, b"\x41\x01\x80"))), "integer_range"),
        (_v2c_trap(_vbl(_vb(UPTIME, b"\x02\x05\x00\x80\x00\x00\x00"))), "integer_range"),
        (_v2c_trap(_vbl(_vb(UPTIME, b"\x40\x03\x01\x02\x03"))), "bad_ip_address"),
        (_v2c_trap(_vbl(_vb(UPTIME, b"\x05\x01\x00"))), "bad_null"),
        (_v2c_trap(_vbl(_vb(UPTIME, b"\x01\x01\xff"))), "unexpected_tag"),
        (_v2c_trap(_vbl(encode_tlv(0x30, b"\x06\x00\x05\x00"))), "bad_oid"),
        (_v2c_trap(_vbl(encode_tlv(0x30, b"\x06\x03\x2b\x80\x01\x05\x00"))), "bad_oid"),
        (_v2c_trap(_vbl(encode_tlv(0x30, b"\x06\x02\x2b\x86\x05\x00"))), "bad_oid"),
        (_v2c_trap(_vbl(_vb("1.3." + ".".join(["1"] * 127), b"\x05\x00"))), "oid_limits"),
        (
            _v2c_trap(_vbl(encode_tlv(0x30, b"\x06\x06\x2b\x90\x80\x80\x80\x00\x05\x00"))),
            "oid_limits",
        ),
        (_v2c_trap(_vbl(GOOD_VB + b"\x05\x00")), "unexpected_tag"),
        (
            _v2c_trap(_vbl(encode_tlv(0x30, encode_tlv(6, b"\x2b") + b"\x05\x00\x05\x00"))),
            "trailing_bytes",
        ),
        (_v2c_trap(_vbl(GOOD_VB), head=b"\x02\x01\x07\x02\x01\x00"), "unexpected_tag"),
        (_v2c_trap(_vbl(GOOD_VB), head=b"\x02\x01\x07\x02\x01\x00\x02\x01\xff"), "integer_range"),
        (
            _v2c_trap(_vbl(GOOD_VB)).replace(b"\x02\x01\x01\x04", b"\x02\x01\x02\x04", 1),
            "bad_version",
        ),
        (
            _v2c_trap(_vbl(GOOD_VB)).replace(b"\x02\x01\x01\x04", b"\x02\x01\x00\x04", 1),
            "bad_pdu_type",
        ),
        (_v2c_trap(_vbl(_vb(UPTIME, b"\x5f\x1f\x01\x00"))), "bad_tag"),
        (_v2c_trap(_vbl(*[GOOD_VB] * 1025)), "too_many_varbinds"),
    ],
)
def test_rejects_with_reason(data: bytes, reason: str) -> None:
    result = decode_message(data)
    assert isinstance(result, DecodeError)
    assert result.reason == reason


def test_accepts_long_form_and_non_minimal_lengths() -> None:
    # Real agents send 0x82-style lengths even for short contents; BER allows it.
    vbl = b"\x30\x82\x00" + bytes([len(GOOD_VB)]) + GOOD_VB
    msg = decode_message(_v2c_trap(vbl))
    assert isinstance(msg, Message)
    assert msg.varbinds == ((UPTIME, SnmpType.TIMETICKS, 5),)


def test_counter64_only_in_v2c() -> None:
    data = encode_message(
        version=0,
        community=b"p",
        pdu_type=PduType.RESPONSE,
        varbinds=[("1.3.6.1.2.1.31.1.1.1.6.1", SnmpType.COUNTER64, 7)],
    )
    result = decode_message(data)
    assert isinstance(result, DecodeError)
    assert result.reason == "unexpected_tag"


def test_inform_response_is_what_pysnmp_expects() -> None:
    data = encode_message(
        version=1,
        community=b"public",
        pdu_type=PduType.INFORM,
        request_id=2**31 - 1,
        varbinds=LINK_DOWN,
    )
    msg = decode_message(data)
    assert isinstance(msg, Message)
    response = encode_inform_response(data, msg)
    decoded, rest = asn1_decoder.decode(response, asn1Spec=v2c.Message())
    assert rest == b""
    pdu = v2c.apiMessage.get_pdu(decoded)
    assert pdu.tagSet == v2c.ResponsePDU.tagSet
    assert int(v2c.apiPDU.get_request_id(pdu)) == 2**31 - 1
    assert int(v2c.apiPDU.get_error_status(pdu)) == 0
    assert [str(oid) for oid, _ in v2c.apiPDU.get_varbinds(pdu)] == [vb[0] for vb in LINK_DOWN]
    again = decode_message(response)
    assert isinstance(again, Message)
    assert (again.pdu_type, again.request_id, again.varbinds) == (
        PduType.RESPONSE,
        2**31 - 1,
        LINK_DOWN,
    )


def test_message_version_peeks_without_decoding() -> None:
    assert message_version(b"\x30\x03\x02\x01\x03") == 3
    assert message_version(b"\x30\x03\x02\x01") is None
    assert message_version(b"\x04\x03\x02\x01\x03") is None


def test_ten_thousand_junk_datagrams_never_raise() -> None:
    rng = random.Random(5)
    results = []
    for i in range(10_000):
        mode = i % 3
        if mode == 0:
            data = rng.randbytes(rng.randrange(0, 200))
        elif mode == 1:
            data = SNMPTRAP_V2C[: rng.randrange(0, len(SNMPTRAP_V2C))]
        else:
            buf = bytearray(SNMPTRAP_V2C)
            for _ in range(rng.randrange(1, 4)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            data = bytes(buf)
        results.append((mode, decode_message(data)))
        message_version(data)
    assert all(isinstance(r, DecodeError | Message) for _, r in results)
    assert not any(
        isinstance(r, DecodeError) and r.reason.startswith("internal") for _, r in results
    )
    # Random bytes and truncations are never a message; flipped bytes may land in a string.
    assert all(isinstance(r, DecodeError) for mode, r in results if mode < 2)
    assert sum(isinstance(r, DecodeError) for mode, r in results if mode == 2) > 1_500


def _trap_with_oid(oid_contents: bytes, community: bytes = b"public") -> bytes:
    varbind = encode_tlv(0x30, encode_tlv(0x06, oid_contents) + b"\x05\x00")
    body = b"\x02\x01\x01\x02\x01\x00\x02\x01\x00" + encode_tlv(0x30, varbind)
    return encode_tlv(0x30, b"\x02\x01\x01" + encode_tlv(0x04, community) + encode_tlv(0xA7, body))


@pytest.mark.parametrize(
    ("contents", "reason"),
    [
        (b"\x2b" + b"\x81" * 60_000 + b"\x01", "oid_limits"),  # one 60 KB sub-identifier
        (b"\x2b\x90\x80\x80\x80\x00", "oid_limits"),  # 2**32 in five bytes
        (b"\x2b\x8f\xff\xff\xff\x7f", None),  # 2**32 - 1: the largest sub-identifier
        (b"\x2b\x81\x80\x80\x80\x80\x00", "oid_limits"),  # a sixth byte
        (b"\x2b" + b"\x01" * 128, "oid_limits"),  # 130 arcs
        (b"\x2b" + b"\x01" * 126, None),  # 128 arcs: the RFC 2578 limit itself
    ],
)
def test_oid_sub_identifiers_are_bounded_as_they_are_read(
    contents: bytes, reason: str | None
) -> None:
    """A huge OID once cost quadratic time (a growing int per byte) before any check."""
    msg = decode_message(_trap_with_oid(contents))
    if reason is None:
        assert isinstance(msg, Message), msg
    else:
        assert isinstance(msg, DecodeError) and msg.reason == reason


def test_the_community_is_checked_before_the_varbinds_are_read() -> None:
    broken = _trap_with_oid(b"\x2b\x80\x01", community=b"guess")  # a non-minimal OID inside
    assert decode_message(broken) == DecodeError("bad_oid", 29)
    refused = decode_message(broken, communities=frozenset({b"public"}))
    assert refused == DecodeError("bad_community", 7)  # never looked at the bad OID
    ok = decode_message(
        encode_message(version=1, community=b"public", pdu_type=PduType.TRAP_V2, varbinds=LINK_DOWN)
    )
    assert isinstance(ok, Message)
    again = decode_message(
        encode_message(
            version=1, community=b"public", pdu_type=PduType.TRAP_V2, varbinds=LINK_DOWN
        ),
        communities=frozenset({b"public"}),
    )
    assert again == ok


def test_the_varbind_bound_is_a_parameter() -> None:
    data = encode_message(
        version=1, community=b"public", pdu_type=PduType.TRAP_V2, varbinds=LINK_DOWN
    )
    assert isinstance(decode_message(data, max_varbinds=6), Message)
    error = decode_message(data, max_varbinds=5)
    assert isinstance(error, DecodeError) and error.reason == "too_many_varbinds"


def test_lengths_of_more_than_four_bytes_are_refused() -> None:
    data = b"\x30\x85\x00\x00\x00\x00\x03\x02\x01\x01"
    error = decode_message(data)
    assert isinstance(error, DecodeError) and error.reason == "bad_length"
