"""Differential test: the fast decoder and pysnmp's decoder agree, or both reject.

Where the fast decoder is deliberately stricter than pyasn1 (RFC 3417 section 8
and RFC 2578 limits that pyasn1 does not enforce), the test demands that the
reason is one of those and that the input really has that feature.
"""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import (
    MAX_VARBINDS,
    DecodeError,
    Message,
    PduType,
    V1Trap,
    decode_message,
)
from netalert.snmp.wire.berenc import encode_message
from tests.support.pysnmp_ref import reference_decode
from tests.test_ber import SNMPTRAP_V2C

I32 = range(-(2**31), 2**31)


def _oids(ref: dict[str, Any]) -> list[str]:
    out = [vb[0] for vb in ref["varbinds"]]
    out += [vb[2] for vb in ref["varbinds"] if vb[1] is SnmpType.OID]
    if "v1_trap" in ref:
        out.append(ref["v1_trap"][0])
    return out


def _explains(ref: dict[str, Any], error: DecodeError, data: bytes) -> bool:
    """True when ``error`` is a documented strictness pysnmp lacks, present in ``data``."""
    if error.reason == "integer_range":
        if "v1_trap" in ref:
            _, _, generic, specific, _ = ref["v1_trap"]
            fields = [specific] + ([] if 0 <= generic <= 6 else [2**40])
        else:
            fields = [ref["request_id"], ref["error_status"], ref["error_index"]]
        fields += [vb[2] for vb in ref["varbinds"] if vb[1] is SnmpType.INTEGER]
        return any(value not in I32 for value in fields)
    if error.reason == "oid_limits":
        subids = [[int(x) for x in oid.split(".")] for oid in _oids(ref)]
        return any(len(s) > 128 or max(s) > 2**32 - 1 for s in subids)
    if error.reason == "too_many_varbinds":
        return len(ref["varbinds"]) > MAX_VARBINDS
    if error.reason == "indefinite_length":
        return data[error.offset + 1] == 0x80
    if error.reason == "constructed_primitive":
        return data[error.offset] in (0x22, 0x24, 0x26, 0x60, 0x64)
    if error.reason == "empty_integer":
        return data[error.offset - 1] == 0
    return False


def check(data: bytes) -> str:
    """Compares both decoders on ``data``; returns which outcome happened."""
    fast = decode_message(data)
    ref = reference_decode(data)
    if ref is None:
        assert isinstance(fast, DecodeError), f"pysnmp rejects, fast accepts {data.hex()}"
        return "both reject"
    if isinstance(fast, DecodeError):
        assert _explains(ref, fast, data), f"fast rejects ({fast}), pysnmp accepts {data.hex()}"
        return "fast stricter"
    assert isinstance(fast, Message)
    assert fast.version == ref["version"]
    assert fast.community == ref["community"]
    assert fast.pdu_type == ref["pdu_type"]
    if fast.v1_trap is not None:
        v1 = fast.v1_trap
        assert (v1.enterprise, v1.agent_addr, v1.generic, v1.specific, v1.timestamp) == ref[
            "v1_trap"
        ]
    else:
        assert "v1_trap" not in ref
        assert (fast.request_id, fast.error_status, fast.error_index) == (
            ref["request_id"],
            ref["error_status"],
            ref["error_index"],
        )
    assert fast.varbinds == ref["varbinds"]
    return "agree"


def _capture(options: str, *params: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        port = sock.getsockname()[1]
        with subprocess.Popen(["snmptrap", *options.split(), f"127.0.0.1:{port}", *params]) as proc:
            data = sock.recv(65535)
            proc.wait(10)
    return data


@pytest.mark.daemon
def test_samples_from_net_snmp_senders() -> None:
    link = ["1.3.6.1.2.1.2.2.1.1.2", "i", "2", "1.3.6.1.2.1.2.2.1.2.2", "s", "eth0"]
    samples = [
        SNMPTRAP_V2C,
        _capture("-v 2c -c public", "", "1.3.6.1.6.3.1.1.5.3", *link),
        _capture("-v 1 -c public", "1.3.6.1.4.1.8072", "192.0.2.1", "2", "0", "", *link),
        _capture("-v 1 -c pub", "1.3.6.1.4.1.8072.9", "", "6", "99", "77", *link),
        _capture(
            "-v 2c -c c",
            "",
            "1.3.6.1.4.1.8072.2.3.0.1",
            "1.3.6.1.4.1.1.1",
            "x",
            "0011ff",
            "1.3.6.1.4.1.1.2",
            "a",
            "10.1.2.3",
            "1.3.6.1.4.1.1.3",
            "c",
            "4294967295",
            "1.3.6.1.4.1.1.4",
            "C",
            "18446744073709551615",
            "1.3.6.1.4.1.1.5",
            "t",
            "0",
            "1.3.6.1.4.1.1.6",
            "o",
            "1.3.6.1.2.1",
            "1.3.6.1.4.1.1.7",
            "u",
            "7",
            "1.3.6.1.4.1.1.8",
            "i",
            "-2147483648",
        ),
    ]
    assert [check(sample) for sample in samples] == ["agree"] * len(samples)


EDGE_VALUES = [
    # one-byte and boundary INTEGERs, negative ones included
    *[(SnmpType.INTEGER, v) for v in (-1, -128, -129, 127, 128, -(2**31), 2**31 - 1)],
    # unsigned types whose top bit is set (encoded with a leading zero octet)
    *[
        (t, v)
        for t in (SnmpType.COUNTER32, SnmpType.GAUGE32, SnmpType.TIMETICKS)
        for v in (128, 255, 2**31, 2**32 - 1)
    ],
    *[(SnmpType.COUNTER64, v) for v in (2**63, 2**64 - 1)],
    # the first two arcs folded into one subidentifier, at and past 2.39
    *[(SnmpType.OID, oid) for oid in ("0.0", "1.39", "2.0", "2.39", "2.40", "2.999.1")],
]


@pytest.mark.parametrize(("kind", "value"), EDGE_VALUES)
def test_edge_values_agree(kind: SnmpType, value: Any) -> None:
    """Values the generators reach rarely: five decoder faults planted in turn, three
    were missed on most seeds at these edges until they were listed here."""
    data = encode_message(
        version=1,
        community=b"public",
        pdu_type=PduType.TRAP_V2,
        varbinds=[("1.3.6.1.4.1.9.9.1", kind, value)],
        request_id=7,
    )
    assert check(data) == "agree"


@pytest.mark.parametrize("tag", [0x41, 0x42, 0x43])
@pytest.mark.parametrize("top", [0x80, 0xFF])
def test_an_unsigned_value_with_its_sign_bit_set_is_judged_as_pysnmp_does(
    tag: int, top: int
) -> None:
    """A Counter32, Gauge32 or TimeTicks of 4 content octets whose first has the top
    bit set is negative in BER: a sender's bug the generators never write."""
    data = encode_message(
        version=1,
        community=b"public",
        pdu_type=PduType.TRAP_V2,
        varbinds=[("1.3.6.1.4.1.9.9.1", SnmpType.COUNTER32, 0x7F000001)],
        request_id=7,
    )
    value = bytes([0x41, 4, 0x7F, 0, 0, 1])
    assert data.count(value) == 1
    data = data.replace(value, bytes([tag, 4, top, 0, 0, 1]))
    assert check(data) in ("agree", "both reject")


oid_strategy = st.builds(
    lambda first, second, rest: ".".join(map(str, [first, second, *rest])),
    st.integers(0, 2),
    st.integers(0, 39),
    st.lists(
        st.one_of(*[st.integers(0, 300)] * 6, st.integers(0, 2**32 - 1), st.integers(2**32, 2**40)),
        max_size=8,
    ),
) | st.just("1.3." + ".".join(["1"] * 127))

any_int = st.one_of(
    st.integers(-300, 300),
    st.integers(-(2**31) - 2, 2**31 + 2),
    st.integers(-(2**64), 2**65),
)
value_strategy = st.one_of(
    st.tuples(st.just(SnmpType.INTEGER), any_int),
    st.tuples(st.just(SnmpType.OCTET_STRING), st.binary(max_size=20)),
    st.tuples(st.just(SnmpType.NULL), st.none()),
    st.tuples(st.just(SnmpType.OID), oid_strategy),
    st.tuples(st.just(SnmpType.IP_ADDRESS), st.ip_addresses(v=4).map(str)),
    st.tuples(st.sampled_from([SnmpType.COUNTER32, SnmpType.GAUGE32, SnmpType.TIMETICKS]), any_int),
    st.tuples(st.just(SnmpType.OPAQUE), st.binary(max_size=8)),
    st.tuples(st.just(SnmpType.COUNTER64), any_int),
    st.tuples(
        st.sampled_from(
            [SnmpType.NO_SUCH_OBJECT, SnmpType.NO_SUCH_INSTANCE, SnmpType.END_OF_MIB_VIEW]
        ),
        st.none(),
    ),
)
varbind_strategy = st.builds(lambda oid, tv: (oid, tv[0], tv[1]), oid_strategy, value_strategy)


valid_int = st.integers(0, 2**31 - 1)
valid_value = st.one_of(
    st.tuples(st.just(SnmpType.INTEGER), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just(SnmpType.OCTET_STRING), st.binary(max_size=20)),
    st.tuples(st.just(SnmpType.OID), st.just("1.3.6.1.6.3.1.1.5.3")),
    st.tuples(st.just(SnmpType.IP_ADDRESS), st.ip_addresses(v=4).map(str)),
    st.tuples(st.sampled_from([SnmpType.COUNTER32, SnmpType.TIMETICKS]), valid_int),
)


@st.composite
def messages(draw: st.DrawFn, *, valid: bool = False) -> bytes:
    """SNMP messages, from wild (any version, any range) to ``valid`` ones."""
    if valid:
        version = draw(st.sampled_from([0, 1]))
        v1 = [PduType.TRAP_V1, PduType.RESPONSE]
        pdu_type = draw(st.sampled_from(v1 if version == 0 else [PduType.TRAP_V2, PduType.INFORM]))
        vb = st.builds(lambda oid, tv: (oid, tv[0], tv[1]), oid_strategy, valid_value)
        return encode_message(
            version=version,
            community=draw(st.binary(max_size=12)),
            pdu_type=pdu_type,
            varbinds=draw(st.lists(vb, max_size=6)),
            request_id=draw(valid_int),
            v1_trap=V1Trap("1.3.6.1.4.1.9", "192.0.2.1", draw(st.integers(0, 6)), 1, 5),
        )
    version = draw(st.sampled_from([0, 1, 0, 1, 2, 3, 2**31]))
    pdu_type = draw(st.sampled_from(list(PduType)))
    trap = None
    if pdu_type == PduType.TRAP_V1:
        trap = V1Trap(
            draw(oid_strategy),
            draw(st.ip_addresses(v=4).map(str)),
            draw(st.one_of(st.integers(0, 6), any_int)),
            draw(any_int),
            draw(st.integers(0, 2**32 + 5)),
        )
    return encode_message(
        version=version,
        community=draw(st.binary(max_size=12)),
        pdu_type=pdu_type,
        varbinds=draw(st.lists(varbind_strategy, max_size=6)),
        request_id=draw(any_int),
        error_status=draw(st.one_of(st.integers(0, 18), any_int)),
        error_index=draw(st.one_of(st.integers(0, 6), any_int)),
        v1_trap=trap,
    )


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(messages(valid=True)))
    for _ in range(draw(st.integers(1, 2))):
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["flip", "cut", "insert", "delete", "longlen", "indef"]))
        if action == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[pos:]
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=3))
        elif action == "delete":
            del data[pos : pos + 1]
        elif action == "longlen" and pos + 1 < len(data) and data[pos + 1] < 0x80:
            data[pos + 1 : pos + 2] = bytes([0x82, 0, data[pos + 1]])
        elif action == "indef" and pos + 1 < len(data):
            data[pos + 1] = 0x80
    return bytes(data)


# Drawing these messages costs hypothesis about 5 ms each (far more than both decoders):
# 600 generated and 1,000 mutated ones per run; `make fuzz` searches the same property at
# depth, and hypothesis' example database replays any failure first.
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(messages(), messages(valid=True)))
@example(SNMPTRAP_V2C)
def test_generated_messages(data: bytes) -> None:
    check(data)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    check(data)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes(data: bytes) -> None:
    check(data)
