"""Builds SNMPv3 messages of any shape for tests: any user, engine ID, level and keys.

net-snmp's snmptrap cannot send what an attacker sends (an empty user name
with an engine ID, a privacy user at authNoPriv with the right key, a Report
to the trap port), so the security tests build those bytes here. Digests and
encryption are real (RFC 3414, RFC 3826, and the key extension net-snmp uses
for AES-192/256), with the project's own key derivation. A password's master key
(a hash over 1 MB, milliseconds each) is derived once per process: the property
tests build thousands of messages from a handful of passwords.
"""

from __future__ import annotations

import functools
import hmac

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from netalert.snmp.wire.ber import DecodeError
from netalert.snmp.wire.berenc import encode_oid, encode_tlv
from netalert.snmp.wire.berv3 import FLAG_AUTH, FLAG_PRIV, FLAG_REPORTABLE, decode_v3_header
from netalert.snmp.wire.usm import (
    AUTH_HASHES,
    PRIV_KEY_SIZES,
    extend_key,
    localize_key,
    password_to_master,
)

__all__ = [
    "LEVELS",
    "build_v3",
    "encrypt",
    "int_tlv",
    "master_key",
    "scoped_pdu",
    "trap_varbinds",
    "varbind",
]

LEVELS = {"noAuthNoPriv": 0, "authNoPriv": FLAG_AUTH, "authPriv": FLAG_AUTH | FLAG_PRIV}


@functools.cache
def master_key(password: bytes, hash_name: str) -> bytes:
    """:func:`~netalert.snmp.wire.usm.password_to_master`, once per password and hash."""
    return password_to_master(password, hash_name)


def int_tlv(value: int) -> bytes:
    """An INTEGER TLV."""
    return encode_tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def varbind(oid: str, value: bytes) -> bytes:
    """One encoded VarBind of ``oid`` and an already encoded value."""
    return encode_tlv(0x30, encode_tlv(0x06, encode_oid(oid)) + value)


def trap_varbinds(index: int = 3, trap: str = "1.3.6.1.6.3.1.1.5.3") -> list[bytes]:
    """sysUpTime.0, snmpTrapOID.0 = ``trap`` and ifIndex.``index``."""
    return [
        varbind("1.3.6.1.2.1.1.3.0", encode_tlv(0x43, b"\x01\x00")),
        varbind("1.3.6.1.6.3.1.1.4.1.0", encode_tlv(0x06, encode_oid(trap))),
        varbind(f"1.3.6.1.2.1.2.2.1.1.{index}", int_tlv(index)),
    ]


def scoped_pdu(
    varbinds: list[bytes],
    *,
    pdu: int = 0xA7,
    context_engine: bytes = b"",
    context: bytes = b"",
    request_id: int = 4242,
) -> bytes:
    """A plaintext ScopedPDU carrying ``varbinds`` in a PDU of tag ``pdu``."""
    head = int_tlv(request_id) + int_tlv(0) + int_tlv(0)
    body = encode_tlv(pdu, head + encode_tlv(0x30, b"".join(varbinds)))
    return encode_tlv(0x30, encode_tlv(0x04, context_engine) + encode_tlv(0x04, context) + body)


def build_v3(
    user: str | bytes,
    scoped: bytes,
    *,
    engine: bytes,
    level: str = "authPriv",
    auth: str | None = None,
    auth_password: str = "",
    priv: str | None = None,
    priv_password: str = "",
    boots: int = 3,
    time: int = 1234,
    salt: bytes = b"saltsalt",
    digest_len: int | None = None,
    reportable: bool = False,
    msg_id: int = 77,
) -> bytes:
    """An SNMPv3 message with the given security parameters around ``scoped``.

    ``level`` sets msgFlags; ``auth``/``priv`` (protocol names as in config.toml)
    with their passwords sign and encrypt it. A level that asks for a digest
    with no ``auth`` given gets zero bytes in place of one (a forgery).
    """
    flags = LEVELS[level] | (FLAG_REPORTABLE if reportable else 0)
    name = user.encode() if isinstance(user, str) else user
    hash_name, size = AUTH_HASHES[auth] if auth else ("sha1", 12)
    size = digest_len if digest_len is not None else size
    data = scoped
    if flags & FLAG_PRIV:
        data = encode_tlv(
            0x04, encrypt(scoped, engine, hash_name, priv, priv_password, salt, boots, time)
        )
    usm = encode_tlv(
        0x30,
        encode_tlv(0x04, engine)
        + int_tlv(boots)
        + int_tlv(time)
        + encode_tlv(0x04, name)
        + encode_tlv(0x04, bytes(size) if flags & FLAG_AUTH else b"")
        + encode_tlv(0x04, salt if flags & FLAG_PRIV else b""),
    )
    head = encode_tlv(
        0x30, int_tlv(msg_id) + int_tlv(65507) + encode_tlv(0x04, bytes([flags])) + int_tlv(3)
    )
    msg = encode_tlv(0x30, int_tlv(3) + head + encode_tlv(0x04, usm) + data)
    if not flags & FLAG_AUTH or auth is None:
        return msg
    header = decode_v3_header(msg)
    if isinstance(header, DecodeError):
        return msg  # e.g. bytes after a plaintext ScopedPDU: the receiver stops at the header
    key = localize_key(master_key(auth_password.encode(), hash_name), engine, hash_name)
    digest = hmac.digest(key, msg, hash_name)[:size]
    return msg[: header.auth_at] + digest + msg[header.auth_at + size :]


def encrypt(
    scoped: bytes,
    engine: bytes,
    hash_name: str,
    priv: str | None,
    password: str,
    salt: bytes,
    boots: int,
    time: int,
) -> bytes:
    """``scoped`` encrypted with ``priv`` (DES: padded to its block) and the password's key
    localized to ``engine``, with ``salt``, ``boots`` and ``time`` as RFC 3414 and 3826 say."""
    if priv is None:
        return scoped  # "encrypted" with no key: garbage to the receiver
    master = master_key(password.encode(), hash_name)
    key = extend_key(localize_key(master, engine, hash_name), PRIV_KEY_SIZES[priv], hash_name)
    if priv == "DES":
        iv = bytes(a ^ b for a, b in zip(salt, key[8:16], strict=True))
        padded = scoped + bytes(-len(scoped) % 8)
        enc = Cipher(TripleDES(key[:8] * 3), modes.CBC(iv)).encryptor()
        return enc.update(padded) + enc.finalize()
    iv = boots.to_bytes(4, "big") + time.to_bytes(4, "big") + salt
    enc = Cipher(algorithms.AES(key), CFB(iv)).encryptor()
    return enc.update(scoped) + enc.finalize()
