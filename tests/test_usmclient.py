"""The manager's side of the USM (snmp/wire/usmclient.py): requests as the agent reads them.

snmpd is the judge of the whole exchange (tests/test_snmp_client.py runs the
native backend against it at every level); these check, in this process, that a
request's shortcut encoding is the general encoder's, and that what a peer sends
is signed and encrypted as RFC 3414 and RFC 3826 say, read back with the
fuzzers' independent builder (fuzz/v3build.py).
"""

from __future__ import annotations

import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.v3build import FuzzUser, decrypt
from netalert.snmp.wire.berenc import encode_v3_message
from netalert.snmp.wire.berv3 import (
    FLAG_REPORTABLE,
    ScopedPdu,
    V3Header,
    decode_scoped_pdu,
    decode_v3_header,
)
from netalert.snmp.wire.request import pdu
from netalert.snmp.wire.usm import AUTH_HASHES, localize_key, password_to_master
from netalert.snmp.wire.usmclient import Discovered, UsmPeer, UsmUser

pytestmark = pytest.mark.unit

LEVELS = [
    ("plain", None, None),
    ("authsha", "SHA", None),
    ("privaes", "SHA-256", "AES-128"),
    ("privdes", "MD5", "DES"),
    ("privaes256", "SHA-384", "AES-256"),
]


def peer(
    name: str, auth: str | None, priv: str | None, engine: bytes, boots: int, at: int
) -> UsmPeer:
    fuzz_user = FuzzUser(name, auth, priv)
    made = UsmPeer(UsmUser(name, auth, fuzz_user.auth_password, priv, fuzz_user.priv_password))
    made.learn(Discovered(engine, boots, at))
    return made


@settings(max_examples=60, deadline=None)
@given(
    level=st.sampled_from(LEVELS),
    engine=st.binary(min_size=5, max_size=32),
    boots=st.integers(0, 2**31 - 1),
    now=st.integers(0, 2**31 - 1),
    msg_id=st.integers(0x0100_0000, 2**31 - 1),
    data=st.binary(max_size=300),
)
def test_the_shortcut_message_is_the_general_encoders(
    level: tuple[str, str | None, str | None],
    engine: bytes,
    boots: int,
    now: int,
    msg_id: int,
    data: bytes,
) -> None:
    made = peer(*level, engine, boots, 0)
    salt = b"8 bytes!" if level[2] else b""
    assert made._message(msg_id, now, salt, data) == encode_v3_message(
        msg_id=msg_id,
        max_size=65507,
        flags=made.user.flags | FLAG_REPORTABLE,
        engine_id=engine,
        boots=boots,
        time=now,
        user=level[0].encode(),
        auth_len=made.user.digest_len,
        priv_params=salt,
        msg_data=data,
    )


@pytest.mark.parametrize("level", LEVELS, ids=[level[0] for level in LEVELS])
def test_a_request_is_signed_and_encrypted_for_the_agent(
    level: tuple[str, str | None, str | None],
) -> None:
    engine = bytes.fromhex("80001f8880aabbccdd01")
    made = peer(*level, engine, 7, 1234)
    sent = pdu(0xA5, 0x0123_4567, ["1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.8"], 0, 25)
    data = made.request(0x0123_4567, sent)
    header = decode_v3_header(data)
    assert isinstance(header, V3Header)
    assert (header.msg_id, header.engine_id, header.boots, header.user) == (
        0x0123_4567,
        engine,
        7,
        level[0].encode(),
    )
    assert 1234 <= header.time <= 1236
    assert header.flags == made.user.flags | FLAG_REPORTABLE
    name, auth, priv = level
    fuzz_user = FuzzUser(name, auth, priv)
    if auth is not None:
        hash_name, size = AUTH_HASHES[auth]
        key = localize_key(
            password_to_master(fuzz_user.auth_password.encode(), hash_name), engine, hash_name
        )
        blank = data[: header.auth_at] + bytes(size) + data[header.auth_at + size :]
        assert hmac.compare_digest(hmac.digest(key, blank, hash_name)[:size], header.auth_params)
    start, stop = header.data_at
    if priv is not None:
        plain = decrypt(
            fuzz_user, data[start:stop], engine, header.boots, header.time, header.priv_params
        )
        assert plain is not None
        scoped = decode_scoped_pdu(plain)
    else:
        scoped = decode_scoped_pdu(data, header.data_at)
    assert isinstance(scoped, ScopedPdu), scoped
    assert scoped.context_engine_id == engine
    assert scoped.pdu_type == 0xA5 and scoped.request_id == 0x0123_4567
    assert [oid for oid, _, _ in scoped.varbinds] == [
        "1.3.6.1.2.1.2.2.1.2",
        "1.3.6.1.2.1.2.2.1.8",
    ]
