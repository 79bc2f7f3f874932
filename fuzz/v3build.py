"""SNMPv3 users of the fuzzers and authentic messages for them, built with the project's encoders.

The v3 harnesses (fuzz_pysnmp, fuzz_access) configure :data:`USERS`, one per
security level and several protocol pairs, keyed for :data:`SENDER_ENGINE`;
:data:`OWN_ENGINE` is the receiver's engine ID, which informs name. The seeds
(fuzz/seeds.py) are traps and informs of these users built here, so the fuzzers
start from messages that are accepted, and mutate from there.

Building uses :mod:`netalert.snmp.wire.berenc` for BER, the key derivation of
:mod:`netalert.snmp.wire.usm` (checked against pysnmp and RFC 3414's vectors in
tests/test_usmfast.py) and ``cryptography`` for DES-CBC and AES-CFB.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from netalert.config.models import TrapUser
from netalert.snmp.wire.berenc import encode_oid, encode_tlv
from netalert.snmp.wire.berv3 import (
    FLAG_AUTH,
    FLAG_PRIV,
    FLAG_REPORTABLE,
    V3Header,
    decode_v3_header,
)
from netalert.snmp.wire.usm import (
    AUTH_HASHES,
    PRIV_KEY_SIZES,
    extend_key,
    localize_key,
    password_to_master,
)

__all__ = [
    "NO_AUTH",
    "OWN_ENGINE",
    "SENDER_ENGINE",
    "TRAP_VARBINDS",
    "USERS",
    "FuzzUser",
    "V3Fields",
    "assemble",
    "build_v3",
    "decrypt",
    "discovery_probe",
    "encrypt",
    "scoped_pdu",
    "sign",
    "trap_users",
    "user",
    "varbind",
]

SENDER_ENGINE = bytes.fromhex("80001f8880aabbccdd01")  # the traps' senders (snmptrap -e)
OWN_ENGINE = bytes.fromhex("80001f8804667a7a2d6f776e")  # the receiver's own: informs name it
NO_AUTH = 0


@dataclass(frozen=True, slots=True)
class FuzzUser:
    """One configured v3 user: protocols are None for the levels below."""

    name: str
    auth: str | None = None
    priv: str | None = None

    @property
    def auth_password(self) -> str:
        return f"auth-{self.name}"

    @property
    def priv_password(self) -> str:
        return f"priv-{self.name}"

    @property
    def flags(self) -> int:
        """The msgFlags (auth, priv bits) of this user's configured level."""
        if self.auth is None:
            return NO_AUTH
        return FLAG_AUTH | FLAG_PRIV if self.priv is not None else FLAG_AUTH


USERS: tuple[FuzzUser, ...] = (
    FuzzUser("plain"),  # noAuthNoPriv
    FuzzUser("authsha", "SHA"),  # authNoPriv
    FuzzUser("authsha512", "SHA-512"),
    FuzzUser("privaes", "SHA-256", "AES-128"),  # authPriv
    FuzzUser("privdes", "MD5", "DES"),
    FuzzUser("privaes256", "SHA-384", "AES-256"),
)


def user(name: str) -> FuzzUser:
    """The user called ``name``.

    Raises:
        KeyError: no such user.
    """
    for item in USERS:
        if item.name == name:
            return item
    raise KeyError(name)


def trap_users() -> list[TrapUser]:
    """:data:`USERS` as ``[[traps.users]]`` entries, keyed for :data:`SENDER_ENGINE`."""
    out = []
    for item in USERS:
        entry: dict[str, object] = {"user": item.name, "engine_ids": [SENDER_ENGINE.hex()]}
        if item.auth is not None:
            entry |= {"auth_protocol": item.auth, "auth_password": item.auth_password}
        if item.priv is not None:
            entry |= {"priv_protocol": item.priv, "priv_password": item.priv_password}
        out.append(TrapUser.model_validate(entry))
    return out


def _int(value: int) -> bytes:
    return encode_tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def varbind(oid: str, value: bytes) -> bytes:
    """One encoded VarBind: ``value`` is a whole TLV."""
    return encode_tlv(0x30, encode_tlv(0x06, encode_oid(oid)) + value)


TRAP_VARBINDS: tuple[bytes, ...] = (
    varbind("1.3.6.1.2.1.1.3.0", encode_tlv(0x43, b"\x01\x00")),  # sysUpTime.0
    varbind("1.3.6.1.6.3.1.1.4.1.0", encode_tlv(0x06, encode_oid("1.3.6.1.6.3.1.1.5.3"))),
    varbind("1.3.6.1.2.1.2.2.1.1.3", _int(3)),
    varbind("1.3.6.1.2.1.2.2.1.2.3", encode_tlv(0x04, b"eth3\r\nBcc: x")),
)


def scoped_pdu(
    varbinds: tuple[bytes, ...] = TRAP_VARBINDS,
    *,
    pdu: int = 0xA7,
    context_engine: bytes = SENDER_ENGINE,
    context: bytes = b"",
    request_id: int = 4242,
) -> bytes:
    """An encoded ScopedPDU (RFC 3412 section 6.8) with a v2 PDU of type ``pdu``."""
    head = _int(request_id) + _int(0) + _int(0)
    body = encode_tlv(pdu, head + encode_tlv(0x30, b"".join(varbinds)))
    return encode_tlv(0x30, encode_tlv(0x04, context_engine) + encode_tlv(0x04, context) + body)


@dataclass(frozen=True, slots=True)
class V3Fields:
    """Every field of an SNMPv3 message with USM, for :func:`assemble`.

    ``data`` is the plaintext ScopedPDU, or with the priv flag the ciphertext.
    """

    msg_id: int
    max_size: int
    flags: int
    model: int
    engine: bytes
    boots: int
    time: int
    name: bytes
    auth_params: bytes
    priv_params: bytes
    data: bytes

    @classmethod
    def of(cls, message: bytes, header: V3Header) -> V3Fields:
        """The fields of a decoded message (a plaintext ScopedPDU keeps its SEQUENCE)."""
        start, stop = header.data_at
        data = message[start:stop]
        return cls(
            header.msg_id,
            header.max_size,
            header.flags,
            header.security_model,
            header.engine_id,
            header.boots,
            header.time,
            header.user,
            header.auth_params,
            header.priv_params,
            data if header.flags & FLAG_PRIV else encode_tlv(0x30, data),
        )


def assemble(fields: V3Fields) -> bytes:
    """The message of ``fields``, with minimal lengths; the digest is not computed."""
    usm = encode_tlv(
        0x30,
        encode_tlv(0x04, fields.engine)
        + _int(fields.boots)
        + _int(fields.time)
        + encode_tlv(0x04, fields.name)
        + encode_tlv(0x04, fields.auth_params)
        + encode_tlv(0x04, fields.priv_params),
    )
    head = encode_tlv(
        0x30,
        _int(fields.msg_id)
        + _int(fields.max_size)
        + encode_tlv(0x04, bytes([fields.flags & 0xFF]))
        + _int(fields.model),
    )
    data = encode_tlv(0x04, fields.data) if fields.flags & FLAG_PRIV else fields.data
    return encode_tlv(0x30, _int(3) + head + encode_tlv(0x04, usm) + data)


@lru_cache(maxsize=256)
def _localized(password: str, hash_name: str, engine: bytes) -> bytes:
    """A password's key localized to ``engine``; cached: the mutators sign thousands a second."""
    return localize_key(_master(password, hash_name), engine, hash_name)


@lru_cache(maxsize=32)
def _master(password: str, hash_name: str) -> bytes:
    return password_to_master(password.encode(), hash_name)


def _hash(sender: FuzzUser) -> tuple[str, int]:
    assert sender.auth is not None
    return AUTH_HASHES[sender.auth]


def sign(message: bytes, sender: FuzzUser) -> bytes:
    """``message`` with the digest of ``sender``'s key for the engine ID it names.

    The message's msgAuthenticationParameters must already have the digest's length.

    Raises:
        ValueError: the message does not decode, or its authentication
            parameters have the wrong length.
    """
    header = decode_v3_header(message)
    if not isinstance(header, V3Header):
        raise ValueError(f"message does not decode: {header}")
    hash_name, size = _hash(sender)
    if len(header.auth_params) != size:
        raise ValueError(f"{sender.auth} needs {size} bytes of authentication parameters")
    key = _localized(sender.auth_password, hash_name, header.engine_id)
    zeroed = message[: header.auth_at] + bytes(size) + message[header.auth_at + size :]
    digest = hmac.digest(key, zeroed, hash_name)[:size]
    return message[: header.auth_at] + digest + message[header.auth_at + size :]


def _cipher(
    sender: FuzzUser, engine: bytes, boots: int, time: int, salt: bytes
) -> Cipher[modes.CBC] | Cipher[CFB]:
    assert sender.priv is not None and len(salt) == 8
    hash_name, _ = _hash(sender)
    key = extend_key(
        _localized(sender.priv_password, hash_name, engine), PRIV_KEY_SIZES[sender.priv], hash_name
    )
    if sender.priv == "DES":  # RFC 3414 section 8.1.1: IV = pre-IV XOR salt
        iv = bytes(a ^ b for a, b in zip(salt, key[8:16], strict=True))
        return Cipher(TripleDES(key[:8] * 3), modes.CBC(iv))
    iv = boots.to_bytes(4, "big") + time.to_bytes(4, "big") + salt  # RFC 3826 section 3.1.2.1
    return Cipher(algorithms.AES(key), CFB(iv))


def encrypt(
    sender: FuzzUser, scoped: bytes, engine: bytes, boots: int, time: int, salt: bytes
) -> bytes:
    """``scoped`` encrypted with ``sender``'s privacy key (DES: zero-padded to 8 bytes)."""
    if sender.priv == "DES":
        scoped += bytes(-len(scoped) % 8)
    enc = _cipher(sender, engine, boots, time, salt).encryptor()
    return enc.update(scoped) + enc.finalize()


def decrypt(
    sender: FuzzUser, data: bytes, engine: bytes, boots: int, time: int, salt: bytes
) -> bytes | None:
    """``data`` decrypted with ``sender``'s privacy key; None when it cannot be."""
    if sender.priv is None or len(salt) != 8 or not 0 <= boots < 2**32 or not 0 <= time < 2**32:
        return None
    if sender.priv == "DES" and len(data) % 8:
        return None
    dec = _cipher(sender, engine, boots, time, salt).decryptor()
    return dec.update(data) + dec.finalize()


def build_v3(
    sender: FuzzUser,
    scoped: bytes,
    *,
    flags: int | None = None,
    engine: bytes = SENDER_ENGINE,
    boots: int = 1,
    time: int = 100,
    salt: bytes = b"fuzzsalt",
    msg_id: int = 77,
    name: bytes | None = None,
) -> bytes:
    """An authentic SNMPv3 message of ``sender`` carrying the ScopedPDU ``scoped``.

    ``flags`` defaults to the user's level (add :data:`FLAG_REPORTABLE` for an
    inform); a level below it is allowed (a privacy user's authNoPriv trap),
    one above it is not. ``name`` overrides the user name on the wire
    (the digest is still made with ``sender``'s key).

    Raises:
        ValueError: ``flags`` asks for a protocol the user does not have.
    """
    flags = sender.flags if flags is None else flags
    if (flags & FLAG_AUTH and sender.auth is None) or (flags & FLAG_PRIV and sender.priv is None):
        raise ValueError(f"{sender.name} cannot send at flags {flags:#x}")
    priv = flags & FLAG_PRIV
    fields = V3Fields(
        msg_id,
        65507,
        flags,
        3,
        engine,
        boots,
        time,
        sender.name.encode() if name is None else name,
        bytes(_hash(sender)[1]) if flags & FLAG_AUTH else b"",
        salt if priv else b"",
        encrypt(sender, scoped, engine, boots, time, salt) if priv else scoped,
    )
    message = assemble(fields)
    return sign(message, sender) if flags & FLAG_AUTH else message


def discovery_probe(msg_id: int = 1) -> bytes:
    """What an inform sender sends first (RFC 3414 section 4): no engine ID, no user, a Get."""
    scoped = scoped_pdu((), pdu=0xA0, context_engine=b"", request_id=msg_id)
    fields = V3Fields(msg_id, 65507, FLAG_REPORTABLE, 3, b"", 0, 0, b"", b"", b"", scoped)
    return assemble(fields)
