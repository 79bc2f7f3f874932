"""The SNMPv3 header reader: the one-pass reader of the usual shape and the general one.

:func:`decode_v3_header` first tries :func:`berv3._decode_usual` (no nested calls,
no exception on the way), and the general reader :func:`berv3._decode` reads what
it leaves. What the one-pass reader returns, the general one must return too,
for every input; and it must take the usual messages, or it only adds work.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netalert.snmp.wire import berv3
from netalert.snmp.wire.ber import DecodeError
from netalert.snmp.wire.berenc import encode_tlv
from netalert.snmp.wire.berv3 import V3Header, decode_scoped_pdu, decode_v3_header
from tests.support.v3build import build_v3, scoped_pdu, trap_varbinds

pytestmark = pytest.mark.unit

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
I32_MAX = 2**31 - 1


def general(data: bytes) -> V3Header | DecodeError:
    try:
        return berv3._decode(data)
    except berv3._Bad as bad:
        return DecodeError(bad.reason, bad.offset)


MESSAGES = st.builds(
    lambda level, user, engine, boots, time, msg_id, digest, salt, varbinds: build_v3(
        user,
        scoped_pdu(trap_varbinds() * varbinds, context_engine=engine),
        engine=engine,
        level=level,
        boots=boots,
        time=time,
        msg_id=msg_id,
        digest_len=digest,
        salt=salt,
    ),
    level=st.sampled_from(["noAuthNoPriv", "authNoPriv", "authPriv"]),
    user=st.binary(max_size=32),
    engine=st.binary(max_size=32),
    boots=st.sampled_from([0, 1, 127, 128, 255, 256, 65535, I32_MAX]) | st.integers(0, I32_MAX),
    time=st.integers(0, I32_MAX),
    msg_id=st.sampled_from([0, 1, 128, I32_MAX]) | st.integers(0, I32_MAX),
    digest=st.sampled_from([12, 16, 24, 32, 48]),
    salt=st.sampled_from([b"saltsalt", b""]) | st.binary(max_size=16),
    varbinds=st.integers(0, 40),  # 0 to ~2,600 bytes of msgData: one- and two-byte lengths
)


@FUZZ
@given(data=MESSAGES)
def test_the_usual_reader_takes_usual_messages_as_the_general_one_reads_them(
    data: bytes,
) -> None:
    read = general(data)
    assert isinstance(read, V3Header)
    assert berv3._decode_usual(data) == read
    assert decode_v3_header(data) == read


def mutants(messages: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """``messages`` with up to three bytes changed, up to 20 cut off the end, up to 3 added."""

    def mutate(data: bytes, edits: list[tuple[int, int]], cut: int, tail: bytes) -> bytes:
        mutated = bytearray(data)
        for pos, byte in edits:
            mutated[pos % len(mutated)] = byte
        return bytes(mutated[: len(mutated) - cut]) + tail

    return st.builds(
        mutate,
        messages,
        st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=3),
        st.integers(0, 20),
        st.binary(max_size=3),
    )


@FUZZ
@given(message=mutants(MESSAGES))
def test_the_usual_reader_returns_what_the_general_one_does_or_nothing(message: bytes) -> None:
    read = general(message)
    try:
        usual = berv3._decode_usual(message)
    except IndexError:
        usual = None  # decode_v3_header treats it as "not the usual shape"
    assert usual is None or usual == read
    assert decode_v3_header(message) == read


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30",
        b"\x30\x00",
        b"\x30\x80\x02\x01\x03\x00\x00",
        b"\x30\x84\x00\x00\x00\x03\x02\x01\x03",
        b"\x30\x05\x02\x01\x01\x30\x00",
    ],
)
def test_short_and_odd_datagrams_read_as_before(data: bytes) -> None:
    assert decode_v3_header(data) == general(data)


# --- the ScopedPDU's head: context engine ID and name, PDU type, request-id, error fields


def general_head(data: bytes) -> tuple[object, ...] | DecodeError:
    try:
        return berv3._scoped_head(data, 2, len(data))
    except berv3._Bad as bad:
        return DecodeError(bad.reason, bad.offset)


def _signed(value: int) -> bytes:
    """The minimal two's-complement encoding, as senders write it."""
    return value.to_bytes(
        ((value if value >= 0 else ~value).bit_length() + 8) // 8, "big", signed=True
    )


SCOPED = st.builds(
    lambda engine, context, pdu, request_id, status, index, varbinds: encode_tlv(
        0x30,
        encode_tlv(0x04, engine)
        + encode_tlv(0x04, context)
        + encode_tlv(
            pdu,
            encode_tlv(0x02, _signed(request_id))
            + encode_tlv(0x02, _signed(status))
            + encode_tlv(0x02, _signed(index))
            + encode_tlv(0x30, b"".join(trap_varbinds() * varbinds)),
        ),
    ),
    engine=st.binary(max_size=40),
    context=st.binary(max_size=40),
    pdu=st.sampled_from([0xA0, 0xA1, 0xA2, 0xA3, 0xA5, 0xA6, 0xA7, 0xA8]),
    request_id=st.integers(-(2**31), I32_MAX),
    status=st.sampled_from([0, 1, -1]) | st.integers(-(2**31), I32_MAX),
    index=st.sampled_from([0, 1, -1]) | st.integers(-(2**31), I32_MAX),
    varbinds=st.integers(0, 40),
)


@FUZZ
@given(data=SCOPED)
def test_the_usual_head_reader_takes_usual_scoped_pdus_as_the_general_one_reads_them(
    data: bytes,
) -> None:
    # the contents from offset 2 (the readers are given where they start)
    data = b"\x30\x00" + data[2 + (data[1] & 0x7F if data[1] & 0x80 else 0) :]
    read = general_head(data)
    if isinstance(read, DecodeError):  # e.g. a negative non-repeaters in a GetBulk
        assert berv3._scoped_head_usual(data, 2, len(data)) is None
        return
    assert berv3._scoped_head_usual(data, 2, len(data)) == read


@FUZZ
@given(message=mutants(SCOPED))
def test_the_usual_head_reader_returns_what_the_general_one_does_or_nothing(
    message: bytes,
) -> None:
    try:
        usual = berv3._scoped_head_usual(message, 2, len(message))
    except IndexError:
        usual = None
    assert usual is None or usual == general_head(message)
    assert decode_scoped_pdu(message) == general_scoped(message)


def general_scoped(data: bytes) -> object:
    """decode_scoped_pdu as it was: the general head reader only."""
    try:
        start, stop = berv3._expect(data, 0, len(data), 0x30)
        head = berv3._scoped_head(data, start, stop)
        varbinds, pos = berv3._varbinds(data, head[-1], stop, True, 0)
    except berv3._Bad as bad:
        return DecodeError(bad.reason, bad.offset)
    if pos != stop:
        return DecodeError("trailing_bytes", pos)
    return berv3.ScopedPdu(*head[:-1], varbinds, (head[-1], pos))
