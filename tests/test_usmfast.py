"""USM fast path units: key derivation, the level rule, and fuzzing against pysnmp.

The fuzz tests build authentic SNMPv3 traps (right digest, real encryption)
around hypothesis-generated ScopedPDUs, and mutate such messages, then demand
that the fast path and pysnmp reach the same outcome (same notification or same
rejection) and that nothing raises out of the fast path.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pyasn1.type.univ import OctetString
from pysnmp.entity import config as pconfig

from netalert.config.models import TrapUser
from netalert.snmp.types import SnmpType
from netalert.snmp.wire.ber import DecodeError
from netalert.snmp.wire.berenc import encode_oid, encode_tlv
from netalert.snmp.wire.berv3 import (
    FLAG_AUTH,
    FLAG_PRIV,
    V3Header,
    decode_scoped_pdu,
    decode_v3_header,
)
from netalert.snmp.wire.usm import (
    AUTH_HASHES,
    PRIV_KEY_SIZES,
    FastTrap,
    UsmFast,
    cfb_decrypt,
    extend_key,
    localize_key,
    password_to_master,
    refuses_level,
)
from netalert.traps.stats import RejectReason
from netalert.traps.v3 import V3Engine, V3Notification
from netalert.traps.v3pysnmp import AUTH_PROTOCOLS, PRIV_PROTOCOLS
from tests.support.v3build import build_v3, int_tlv, master_key, varbind
from tests.support.v3build import scoped_pdu as _scoped_pdu

ENGINE = bytes.fromhex("80000000c0ffee0102")
OWN = bytes.fromhex("80001f88046f776e")
SOURCE = ("127.0.0.1", 40162)
USERS = {  # name: (auth, priv)
    "shaaes": ("SHA", "AES-128"),
    "md5des": ("MD5", "DES"),
    "sha256": ("SHA-256", None),
}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _users() -> list[TrapUser]:
    return [
        TrapUser.model_validate(
            {
                "user": name,
                "auth_protocol": auth,
                "auth_password": f"auth-{name}",
                "priv_protocol": priv,
                "priv_password": f"priv-{name}" if priv else None,
                "engine_ids": [ENGINE.hex()],
            }
        )
        for name, (auth, priv) in USERS.items()
    ]


# --- key derivation ----------------------------------------------------------------


def test_rfc3414_appendix_a3_vectors() -> None:
    engine = bytes.fromhex("000000000000000000000002")
    md5 = password_to_master(b"maplesyrup", "md5")
    assert md5.hex() == "9faf3283884e92834ebc9847d8edd963"
    assert localize_key(md5, engine, "md5").hex() == "526f5eed9fcce26f8964c2930787d82b"
    sha = password_to_master(b"maplesyrup", "sha1")
    assert sha.hex() == "9fb5cc0381497b3793528939ff788d5d79145211"
    assert localize_key(sha, engine, "sha1").hex() == "6695febc9288e36282235fc7151f128497b38f3f"


@pytest.mark.parametrize("auth", list(AUTH_HASHES))
def test_auth_keys_match_pysnmp(auth: str) -> None:
    service = pconfig.AUTH_SERVICES[AUTH_PROTOCOLS[auth]]
    hash_name, digest_len = AUTH_HASHES[auth]
    master = password_to_master(b"a-long-password", hash_name)
    assert master == bytes(service.hash_passphrase(b"a-long-password"))
    assert localize_key(master, ENGINE, hash_name) == bytes(
        service.localize_key(master, OctetString(ENGINE))
    )
    assert digest_len == service.digest_length


@pytest.mark.parametrize("auth", list(AUTH_HASHES))
@pytest.mark.parametrize("priv", list(PRIV_KEY_SIZES))
def test_priv_keys_match_pysnmp(auth: str, priv: str) -> None:
    service = pconfig.PRIV_SERVICES[PRIV_PROTOCOLS[priv]]
    hash_name, _ = AUTH_HASHES[auth]
    master = password_to_master(b"priv-password", hash_name)
    assert master == bytes(service.hash_passphrase(AUTH_PROTOCOLS[auth], b"priv-password"))
    ours = extend_key(localize_key(master, ENGINE, hash_name), PRIV_KEY_SIZES[priv], hash_name)
    theirs = service.localize_key(AUTH_PROTOCOLS[auth], master, OctetString(ENGINE))
    assert ours == bytes(theirs)[: PRIV_KEY_SIZES[priv]]


def test_extend_key_appends_digests_of_the_key_so_far() -> None:
    short = bytes(range(16))
    first = hashlib.md5(short).digest()
    assert extend_key(short, 32, "md5") == short + first
    second = hashlib.md5(short + first).digest()
    assert extend_key(short, 40, "md5") == short + first + second[:8]
    assert extend_key(bytes(range(28)), 24, "sha224") == bytes(range(24))


@FUZZ
@given(
    key=st.sampled_from([16, 24, 32]).flatmap(lambda size: st.binary(min_size=size, max_size=size)),
    iv=st.binary(min_size=16, max_size=16),
    messages=st.lists(st.binary(max_size=100), min_size=1, max_size=3),
)
def test_cfb_decryption_through_one_ecb_context_is_cfb128(
    key: bytes, iv: bytes, messages: list[bytes]
) -> None:
    """AES-CFB128 decryption (RFC 3826) from one reused ECB encryptor per key, message after
    message, gives what a CFB decryptor made for each message gives."""
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    for ciphertext in messages:
        reference = Cipher(algorithms.AES(key), CFB(iv)).decryptor()
        expected = reference.update(ciphertext) + reference.finalize()
        assert cfb_decrypt(ecb, iv, ciphertext) == expected


def test_empty_password_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        password_to_master(b"", "sha1")


@pytest.mark.parametrize(
    ("flags", "has_auth", "refused"),
    [
        (0, True, True),
        (FLAG_AUTH, True, False),
        (FLAG_AUTH | FLAG_PRIV, True, False),
        (0x04, True, True),  # reportable alone is no authentication
        (0, False, False),
        (FLAG_AUTH, False, False),  # pysnmp decides what an auth flag without a key means
    ],
)
def test_refuses_level(flags: int, has_auth: bool, refused: bool) -> None:
    assert refuses_level(flags, user_has_auth=has_auth) is refused


# --- building authentic messages -----------------------------------------------------


def _int(value: int) -> bytes:
    return int_tlv(value)


def build(
    user: str,
    scoped: bytes,
    *,
    engine: bytes = ENGINE,
    boots: int = 3,
    time: int = 1234,
    salt: bytes = b"saltsalt",
    digest_len: int | None = None,
) -> bytes:
    """An authentic v3 message of ``user`` (its configured level) carrying ``scoped``."""
    auth, priv = USERS[user]
    return build_v3(
        user,
        scoped,
        engine=engine,
        level="authPriv" if priv else "authNoPriv",
        auth=auth,
        auth_password=f"auth-{user}",
        priv=priv,
        priv_password=f"priv-{user}",
        boots=boots,
        time=time,
        salt=salt,
        digest_len=digest_len,
    )


def scoped_pdu(varbinds: list[bytes], *, pdu: int = 0xA7, context: bytes = b"") -> bytes:
    return _scoped_pdu(varbinds, pdu=pdu, context_engine=ENGINE, context=context)


TRAP_VARBINDS = [
    varbind("1.3.6.1.2.1.1.3.0", encode_tlv(0x43, b"\x01\x00")),
    varbind("1.3.6.1.6.3.1.1.4.1.0", encode_tlv(0x06, encode_oid("1.3.6.1.6.3.1.1.5.3"))),
    varbind("1.3.6.1.2.1.2.2.1.1.3", _int(3)),
]


class Engines:
    """A fast and a pysnmp-only V3Engine with the same users."""

    def __init__(self) -> None:
        self.notes: dict[bool, list[V3Notification]] = {True: [], False: []}
        self.replies = 0
        self.accepted_fast = 0
        self.engines = {
            # A frozen clock: these identical built traps are fed for the whole module, which
            # must not run into the 150 s time window (tests/test_timeliness.py covers it).
            fast: V3Engine(
                _users(),
                OWN,
                on_notification=self.notes[fast].append,
                send=self._send,
                fast=fast,
                clock=lambda: 0.0,
            )
            for fast in (True, False)
        }

    def _send(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.replies += 1  # pysnmp may send a Report to a reportable message

    def usm(self) -> UsmFast:
        return self.engines[True]._usm

    def outcome(self, data: bytes) -> tuple[Any, ...]:
        """Runs ``data`` through both; asserts they agree; returns (reason, notes)."""
        header = decode_v3_header(data)
        if isinstance(header, DecodeError):
            return (f"header:{header.reason}", [])  # the receiver stops here on both paths
        seen = []
        for fast, engine in self.engines.items():
            self.notes[fast].clear()
            reason = engine.handle(data, SOURCE, header)
            self.accepted_fast += sum(note.fast for note in self.notes[fast])
            seen.append((reason, [replace(note, fast=False) for note in self.notes[fast]]))
        assert seen[0] == seen[1], f"fast {seen[0]} != pysnmp {seen[1]} for {data.hex()}"
        assert self.usm().internal_errors == 0
        return seen[0]


@cache
def engines() -> Engines:
    return Engines()


@pytest.mark.parametrize("user", list(USERS))
def test_built_traps_are_accepted_by_both_paths(user: str) -> None:
    data = build(user, scoped_pdu(TRAP_VARBINDS, context=b"ctx"))
    header = decode_v3_header(data)
    assert isinstance(header, V3Header)
    assert isinstance(engines().usm().receive(data, header), FastTrap)
    reason, (note,) = engines().outcome(data)
    assert reason is None
    assert (note.user, note.engine_id) == (user, ENGINE)
    assert note.varbinds[2] == ("1.3.6.1.2.1.2.2.1.1.3", SnmpType.INTEGER, 3)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("inform", RejectReason.UNEXPECTED_PDU),  # an inform must name our engine ID
        ("own_engine", RejectReason.NOT_IN_TIME_WINDOW),  # authoritative checks: pysnmp's
        ("latched_boots", RejectReason.NOT_IN_TIME_WINDOW),
        ("short_digest", RejectReason.BAD_DIGEST),
        ("long_digest", RejectReason.BAD_DIGEST),
        ("no_trap_pdu", RejectReason.UNEXPECTED_PDU),  # a Get to the trap port
    ],
)
def test_what_the_fast_path_leaves_to_pysnmp_ends_alike(case: str, reason: RejectReason) -> None:
    good = scoped_pdu(TRAP_VARBINDS)
    data = {
        "inform": lambda: build("shaaes", scoped_pdu(TRAP_VARBINDS, pdu=0xA6)),
        "own_engine": lambda: build("shaaes", good, engine=OWN),
        "latched_boots": lambda: build("shaaes", good, boots=2**31 - 1),
        "short_digest": lambda: build("md5des", good, digest_len=11),
        "long_digest": lambda: build("sha256", good, digest_len=32),
        "no_trap_pdu": lambda: build("sha256", scoped_pdu(TRAP_VARBINDS, pdu=0xA0)),
    }[case]()
    assert engines().outcome(data) == (reason, [])


# --- fuzzing --------------------------------------------------------------------------

OIDS = st.sampled_from(
    ["1.3.6.1.2.1.1.3.0", "1.3.6.1.6.3.1.1.4.1.0", "1.3.6.1.2.1.2.2.1.8.3", "1.3.6.1.4.1.9.9.1"]
)
VALUES = st.one_of(
    st.integers(-(2**33), 2**33).map(_int),
    st.binary(max_size=20).map(lambda raw: encode_tlv(0x04, raw)),
    st.sampled_from([b"\x05\x00", b"\x80\x00", b"\x81\x00", b"\x82\x00", b"\x05\x01\x00"]),
    st.tuples(st.sampled_from([0x41, 0x42, 0x43, 0x46]), st.integers(0, 2**66)).map(
        lambda tv: encode_tlv(tv[0], tv[1].to_bytes(tv[1].bit_length() // 8 + 1, "big"))
    ),
    st.binary(max_size=6).map(lambda raw: encode_tlv(0x40, raw)),
    st.binary(max_size=6).map(lambda raw: encode_tlv(0x44, raw)),
    OIDS.map(lambda oid: encode_tlv(0x06, encode_oid(oid))),
    st.binary(max_size=8),  # not a TLV at all
)
VARBINDS = st.lists(st.tuples(OIDS, VALUES).map(lambda ov: varbind(*ov)), max_size=6)
SCOPED = st.one_of(
    st.tuples(
        VARBINDS,
        st.sampled_from([0xA7, 0xA7, 0xA7, 0xA6, 0xA8, 0xA2, 0xA4, 0x30]),
        st.binary(max_size=4),
        st.binary(max_size=8),
    ).map(lambda t: scoped_pdu(TRAP_VARBINDS[:2] + t[0], pdu=t[1], context=t[2]) + t[3]),
    st.binary(max_size=120),
)


@FUZZ
@given(user=st.sampled_from(list(USERS)), scoped=SCOPED)
def test_authentic_fuzzed_pdus_end_alike_on_both_paths(user: str, scoped: bytes) -> None:
    """Right digest, right keys, anything inside: the fast path agrees with pysnmp or defers."""
    if USERS[user][1] is None and not scoped.startswith(b"\x30"):
        scoped = encode_tlv(0x30, scoped)  # a plaintext ScopedPDU must frame as a SEQUENCE
    before = engines().accepted_fast
    reason, notes = engines().outcome(build(user, scoped))
    assert (reason is None) == bool(notes)
    event(f"outcome: {reason}, fast path: {engines().accepted_fast > before}")


@FUZZ
@given(
    user=st.sampled_from(list(USERS)),
    edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 40),
)
def test_mutated_messages_end_alike_on_both_paths(
    user: str, edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(build(user, scoped_pdu(TRAP_VARBINDS)))
    for pos, byte in edits:
        data[pos % len(data)] = byte
    mutated = bytes(data[: len(data) - cut])
    reason, notes = engines().outcome(mutated)
    event(f"outcome: {reason}")
    if mutated == build(user, scoped_pdu(TRAP_VARBINDS)):
        assert (reason, len(notes)) == (None, 1)
    else:
        assert notes == []  # every byte is covered by the digest


@FUZZ
@given(garbage=st.binary(max_size=300), prefix=st.sampled_from([b"", b"\x30\x81", b"0\x82"]))
def test_garbage_never_raises_out_of_the_fast_path(garbage: bytes, prefix: bytes) -> None:
    data = prefix + garbage
    header = decode_v3_header(data)
    usm = engines().usm()
    if isinstance(header, V3Header):
        assert not isinstance(usm.receive(data, header), FastTrap)
    assert usm.internal_errors == 0


# --- informs: the fast path answers them as pysnmp does ---------------------------------


def _open_response(user: str, data: bytes) -> tuple[V3Header, Any]:
    """A Response's header and ScopedPDU, after checking its digest with ``user``'s keys
    localized to the receiver's engine ID (what the inform sender does)."""
    auth, priv = USERS[user]
    hash_name, size = AUTH_HASHES[auth]
    header = decode_v3_header(data)
    assert isinstance(header, V3Header)
    key = localize_key(master_key(f"auth-{user}".encode(), hash_name), OWN, hash_name)
    zeroed = data[: header.auth_at] + bytes(size) + data[header.auth_at + size :]
    assert hmac.digest(key, zeroed, hash_name)[:size] == header.auth_params, "bad digest"
    start, stop = header.data_at
    if priv is None:
        return header, decode_scoped_pdu(data, (start, stop))
    master = master_key(f"priv-{user}".encode(), hash_name)
    pkey = extend_key(localize_key(master, OWN, hash_name), PRIV_KEY_SIZES[priv], hash_name)
    salt = header.priv_params
    if priv == "DES":
        iv = bytes(a ^ b for a, b in zip(salt, pkey[8:16], strict=True))
        dec = Cipher(TripleDES(pkey[:8] * 3), modes.CBC(iv)).decryptor()
    else:
        iv = header.boots.to_bytes(4, "big") + header.time.to_bytes(4, "big") + salt
        dec = Cipher(algorithms.AES(pkey), CFB(iv)).decryptor()
    return header, decode_scoped_pdu(dec.update(data[start:stop]) + dec.finalize())


class Replies:
    """A fast and a pysnmp-only V3Engine (real clock) that keep what they send."""

    def __init__(self) -> None:
        self.sent: dict[bool, list[bytes]] = {True: [], False: []}
        self.notes: dict[bool, list[V3Notification]] = {True: [], False: []}
        self.engines = {
            fast: V3Engine(
                _users(),
                OWN,
                on_notification=self.notes[fast].append,
                send=lambda data, _addr, fast=fast: self.sent[fast].append(data),
                fast=fast,
            )
            for fast in (True, False)
        }

    def inform(self, user: str, *, skew: int = 0, **kwargs: Any) -> bytes:
        boots, now = self.engines[True].engine_time()
        return build(
            user,
            scoped_pdu(TRAP_VARBINDS, pdu=0xA6, context=b"ctx"),
            engine=OWN,
            boots=boots,
            time=now + skew,
            **kwargs,
        )

    def run(self, data: bytes) -> dict[bool, tuple[Any, ...]]:
        header = decode_v3_header(data)
        assert isinstance(header, V3Header)
        out = {}
        for fast, engine in self.engines.items():
            self.sent[fast].clear()
            self.notes[fast].clear()
            reason = engine.handle(data, SOURCE, header)
            out[fast] = (reason, list(self.notes[fast]), list(self.sent[fast]))
        assert self.engines[True]._usm.internal_errors == 0
        return out


@pytest.mark.parametrize("user", list(USERS))
def test_an_inform_is_answered_by_the_fast_path_as_by_pysnmp(user: str) -> None:
    replies = Replies()
    data = replies.inform(user)
    header = decode_v3_header(data)
    assert isinstance(header, V3Header)
    taken = replies.engines[True]._usm.receive(data, header)
    assert isinstance(taken, FastTrap) and taken.response
    out = replies.run(data)
    answers = {}
    for fast, (reason, notes, sent) in out.items():
        assert reason is None
        (note,) = notes
        assert (note.fast, note.inform, note.user, note.engine_id) == (fast, True, user, ENGINE)
        (response,) = sent
        answers[fast] = _open_response(user, response)
    (ours, our_pdu), (theirs, their_pdu) = answers[True], answers[False]
    boots = replies.engines[True].engine_time()[0]
    assert (ours.engine_id, ours.user, ours.msg_id, ours.boots) == (OWN, user.encode(), 77, boots)
    assert (ours.engine_id, ours.user, ours.msg_id, ours.boots, ours.flags) == (
        theirs.engine_id,
        theirs.user,
        theirs.msg_id,
        theirs.boots,
        theirs.flags,
    )
    assert abs(ours.time - theirs.time) <= 5  # seconds apart on a loaded machine
    assert our_pdu.pdu_type == their_pdu.pdu_type == 0xA2
    assert (our_pdu.request_id, our_pdu.error_status, our_pdu.error_index) == (4242, 0, 0)
    assert (our_pdu.context_engine_id, our_pdu.context_name) == (ENGINE, b"ctx")
    assert (our_pdu.varbinds, our_pdu.request_id) == (their_pdu.varbinds, their_pdu.request_id)
    assert (our_pdu.context_engine_id, our_pdu.context_name) == (
        their_pdu.context_engine_id,
        their_pdu.context_name,
    )


def test_responses_never_reuse_a_salt() -> None:
    replies = Replies()
    salts = set()
    for _ in range(5):
        (_, _, (response,)) = replies.run(replies.inform("shaaes"))[True]
        salts.add(_open_response("shaaes", response)[0].priv_params)
    assert len(salts) == 5


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("forged", RejectReason.BAD_DIGEST),  # a wrong digest: no Response, no notification
        ("stale", RejectReason.NOT_IN_TIME_WINDOW),  # outside +-150 s: pysnmp's Report
        ("wrong_boots", RejectReason.NOT_IN_TIME_WINDOW),
        ("short_digest", RejectReason.BAD_DIGEST),
    ],
)
def test_an_inform_the_fast_path_cannot_answer_ends_as_with_pysnmp(
    case: str, reason: RejectReason
) -> None:
    replies = Replies()
    if case == "forged":
        good = bytearray(replies.inform("md5des"))
        header = decode_v3_header(bytes(good))
        assert isinstance(header, V3Header)
        good[header.auth_at] ^= 0x01
        data = bytes(good)
    elif case == "wrong_boots":
        boots, now = replies.engines[True].engine_time()
        scoped = scoped_pdu(TRAP_VARBINDS, pdu=0xA6)
        data = build("shaaes", scoped, engine=OWN, boots=boots + 1, time=now + 10)
    else:
        data = {
            "stale": lambda: replies.inform("sha256", skew=400),
            "short_digest": lambda: replies.inform("sha256", digest_len=11),
        }[case]()
    header = decode_v3_header(data)
    assert isinstance(header, V3Header)
    assert replies.engines[True]._usm.receive(data, header) is None  # left to pysnmp
    out = replies.run(data)
    for fast in (True, False):
        got, notes, sent = out[fast]
        assert (got, notes) == (reason, [])
        # no Response: at most pysnmp's Report, the same on both paths
        assert [decode_v3_header(m).flags for m in sent] == [  # type: ignore[union-attr]
            decode_v3_header(m).flags  # type: ignore[union-attr]
            for m in out[False][2]
        ]
        for message in sent:
            header = decode_v3_header(message)
            assert isinstance(header, V3Header)
            assert header.flags & FLAG_PRIV == 0  # a Report is never encrypted


@cache
def replies() -> Replies:
    return Replies()


INFORMS = st.tuples(VARBINDS, st.binary(max_size=4), st.sampled_from([b"", b"\x00" * 3])).map(
    lambda t: scoped_pdu(TRAP_VARBINDS[:2] + t[0], pdu=0xA6, context=t[1]) + t[2]
)


@FUZZ
@given(user=st.sampled_from(list(USERS)), scoped=st.one_of(INFORMS, SCOPED))
def test_authentic_fuzzed_informs_end_alike_on_both_paths(user: str, scoped: bytes) -> None:
    """Right digest, right keys, the receiver's engine and clock, anything inside: the fast
    path answers exactly what pysnmp answers, with the same notification, or defers."""
    if USERS[user][1] is None and not scoped.startswith(b"\x30"):
        scoped = encode_tlv(0x30, scoped)
    engines = replies()
    boots, now = engines.engines[True].engine_time()
    data = build(user, scoped, engine=OWN, boots=boots, time=now + 1)
    if isinstance(decode_v3_header(data), DecodeError):
        event("outcome: header refused")  # the receiver stops there on both paths
        return
    out = engines.run(data)
    (reason, notes, sent), (slow_reason, slow_notes, slow_sent) = out[True], out[False]
    assert (reason, [replace(n, fast=False) for n in notes]) == (slow_reason, slow_notes)
    assert len(sent) == len(slow_sent)
    for response, theirs in zip(sent, slow_sent, strict=True):
        ours_pdu, their_pdu = _open_response(user, response)[1], _open_response(user, theirs)[1]
        assert (ours_pdu.pdu_type, ours_pdu.request_id, ours_pdu.varbinds) == (
            their_pdu.pdu_type,
            their_pdu.request_id,
            their_pdu.varbinds,
        )
    event(f"outcome: {reason}, answered: {bool(sent)}, fast: {any(n.fast for n in notes)}")
