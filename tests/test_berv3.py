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
from netalert.snmp.wire.berv3 import V3Header, decode_v3_header
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


@FUZZ
@given(
    data=MESSAGES,
    edits=st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=3),
    cut=st.integers(0, 20),
    tail=st.binary(max_size=3),
)
def test_the_usual_reader_returns_what_the_general_one_does_or_nothing(
    data: bytes, edits: list[tuple[int, int]], cut: int, tail: bytes
) -> None:
    mutated = bytearray(data)
    for pos, byte in edits:
        mutated[pos % len(mutated)] = byte
    message = bytes(mutated[: len(mutated) - cut]) + tail
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
