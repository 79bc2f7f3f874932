"""The SNMPv3 trap fast path: USM security processing without pyasn1.

pysnmp spends ~0.8 ms on an authPriv trap, most of it decoding with pyasn1.
This module does the same work for the common case on the bytes directly:
the header and USM parameters (:func:`berv3.decode_v3_header`), the HMAC
(RFC 3414 section 6 and 7, RFC 7860), decryption with ``cryptography`` (DES-CBC
of RFC 3414 section 8, AES-CFB128 of RFC 3826, AES-192/256 with the key
extension of draft-blumenthal-aes-usm-04 that net-snmp uses), then the
ScopedPDU with :func:`berv3.decode_scoped_pdu`.

It takes only what it can answer exactly as pysnmp would: an SNMPv2-Trap at
the security level its user is configured for (authNoPriv or authPriv), from
an engine ID the users are keyed for that is not this receiver's own, and an
InformRequest to this receiver's own engine ID at its user's level, with the
right digest and inside the time window. It rejects a trap's wrong digest
itself (``bad_digest``, as pysnmp). It answers an inform it takes with a
Response made from the inform's bytes (:mod:`netalert.snmp.wire.usmreply`: the
bytes :mod:`netalert.snmp.wire.berenc` would encode), encrypted and signed with the
user's keys localized to the receiver's engine ID, carrying the receiver's
(authoritative) engine ID, boots and time, as pysnmp's would. Anything else
(Reports, unknown engine IDs, other levels, an inform with a wrong digest or
out of the time window, undecodable plaintext, odd salts) returns None: the
caller hands the datagram to pysnmp unchanged, which sends the Reports and
names every failure.

Time window: for a notification the sender is authoritative and this receiver
keeps an estimate of the sender's clock (RFC 3414 section 3.2.7 b). pysnmp
replaces that estimate with the message's own boots and time as soon as the
digest verifies and only then compares, so a recorded trap sent again is
accepted again. The fast path checks an accepted trap against
:class:`netalert.snmp.wire.timeliness.EngineClocks` (shared with the pysnmp path in
:mod:`netalert.traps.v3`) and refuses a stale one itself
(``not_in_time_window``), never handing it to pysnmp. The latched boots value
2**31-1 it still leaves to pysnmp, which refuses it.

One deliberate difference from pysnmp, applied to both paths: a message at
any other security level than its user is configured for is refused as
``bad_security_level`` (RFC 3414 section 3.2.5, and what snmptrapd does). pysnmp
checks the level only for messages to its own engine ID, so for traps it
accepted an unauthenticated message from anyone who knew a user name and an
engine ID, and a privacy user's trap at authNoPriv.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from netalert.config.models import TrapUser
from netalert.logs import event
from netalert.snmp.types import maker
from netalert.snmp.wire.ber import DecodeError, RawVarBind
from netalert.snmp.wire.berenc import encode_tlv
from netalert.snmp.wire.berv3 import FLAG_AUTH, FLAG_PRIV, ScopedPdu, V3Header, decode_scoped_pdu
from netalert.snmp.wire.timeliness import EngineClocks
from netalert.snmp.wire.usmreply import HmacKey, ResponseFrame, response_scoped_pdu
from netalert.traps.stats import RejectReason

__all__ = [
    "AUTH_HASHES",
    "PRIV_KEY_SIZES",
    "FastTrap",
    "UsmFast",
    "cfb_decrypt",
    "extend_key",
    "localize_key",
    "password_to_master",
    "refuses_level",
]

# Auth protocol → (hashlib name, length of the truncated HMAC in msgAuthenticationParameters).
AUTH_HASHES: dict[str, tuple[str, int]] = {
    "MD5": ("md5", 12),  # HMAC-MD5-96, RFC 3414 section 6
    "SHA": ("sha1", 12),  # HMAC-SHA-96, RFC 3414 section 7
    "SHA-224": ("sha224", 16),  # RFC 7860: usmHMAC128SHA224AuthProtocol
    "SHA-256": ("sha256", 24),
    "SHA-384": ("sha384", 32),
    "SHA-512": ("sha512", 48),
}
# Priv protocol → localized key bytes used (DES: 8 key bytes, then 8 pre-IV bytes).
PRIV_KEY_SIZES: dict[str, int] = {"DES": 16, "AES-128": 16, "AES-192": 24, "AES-256": 32}

log = logging.getLogger("netalert.traps")

_MEGABYTE = 1_048_576
_TRAP_V2 = 0xA7
_INFORM = 0xA6
_BOOTS_LATCHED = 0x7FFFFFFF
_USM = 3
_TIME_WINDOW = 150  # seconds (RFC 3414 section 3.2.7 a)
_MAX_SIZE = 65507  # msgMaxSize of a Response: what one UDP datagram carries


def password_to_master(password: bytes, hash_name: str) -> bytes:
    """The master key of a password (RFC 3414 appendix A.2): H(password repeated to 1 MB).

    Raises:
        ValueError: the password is empty.
    """
    if not password:
        raise ValueError("an SNMPv3 password cannot be empty")
    stream = (password * (_MEGABYTE // len(password) + 1))[:_MEGABYTE]
    return hashlib.new(hash_name, stream).digest()


def localize_key(master: bytes, engine_id: bytes, hash_name: str) -> bytes:
    """A master key localized to an engine ID (RFC 3414 section 2.6): H(key + id + key)."""
    return hashlib.new(hash_name, master + engine_id + master).digest()


def extend_key(key: bytes, size: int, hash_name: str) -> bytes:
    """A localized key extended to ``size`` bytes, as net-snmp does for AES-192/256.

    draft-blumenthal-aes-usm-04 section 3.1.2.1: append H(key so far) until
    the key is long enough, then truncate. A key already long enough is only
    truncated.
    """
    while len(key) < size:
        key += hashlib.new(hash_name, key).digest()
    return key[:size]


def cfb_decrypt(ecb: CipherContext, iv: bytes, ciphertext: bytes) -> bytes:
    """AES-CFB128 decryption (RFC 3826 section 3.1.4) with ``ecb``, an AES-ECB encryptor.

    Each plaintext block is its ciphertext block XOR the encryption of the
    ciphertext block before it (of ``iv`` for the first), so the whole key
    stream comes from one ECB call over ``iv`` and the ciphertext. ``ecb`` is
    made once per key and reused: a CFB decryptor would be made per message,
    which costs more in ``cryptography``'s checks than the decryption itself.
    """
    size = len(ciphertext)
    stream = ecb.update(iv + ciphertext[: (size - 1) // 16 * 16])[:size]
    return (int.from_bytes(stream, "big") ^ int.from_bytes(ciphertext, "big")).to_bytes(size, "big")


def refuses_level(flags: int, *, user_has_auth: bool) -> bool:
    """True when a message's msgFlags ask for less security than its user must use.

    A user with an authentication protocol must authenticate; a message from
    it without the auth flag is refused (RFC 3414 section 3.2.5).
    """
    return user_has_auth and not flags & FLAG_AUTH


def _too_many(error: DecodeError) -> RejectReason | None:
    """A ScopedPDU over the varbind bound is refused here; other faults are pysnmp's to name."""
    return RejectReason.TOO_MANY_VARBINDS if error.reason == "too_many_varbinds" else None


@dataclass(frozen=True, slots=True)
class FastTrap:
    """A v3 trap or inform the fast path authenticated, decrypted and decoded.

    ``response`` is an inform's Response, ready to send (b"" for a trap).
    """

    user: str
    context_engine_id: bytes
    context_name: bytes
    varbinds: tuple[RawVarBind, ...]
    response: bytes = b""


_fast_trap = maker(FastTrap)  # every notification taken makes one: the fast constructor


@dataclass(frozen=True, slots=True)
class _User:
    name: str
    hash_name: str
    digest_len: int
    priv: str | None
    auth_master: bytes
    priv_master: bytes | None
    flags: int  # FLAG_AUTH, or FLAG_AUTH | FLAG_PRIV: the level the fast path takes


@dataclass(frozen=True, slots=True)
class _Keys:
    """One user's keys localized to one engine ID."""

    auth: bytes
    aes: algorithms.AES | None
    des: TripleDES | None
    pre_iv: bytes  # DES: XORed with the salt to give the IV
    mac: HmacKey  # HMAC with ``auth``
    ecb: CipherContext | None = None  # AES: the key's ECB encryptor, for cfb_decrypt
    cfb: Cipher[CFB] | None = None  # AES: the Responses' CFB cipher (see UsmFast._answer)


_Outcome = FastTrap | RejectReason | None


class UsmFast:
    """SNMPv3 traps for the configured users, keyed by the senders' engine IDs.

    With ``enabled`` False only the security-level check runs and every other
    datagram is left to pysnmp (the reference path, for the bench and tests).
    ``clocks`` is the time-window table (a private one when None).
    ``engine_time`` gives this receiver's (snmpEngineBoots, snmpEngineTime),
    the ones pysnmp's Reports tell inform senders; without it informs stay
    with pysnmp.
    """

    def __init__(
        self,
        users: Iterable[TrapUser],
        own_engine_id: bytes,
        *,
        enabled: bool = True,
        clocks: EngineClocks | None = None,
        max_varbinds: int = 0,
        engine_time: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        """Computes each user's master keys (two 1 MB hashes per user).

        Raises:
            ValueError: a user's password is empty.
        """
        self.enabled = enabled
        self.max_varbinds = max_varbinds
        self.internal_errors = 0  # datagrams a bug here sent to pysnmp (tests expect 0)
        self._own = own_engine_id
        self.clocks = clocks if clocks is not None else EngineClocks()
        self._users: dict[bytes, _User] = {}
        self._engines: set[bytes] = set()
        self._keys: dict[tuple[bytes, bytes], _Keys] = {}
        self._engine_time = engine_time
        self._salt = secrets.randbits(64)  # privParameters of our Responses: a counter
        self._frames: dict[bytes, ResponseFrame] = {}  # user → its Responses' frame
        for user in users:
            self._add_user(user)

    def _add_user(self, user: TrapUser) -> None:
        name = user.user.encode()
        for text in user.engine_ids:
            self.add_engine_id(bytes.fromhex(text))
        if user.auth_protocol is None or user.auth_password is None:
            return  # noAuthNoPriv users stay with pysnmp
        hash_name, digest_len = AUTH_HASHES[user.auth_protocol]
        secret = user.auth_password.get_secret_value().encode()
        priv_master = None
        if user.priv_protocol is not None and user.priv_password is not None:
            # The privacy key is derived with the authentication protocol's hash.
            priv_secret = user.priv_password.get_secret_value().encode()
            priv_master = password_to_master(priv_secret, hash_name)
        self._users[name] = _User(
            user.user,
            hash_name,
            digest_len,
            user.priv_protocol if priv_master is not None else None,
            password_to_master(secret, hash_name),
            priv_master,
            FLAG_AUTH | FLAG_PRIV if priv_master is not None else FLAG_AUTH,
        )

    def master_keys(self, user: bytes) -> tuple[bytes, bytes | None] | None:
        """A user's authentication and privacy master keys (RFC 3414 A.2), or None for
        a noAuthNoPriv user: pysnmp's engine is given these instead of hashing again."""
        found = self._users.get(user)
        return (found.auth_master, found.priv_master) if found is not None else None

    def add_engine_id(self, engine_id: bytes) -> None:
        """Accepts traps from ``engine_id`` for every user; idempotent."""
        # RFC 3411 bounds; pysnmp treats any other length as a discovery probe.
        if 5 <= len(engine_id) <= 32:
            self._engines.add(engine_id)

    def receive(self, data: bytes, header: V3Header) -> _Outcome:
        """Processes one v3 datagram whose header decoded to ``header``.

        Returns:
            A FastTrap when the trap is accepted; a RejectReason
            (``bad_digest``, ``bad_security_level``, ``not_in_time_window``)
            when it is refused; None when pysnmp must decide. Never raises.
        """
        try:
            return self._receive(data, header)
        except Exception:  # a bug here must not lose the datagram: pysnmp gets it
            self.internal_errors += 1
            log.debug(event("trap_v3_fast_error"), exc_info=True)
            return None

    def _receive(self, data: bytes, header: V3Header) -> _Outcome:
        engine_id = header.engine_id
        if header.security_model != _USM:
            return None
        if engine_id == self._own:
            return self._inform(data, header)
        if engine_id not in self._engines:
            return None
        user = self._users.get(header.user)
        if user is None:
            return None  # not configured, or a user without authentication: pysnmp's
        level = header.flags & (FLAG_AUTH | FLAG_PRIV)
        if refuses_level(header.flags, user_has_auth=True) or level != user.flags:
            return RejectReason.BAD_SECURITY_LEVEL  # no fewer bits than configured, no more
        if not self.enabled or header.boots == _BOOTS_LATCHED:
            return None
        start, stop = header.data_at
        scoped = None
        if not level & FLAG_PRIV:
            # pysnmp decodes a plaintext ScopedPDU before it checks the digest: so do we,
            # to name a broken one as it does.
            scoped = decode_scoped_pdu(data, (start, stop), max_varbinds=self.max_varbinds)
            if isinstance(scoped, DecodeError):
                return _too_many(scoped)
        keys = self._keys.get((header.user, engine_id)) or self._localize(user, engine_id)
        given = header.auth_params
        size = user.digest_len
        if len(given) != size:
            return RejectReason.BAD_DIGEST
        at = header.auth_at
        zeroed = b"".join((data[:at], bytes(size), data[at + size :]))
        if not hmac.compare_digest(keys.mac.digest(zeroed)[:size], given):
            return RejectReason.BAD_DIGEST
        if scoped is None:
            plain = self._decrypt(keys, header, data[start:stop])
            if plain is None:
                return None
            scoped = decode_scoped_pdu(plain, max_varbinds=self.max_varbinds)
        if isinstance(scoped, DecodeError):
            return _too_many(scoped)
        if scoped.pdu_type != _TRAP_V2:
            return None
        # Checked only for a trap taken here, so that what is deferred to pysnmp meets the
        # same check there (trapv3) and both paths give the same reason for every message.
        if not self.clocks.admit(engine_id, header.boots, header.time, given):
            return RejectReason.NOT_IN_TIME_WINDOW
        return _fast_trap(
            user.name, scoped.context_engine_id, scoped.context_name, scoped.varbinds, b""
        )

    def _inform(self, data: bytes, header: V3Header) -> _Outcome:
        """An inform to this receiver (the authoritative engine): taken and answered only
        when everything is right; anything else is pysnmp's, which sends the Report."""
        user = self._users.get(header.user)
        if user is None or not self.enabled or self._engine_time is None:
            return None
        level = header.flags & (FLAG_AUTH | FLAG_PRIV)
        if level != user.flags:
            return None  # refused before this by the level gate; pysnmp's otherwise
        boots, now = self._engine_time()
        # RFC 3414 section 3.2.7 a, as pysnmp checks it: our boots, our time +-150 s
        if boots == _BOOTS_LATCHED or header.boots != boots:
            return None
        if abs(now - header.time) > _TIME_WINDOW:
            return None
        start, stop = header.data_at
        keys = self._keys.get((header.user, self._own)) or self._localize(user, self._own)
        given = header.auth_params
        size = user.digest_len
        if len(given) != size:
            return None
        at = header.auth_at
        zeroed = b"".join((data[:at], bytes(size), data[at + size :]))
        if not hmac.compare_digest(keys.mac.digest(zeroed)[:size], given):
            return None  # pysnmp counts it and answers a reportable one with a Report
        if level & FLAG_PRIV:
            plain = self._decrypt(keys, header, data[start:stop])
            if plain is None:
                return None
            scoped = decode_scoped_pdu(plain, max_varbinds=self.max_varbinds)
        else:
            plain = data
            scoped = decode_scoped_pdu(data, (start, stop), max_varbinds=self.max_varbinds)
        if isinstance(scoped, DecodeError) or scoped.pdu_type != _INFORM:
            return None
        self._salt = counter = (self._salt + 1) & 0xFFFF_FFFF_FFFF_FFFF
        response = self._answer(user, keys, header, scoped, plain, boots, now, counter)
        if len(response) > header.max_size:
            return None  # pysnmp answers tooBig
        return _fast_trap(
            user.name, scoped.context_engine_id, scoped.context_name, scoped.varbinds, response
        )

    def _answer(
        self,
        user: _User,
        keys: _Keys,
        header: V3Header,
        scoped: ScopedPdu,
        plain: bytes,
        boots: int,
        now: int,
        counter: int,
    ) -> bytes:
        """The Response to an inform: same msgID, request-id and varbinds, our engine's
        clock, never reportable, encrypted when the inform was (salt from ``counter``),
        then signed. Made from the inform's bytes and the user's frame
        (:mod:`netalert.snmp.wire.usmreply`): the general encoder's bytes (a test compares
        them with :func:`berenc.encode_response_scoped_pdu` and :func:`berenc.encode_v3_message`
        for random informs)."""
        priv = user.flags & FLAG_PRIV
        if priv:  # the decrypted ScopedPDU starts the plaintext
            size = plain[1]
            contents = 2 if size < 0x80 else 2 + (size & 0x7F)
        else:
            contents = header.data_at[0]
        msg_data = response_scoped_pdu(plain, contents, scoped)
        salt = b""
        if priv:
            if keys.cfb is not None:
                salt = counter.to_bytes(8, "big")  # RFC 3826 section 3.1.2.1
                cipher = keys.cfb
                # One Cipher per key, its mode (the IV) replaced: making a Cipher checks the
                # key and mode again each time, and costs more than the encryption.
                cipher.mode = CFB(boots.to_bytes(4, "big") + now.to_bytes(4, "big") + salt)
                encryptor = cipher.encryptor()
            else:
                # RFC 3414 section 8.1.1.1: salt = snmpEngineBoots | a local 32-bit integer
                salt = boots.to_bytes(4, "big") + (counter & 0xFFFF_FFFF).to_bytes(4, "big")
                iv = bytes(a ^ b for a, b in zip(salt, keys.pre_iv, strict=True))
                msg_data += bytes(-len(msg_data) % 8)  # padded to the block size
                assert keys.des is not None
                encryptor = Cipher(keys.des, modes.CBC(iv)).encryptor()
            msg_data = encode_tlv(0x04, encryptor.update(msg_data) + encryptor.finalize())
        frame = self._frames.get(header.user)
        if frame is None:  # bounded: one per configured user
            frame = ResponseFrame(self._own, header.user, user.flags, user.digest_len, len(salt))
            self._frames[header.user] = frame
        message, at = frame.message(header.msg_id, boots, now, salt, msg_data)
        size = user.digest_len
        return message[:at] + keys.mac.digest(message)[:size] + message[at + size :]

    def _localize(self, user: _User, engine_id: bytes) -> _Keys:
        hash_name = user.hash_name
        auth = localize_key(user.auth_master, engine_id, hash_name)
        aes = des = ecb = cfb = None
        pre_iv = b""
        if user.priv is not None and user.priv_master is not None:
            size = PRIV_KEY_SIZES[user.priv]
            priv = extend_key(localize_key(user.priv_master, engine_id, hash_name), size, hash_name)
            if user.priv == "DES":
                des = TripleDES(priv[:8] * 3)  # three times one DES key is single DES
                pre_iv = priv[8:16]
            else:
                aes = algorithms.AES(priv)
                ecb = Cipher(aes, modes.ECB()).encryptor()  # noqa: S305 (CFB, see cfb_decrypt)
                cfb = Cipher(aes, CFB(bytes(16)))
        keys = _Keys(auth, aes, des, pre_iv, HmacKey(auth, hash_name), ecb, cfb)
        # Bounded: users x engine IDs, both from the config and the poller, never from traps.
        self._keys[(user.name.encode(), engine_id)] = keys
        return keys

    @staticmethod
    def _decrypt(keys: _Keys, header: V3Header, ciphertext: bytes) -> bytes | None:
        salt = header.priv_params
        if len(salt) != 8:
            return None  # pysnmp calls it decryptionError
        if keys.des is not None:
            if len(ciphertext) % 8:
                return None
            iv = bytes(a ^ b for a, b in zip(salt, keys.pre_iv, strict=True))
            decryptor = Cipher(keys.des, modes.CBC(iv)).decryptor()
        elif keys.ecb is not None:
            # RFC 3826 section 3.1.2.1: IV = boots (4 bytes) | time (4 bytes) | salt.
            iv = header.boots.to_bytes(4, "big") + header.time.to_bytes(4, "big") + salt
            return cfb_decrypt(keys.ecb, iv, ciphertext)
        else:
            return None
        return decryptor.update(ciphertext) + decryptor.finalize()
