"""The v3 inform fast path's cheap Response is the general encoder's, byte for byte.

The fast path builds its Responses from the inform's own bytes and from a
frame made once a second, signs them with precomputed HMAC states and
encrypts them through a reused cipher; the general path encodes every field
with :mod:`netalert.snmp.wire.berenc` and signs with ``hmac.digest``. Random
informs (every authentication and privacy protocol, any msgID, request-id,
boots, time, salt, context, variable bindings, and inform encodings the cheap
path must refuse to copy) must get the same bytes from both.
"""

from __future__ import annotations

import hmac
from functools import cache
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from netalert.config.models import TrapUser
from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import DecodeError
from netalert.snmp.wire.berenc import (
    encode_oid,
    encode_response_scoped_pdu,
    encode_tlv,
    encode_v3_message,
    encode_value,
)
from netalert.snmp.wire.berv3 import (
    FLAG_AUTH,
    FLAG_PRIV,
    ScopedPdu,
    V3Header,
    decode_scoped_pdu,
    decode_v3_header,
)
from netalert.snmp.wire.usm import (
    AUTH_HASHES,
    PRIV_KEY_SIZES,
    FastTrap,
    UsmFast,
    localize_key,
    password_to_master,
)
from netalert.snmp.wire.usmreply import HmacKey
from tests.support.v3build import build_v3, encrypt, int_tlv, trap_varbinds, varbind

OWN = bytes.fromhex("80001f88056f776e0102030405060708")
# one user per authentication protocol and privacy protocol (or none)
USERS = {f"{auth}.{priv}": (auth, priv) for auth in AUTH_HASHES for priv in [None, *PRIV_KEY_SIZES]}
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def usm() -> UsmFast:
    users = [
        TrapUser.model_validate(
            {
                "user": name,
                "auth_protocol": auth,
                "auth_password": f"auth-{name}",
                "priv_protocol": priv,
                "priv_password": f"priv-{name}" if priv else None,
            }
        )
        for name, (auth, priv) in USERS.items()
    ]
    return UsmFast(users, OWN, engine_time=lambda: (1, 1))


@given(
    hash_name=st.sampled_from([name for name, _ in AUTH_HASHES.values()]),
    key=st.binary(max_size=200),
    messages=st.lists(st.binary(max_size=300), min_size=1, max_size=3),
)
def test_hmac_key_is_hmac(hash_name: str, key: bytes, messages: list[bytes]) -> None:
    """Message after message (the precomputed states are copied, never used up), keys
    shorter and longer than the hash's block."""
    mac = HmacKey(key, hash_name)
    for message in messages:
        assert mac.digest(message) == hmac.digest(key, message, hash_name)


VALUES = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(lambda v: encode_value(SnmpType.INTEGER, v)),
    st.binary(max_size=300).map(lambda raw: encode_tlv(0x04, raw)),
    st.integers(0, 2**64 - 1).map(lambda v: encode_value(SnmpType.COUNTER64, v)),
    st.just(b"\x05\x00"),
)
OIDS = st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=12).map(
    lambda arcs: "1.3." + ".".join(map(str, arcs))
)


def _length(size: int, extra: int) -> bytes:
    """A definite length, ``extra`` bytes longer than the minimal form (BER allows it)."""
    if not extra and size < 0x80:
        return bytes((size,))
    raw = size.to_bytes(max((size.bit_length() + 7) // 8, 1) + extra - (size < 0x80), "big")
    return bytes((0x80 | len(raw),)) + raw


def _tlv(tag: int, content: bytes, extra: int = 0) -> bytes:
    return bytes((tag,)) + _length(len(content), extra) + content


@st.composite
def informs(draw: st.DrawFn) -> bytes:
    """An inform's plaintext ScopedPDU, usually in the general encoder's form, sometimes
    not (a longer length, a request-id with a needless leading byte, an error-status)."""
    odd = draw(st.sampled_from(["", "", "", "seq", "name", "pdu", "request_id", "error"]))
    request_id = draw(st.integers(-(2**31), 2**31 - 1))
    rid = int_tlv(request_id)
    if odd == "request_id":
        pad = b"\xff" if request_id < 0 else b"\x00"
        rid = encode_tlv(0x02, pad + rid[2:])
    error = int_tlv(draw(st.integers(1, 5)) if odd == "error" else 0)
    items = draw(st.lists(st.tuples(OIDS, VALUES), max_size=12))
    varbinds = b"".join(
        [
            varbind("1.3.6.1.2.1.1.3.0", encode_value(SnmpType.TIMETICKS, 1234)),
            varbind("1.3.6.1.6.3.1.1.4.1.0", encode_tlv(0x06, encode_oid("1.3.6.1.6.3.1.1.5.3"))),
            *(varbind(oid, value) for oid, value in items),
        ]
    )
    pdu = _tlv(0xA6, rid + error + int_tlv(0) + encode_tlv(0x30, varbinds), odd == "pdu")
    engine = draw(st.binary(max_size=32))
    name = _tlv(0x04, draw(st.binary(max_size=200)), odd == "name")
    return _tlv(0x30, encode_tlv(0x04, engine) + name + pdu, odd == "seq")


@PROPERTY
@given(
    user=st.sampled_from(list(USERS)),
    scoped=informs(),
    msg_id=st.integers(0, 2**31 - 1),
    boots=st.integers(0, 2**31 - 2),
    now=st.integers(0, 2**31 - 1),
    counter=st.integers(0, 2**64 - 1),
)
@example(user="SHA.AES-128", scoped=b"", msg_id=77, boots=1, now=100, counter=0).via("the bench's")
def test_the_cheap_response_is_the_general_encoders(
    user: str, scoped: bytes, msg_id: int, boots: int, now: int, counter: int
) -> None:
    scoped = scoped or _bench_scoped()  # the bench's inform, 6 varbinds
    salt = counter.to_bytes(8, "big")
    data = _inform(user, scoped, boots=boots, time=now, salt=salt, msg_id=msg_id)
    header = decode_v3_header(data)
    assert isinstance(header, V3Header)
    fast = usm()
    keys = _keys(fast, header.user)
    start, stop = header.data_at
    if USERS[user][1]:
        plain = fast._decrypt(keys, header, data[start:stop])
        assert plain is not None
        request = decode_scoped_pdu(plain)
    else:
        plain, request = data, decode_scoped_pdu(data, (start, stop))
    assert not isinstance(request, DecodeError), request
    ours = fast._answer(fast._users[header.user], keys, header, request, plain, boots, now, counter)
    assert ours == general_response(user, header, request, plain, boots, now, counter)


@cache
def _auth_key(user: str) -> bytes:
    hash_name = AUTH_HASHES[USERS[user][0]][0]
    master = password_to_master(f"auth-{user}".encode(), hash_name)
    return localize_key(master, OWN, hash_name)


def general_response(
    user: str, header: V3Header, request: ScopedPdu, plain: bytes, boots: int, now: int, salts: int
) -> bytes:
    """The Response the general encoder makes, field by field, signed with ``hmac.digest``
    and encrypted with a cipher made for it (the salt from the counter ``salts``)."""
    auth, priv = USERS[user]
    hash_name, size = AUTH_HASHES[auth]
    list_start, list_stop = request.varbinds_at
    msg_data = encode_response_scoped_pdu(
        request.context_engine_id,
        request.context_name,
        request.request_id,
        plain[list_start:list_stop],
    )
    salt = b""
    if priv is not None:
        salt = salts.to_bytes(8, "big")  # RFC 3826: a 64-bit counter
        if priv == "DES":  # RFC 3414 section 8.1.1.1: boots, then a 32-bit counter
            salt = boots.to_bytes(4, "big") + (salts & 0xFFFF_FFFF).to_bytes(4, "big")
        password = f"priv-{user}"
        msg_data = encode_tlv(
            0x04, encrypt(msg_data, OWN, hash_name, priv, password, salt, boots, now)
        )
    message, at = encode_v3_message(
        msg_id=header.msg_id,
        max_size=65507,
        flags=FLAG_AUTH | (FLAG_PRIV if priv else 0),
        engine_id=OWN,
        boots=boots,
        time=now,
        user=user.encode(),
        auth_len=size,
        priv_params=salt,
        msg_data=msg_data,
    )
    digest = hmac.digest(_auth_key(user), message, hash_name)[:size]
    return message[:at] + digest + message[at + size :]


def _inform(user: str, scoped: bytes, **fields: Any) -> bytes:
    """An authentic inform of ``user`` to the receiver's engine (``fields``: build_v3's)."""
    auth, priv = USERS[user]
    level = "authPriv" if priv else "authNoPriv"
    keys = {"auth_password": f"auth-{user}", "priv_password": f"priv-{user}"}
    return build_v3(user, scoped, engine=OWN, level=level, auth=auth, priv=priv, **keys, **fields)


def _keys(fast: UsmFast, user: bytes) -> Any:
    return fast._keys.get((user, OWN)) or fast._localize(fast._users[user], OWN)


def _bench_scoped() -> bytes:
    """A linkDown inform's ScopedPDU, 6 varbinds, in the form net-snmp sends."""
    ports = [
        varbind(f"1.3.6.1.2.1.2.2.1.{column}.3", int_tlv(value))
        for column, value in [(7, 1), (8, 2)]
    ]
    name = varbind("1.3.6.1.2.1.2.2.1.2.3", encode_tlv(0x04, b"GigabitEthernet0/3"))
    body = b"".join([*trap_varbinds(), *ports, name])
    pdu = encode_tlv(0xA6, int_tlv(4242) + int_tlv(0) + int_tlv(0) + encode_tlv(0x30, body))
    return encode_tlv(0x30, encode_tlv(0x04, OWN) + encode_tlv(0x04, b"") + pdu)


def test_an_inform_is_answered_with_the_cheap_response() -> None:
    """What receive() sends is the cheap Response (the general one with the same salt)."""
    fast = usm()
    data = _inform("SHA.AES-128", _bench_scoped(), boots=1, time=1)
    header = decode_v3_header(data)
    assert isinstance(header, V3Header)
    counter = fast._salt
    taken = fast.receive(data, header)
    assert isinstance(taken, FastTrap) and taken.response
    keys = _keys(fast, header.user)
    start, stop = header.data_at
    plain = fast._decrypt(keys, header, data[start:stop])
    assert plain is not None
    request = decode_scoped_pdu(plain)
    assert not isinstance(request, DecodeError)
    reference = general_response("SHA.AES-128", header, request, plain, 1, 1, counter + 1)
    assert taken.response == reference
    assert fast._salt == counter + 1
