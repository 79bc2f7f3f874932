"""Structure-aware mutators for SNMP datagrams (libFuzzer custom mutators, via atheris).

:func:`mutate_v3` is for SNMPv3 messages, :func:`mutate_community` for v1/v2c.

Byte mutations of a v3 message almost never survive: every field sits inside
three or four BER lengths, and every byte of an authenticated message is
covered by its digest. This mutator decodes the message
(:func:`netalert.snmp.wire.berv3.decode_v3_header`), changes one or two fields
(user name, engine ID, boots, time, flags, message ID and size, security
model, the authentication and privacy parameters, the ScopedPDU: decrypted
first when the user is one of fuzz/v3build.py's), re-encodes it with correct
lengths and, most of the time, signs it again with the key of the user it now
names. So the fuzzer reaches what follows the length checks and the digest:
the level checks, the user lookup, decryption, the ScopedPDU and PDU
decoders. The harnesses call it for part of the mutations and leave the rest,
and anything that does not decode, to libFuzzer's own byte mutations.

For v1/v2c, :func:`mutate_community` re-encodes a decoded message with another
community (configured ones, none, a changed one), which byte mutations
reach only when the length stays the same.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import replace

from fuzz.v3build import (
    OWN_ENGINE,
    SENDER_ENGINE,
    USERS,
    FuzzUser,
    V3Fields,
    assemble,
    decrypt,
    encrypt,
    sign,
)
from netalert.snmp.wire.ber import Message, decode_message
from netalert.snmp.wire.berenc import encode_message
from netalert.snmp.wire.berv3 import FLAG_AUTH, FLAG_PRIV, V3Header, decode_v3_header
from netalert.snmp.wire.usm import AUTH_HASHES

__all__ = ["mutate_community", "mutate_v3"]

ByteMutator = Callable[[bytes, int], bytes]  # atheris.Mutate: (data, max_size) -> data

_BY_NAME = {item.name.encode(): item for item in USERS}
_INTS = (0, 1, 2, 3, 127, 128, 255, 256, 484, 65507, 2**31 - 2, 2**31 - 1, 2**31, 2**32, -1)
# the empty name twice: it is the one an engine-ID discovery probe carries
_NAMES = (b"", b"", b"\x00", b"plain\x00", b"PLAIN", b"x" * 33, b"evil\nlevel=error forged")
_PDUS = (0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0x30, 0x04)


def _number(rng: random.Random, current: int) -> int:
    roll = rng.randrange(4)
    if roll == 0:
        return rng.choice(_INTS)
    if roll == 1:
        return current + rng.choice((-1, 1, -150, 151))
    if roll == 2:
        return rng.randrange(-(2**31), 2**32)
    return current


def _bytes(
    rng: random.Random, current: bytes, mutate: ByteMutator, choices: tuple[bytes, ...]
) -> bytes:
    if rng.randrange(2):
        return rng.choice(choices)
    return mutate(current, len(current) + 16)


def _scoped(rng: random.Random, scoped: bytes, mutate: ByteMutator) -> bytes:
    """A changed plaintext ScopedPDU: its PDU tag (a one-byte change) or any bytes of it."""
    at = scoped.find(b"\xa7") if rng.randrange(2) else -1
    if at < 0:
        at = scoped.find(b"\xa6")
    if at >= 0 and rng.randrange(2):
        return scoped[:at] + bytes([rng.choice(_PDUS)]) + scoped[at + 1 :]
    return mutate(scoped, len(scoped) + 64)


def mutate_v3(data: bytes, max_size: int, seed: int, mutate: ByteMutator) -> bytes | None:
    """One structured mutation of the v3 message ``data``; None when it is not one.

    ``mutate`` is the byte mutator for the fields (libFuzzer's, through
    ``atheris.Mutate``). The result is at most ``max_size`` bytes.
    """
    header = decode_v3_header(data)
    if not isinstance(header, V3Header):
        return None
    rng = random.Random(seed)
    fields = V3Fields.of(data, header)
    plaintext = _plaintext(fields)
    changes: dict[str, object] = {}
    for _ in range(rng.choice((1, 1, 2))):
        name = rng.choice(
            ("name", "name", "engine", "boots", "time", "flags", "flags", "msg_id", "max_size",
             "model", "auth_params", "priv_params", "scoped", "scoped", "scoped")
        )  # fmt: skip
        if name == "name":
            names = (*_BY_NAME, *_NAMES)
            changes[name] = _bytes(rng, fields.name, mutate, names)
        elif name == "engine":
            engines = (SENDER_ENGINE, OWN_ENGINE, b"", b"\x80\x00\x00\x00", bytes(33))
            changes[name] = _bytes(rng, fields.engine, mutate, engines)
        elif name == "flags":
            changes[name] = rng.choice((0, 1, 3, 4, 5, 7, 2, rng.randrange(256)))
        elif name in ("boots", "time", "msg_id", "max_size", "model"):
            changes[name] = _number(rng, getattr(fields, name))
        elif name in ("auth_params", "priv_params"):
            current = getattr(fields, name)
            changes[name] = _bytes(rng, current, mutate, (b"", bytes(12), bytes(8), bytes(48)))
        elif plaintext is not None:
            plaintext = _scoped(rng, plaintext, mutate)
        else:
            changes["data"] = mutate(fields.data, len(fields.data) + 64)
    fields = replace(fields, **changes)  # type: ignore[arg-type]
    sender = _BY_NAME.get(fields.name)
    if plaintext is not None:
        fields = _with_plaintext(fields, sender, plaintext)
    out = assemble(fields)
    auth = sender is not None and sender.auth is not None and fields.flags & FLAG_AUTH
    if auth and rng.randrange(5):  # mostly signed again; sometimes the digest is left wrong
        assert sender is not None
        with contextlib.suppress(ValueError):  # a field the header decoder refuses
            out = sign(_sized(out, sender), sender)
    return out if len(out) <= max_size else None


def _plaintext(fields: V3Fields) -> bytes | None:
    """The ScopedPDU in the clear: as is, or decrypted when a known user encrypted it."""
    if not fields.flags & FLAG_PRIV:
        return fields.data
    sender = _BY_NAME.get(fields.name)
    if sender is None:
        return None
    f = fields
    return decrypt(sender, f.data, f.engine, f.boots, f.time, f.priv_params)


def _with_plaintext(fields: V3Fields, sender: FuzzUser | None, plaintext: bytes) -> V3Fields:
    if not fields.flags & FLAG_PRIV:
        return replace(fields, data=plaintext)
    if sender is None or sender.priv is None or len(fields.priv_params) != 8:
        return fields  # nobody to encrypt for: the ciphertext stays
    if not 0 <= fields.boots < 2**32 or not 0 <= fields.time < 2**32:
        return fields
    data = encrypt(sender, plaintext, fields.engine, fields.boots, fields.time, fields.priv_params)
    return replace(fields, data=data)


def _sized(message: bytes, sender: FuzzUser) -> bytes:
    """``message`` with authentication parameters of the length ``sender``'s digest has."""
    header = decode_v3_header(message)
    if not isinstance(header, V3Header):
        raise ValueError("does not decode")
    assert sender.auth is not None
    size = AUTH_HASHES[sender.auth][1]
    if len(header.auth_params) == size:
        return message
    return assemble(replace(V3Fields.of(message, header), auth_params=bytes(size)))


def mutate_community(
    data: bytes, max_size: int, seed: int, mutate: ByteMutator, choices: tuple[bytes, ...]
) -> bytes | None:
    """``data``, a v1/v2c message, with another community; None when it does not decode.

    The community is one of ``choices`` or ``mutate`` of the current one.
    """
    msg = decode_message(data)
    if not isinstance(msg, Message):
        return None
    rng = random.Random(seed)
    community = _bytes(rng, msg.community, mutate, (*choices, b"", b"private", b"public\x00"))
    try:
        out = encode_message(
            version=msg.version,
            community=community,
            pdu_type=msg.pdu_type,
            varbinds=msg.varbinds,
            request_id=msg.request_id,
            error_status=msg.error_status,
            error_index=msg.error_index,
            v1_trap=msg.v1_trap,
        )
    except (ValueError, OverflowError):
        return None
    return out if len(out) <= max_size else None
