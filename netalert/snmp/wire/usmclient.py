"""The manager's side of the SNMPv3 USM: discovery, signed and encrypted requests,
and the answers' checks (RFC 3412, RFC 3414, RFC 3826, RFC 7860).

The native poll backend keeps one :class:`UsmPeer` per target. Discovery is one
unauthenticated, reportable GET without variable bindings; the agent's Report
carries its engine ID, boots and time (:meth:`UsmPeer.learn`). Every later request
is signed with the user's keys localized to that engine ID and, at authPriv,
encrypted (DES-CBC, AES-CFB128; AES-192/256 keys extended as net-snmp does); the
engine time it carries is the agent's, estimated from the last authentic answer
and the local clock.

An answer (:meth:`UsmPeer.open`) counts only when it is shaped right, comes from
the peer's engine for the peer's user, and its digest verifies; then its boots
and time update the estimate. Reports sent without authentication (the agent
cannot sign for a user it does not know, or with a key it could not check) are
taken for what they say: the caller names the refusal (``wrongDigest``,
``unknownUserName``, ...). Anything else returns None: the datagram is dropped
and the request keeps waiting.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from netalert.snmp.wire.ber import DecodeError
from netalert.snmp.wire.berenc import encode_tlv, encode_v3_message
from netalert.snmp.wire.berv3 import (
    FLAG_AUTH,
    FLAG_PRIV,
    FLAG_REPORTABLE,
    ScopedPdu,
    V3Header,
    decode_scoped_pdu,
    decode_v3_header,
)
from netalert.snmp.wire.request import pdu, scoped_pdu
from netalert.snmp.wire.usm import (
    AUTH_HASHES,
    PRIV_KEY_SIZES,
    cfb_decrypt,
    extend_key,
    localize_key,
    password_to_master,
)

__all__ = ["REPORTS", "Discovered", "Refusal", "UsmPeer", "UsmUser"]

_GET, _RESPONSE, _REPORT = 0xA0, 0xA2, 0xA8


def _hmac_pads(key: bytes, hash_name: str) -> tuple[Any, Any]:
    """The HMAC (RFC 2104) of ``key`` as its two hash states after the padded key:
    a message's HMAC is then two copies, two updates and two digests (half of what
    :func:`hmac.digest` costs, which sets the key up anew each time)."""
    inner, outer = hashlib.new(hash_name), hashlib.new(hash_name)
    if len(key) > inner.block_size:
        key = hashlib.new(hash_name, key).digest()
    key = key.ljust(inner.block_size, b"\0")
    inner.update(bytes(b ^ 0x36 for b in key))
    outer.update(bytes(b ^ 0x5C for b in key))
    return inner, outer


def _int(value: int) -> bytes:
    return encode_tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


_MAX_SIZE = 65507  # msgMaxSize: what one UDP datagram carries
# usmStats counters a Report names (RFC 3414 section 5), by their OID
REPORTS = {
    "1.3.6.1.6.3.15.1.1.1.0": "unsupportedSecLevel",
    "1.3.6.1.6.3.15.1.1.2.0": "notInTimeWindow",
    "1.3.6.1.6.3.15.1.1.3.0": "unknownUserName",
    "1.3.6.1.6.3.15.1.1.4.0": "unknownEngineID",
    "1.3.6.1.6.3.15.1.1.5.0": "wrongDigest",
    "1.3.6.1.6.3.15.1.1.6.0": "decryptionError",
}
# Master keys by (password, hash): two 1 MB hashes each, shared by every target of
# the same credentials. Bounded by the credentials in the config; cleared when full.
_MASTERS: dict[tuple[bytes, str], bytes] = {}
_MASTERS_MAX = 1024


def _master(password: str, hash_name: str) -> bytes:
    key = (password.encode(), hash_name)
    found = _MASTERS.get(key)
    if found is None:
        found = password_to_master(key[0], hash_name)
        if len(_MASTERS) >= _MASTERS_MAX:
            _MASTERS.clear()
        _MASTERS[key] = found
    return found


@dataclass(frozen=True, slots=True)
class Refusal:
    """A Report in answer to a request: ``reason`` is the usmStats counter's name, or
    the Report's first OID; ``authentic`` when it was signed (its clock was taken)."""

    reason: str
    authentic: bool


@dataclass(frozen=True, slots=True)
class Discovered:
    """What a discovery Report told of the agent's engine."""

    engine_id: bytes
    boots: int
    time: int


class UsmUser:
    """One user's credentials and master keys (the keys are localized per engine).

    Raises:
        ValueError: An empty password, or privacy without authentication.
    """

    __slots__ = ("auth_master", "digest_len", "flags", "hash_name", "name", "priv", "priv_master")

    def __init__(
        self,
        name: str,
        auth_protocol: str | None = None,
        auth_password: str = "",
        priv_protocol: str | None = None,
        priv_password: str = "",
    ) -> None:
        self.name = name.encode()
        self.flags = 0
        self.hash_name, self.digest_len = "", 0
        self.auth_master = self.priv_master = b""
        self.priv = None if auth_protocol is None else priv_protocol
        if auth_protocol is not None:
            self.hash_name, self.digest_len = AUTH_HASHES[auth_protocol]
            self.auth_master = _master(auth_password, self.hash_name)
            self.flags = FLAG_AUTH
            if self.priv is not None:
                # The privacy key is derived with the authentication protocol's hash.
                self.priv_master = _master(priv_password, self.hash_name)
                self.flags |= FLAG_PRIV


class UsmPeer:
    """One agent's engine, as this manager knows it, for one user; see the module."""

    __slots__ = (
        "_aes",
        "_auth",
        "_auth_tlv",
        "_des",
        "_ecb",
        "_engine_tlv",
        "_global_tail",
        "_pads",
        "_pre_iv",
        "_salt",
        "_scope",
        "_user_tlv",
        "at",
        "boots",
        "engine_id",
        "time",
        "user",
    )

    def __init__(self, user: UsmUser) -> None:
        self.user = user
        self.engine_id = b""
        self.boots = self.time = 0
        self.at = 0.0  # time.monotonic() when ``time`` was read
        self._auth = b""
        self._aes: algorithms.AES | None = None
        self._ecb: CipherContext | None = None
        self._des: TripleDES | None = None
        self._pre_iv = b""
        self._salt = secrets.randbits(64)
        self._engine_tlv = self._scope = self._user_tlv = self._auth_tlv = b""
        self._global_tail = b""
        self._pads: tuple[Any, Any] = (None, None)

    @property
    def discovered(self) -> bool:
        return bool(self.engine_id)

    # --- discovery ----------------------------------------------------------------

    def discovery(self, msg_id: int, request_id: int) -> bytes:
        """The discovery request: reportable, noAuthNoPriv, no user, no engine ID."""
        scoped = scoped_pdu(b"", b"", pdu(_GET, request_id, ()))
        message, _ = encode_v3_message(
            msg_id=msg_id,
            max_size=_MAX_SIZE,
            flags=FLAG_REPORTABLE,
            engine_id=b"",
            boots=0,
            time=0,
            user=b"",
            auth_len=0,
            priv_params=b"",
            msg_data=scoped,
        )
        return message

    @staticmethod
    def open_discovery(data: bytes, msg_id: int) -> Discovered | None:
        """The engine ID, boots and time of a discovery Report; None for anything else."""
        header = decode_v3_header(data)
        if isinstance(header, DecodeError) or header.msg_id != msg_id or header.flags & FLAG_AUTH:
            return None
        scoped = decode_scoped_pdu(data, header.data_at)
        if isinstance(scoped, DecodeError) or scoped.pdu_type != _REPORT:
            return None
        if not 5 <= len(header.engine_id) <= 32:  # RFC 3411 SnmpEngineID
            return None
        return Discovered(header.engine_id, header.boots, header.time)

    def learn(self, found: Discovered) -> None:
        """Takes a discovered engine and localizes the user's keys to it."""
        user = self.user
        self.engine_id = found.engine_id
        self.boots, self.time, self.at = found.boots, found.time, time.monotonic()
        # the parts of every request that stay while the engine does
        self._engine_tlv = encode_tlv(0x04, found.engine_id)
        self._scope = self._engine_tlv + b"\x04\x00"  # contextEngineID, an empty contextName
        self._user_tlv = encode_tlv(0x04, user.name)
        self._auth_tlv = encode_tlv(0x04, bytes(user.digest_len))
        # msgMaxSize, msgFlags, msgSecurityModel (USM) after a four-byte msgID
        self._global_tail = b"\x02\x03\x00\xff\xe3\x04\x01%c\x02\x01\x03" % (
            user.flags | FLAG_REPORTABLE
        )
        self._aes = self._ecb = self._des = None
        if user.flags & FLAG_AUTH:
            self._auth = localize_key(user.auth_master, found.engine_id, user.hash_name)
            self._pads = _hmac_pads(self._auth, user.hash_name)
        if user.priv is not None:
            size = PRIV_KEY_SIZES[user.priv]
            local = localize_key(user.priv_master, found.engine_id, user.hash_name)
            priv = extend_key(local, size, user.hash_name)
            if user.priv == "DES":
                self._des = TripleDES(priv[:8] * 3)  # three times one DES key is single DES
                self._pre_iv = priv[8:16]
            else:
                self._aes = algorithms.AES(priv)
                self._ecb = Cipher(self._aes, modes.ECB()).encryptor()  # noqa: S305 (CFB by hand)

    # --- requests -----------------------------------------------------------------

    def request(self, msg_id: int, encoded_pdu: bytes, context_name: bytes = b"") -> bytes:
        """A request at the user's level, signed and encrypted as the user requires."""
        user = self.user
        now = self.time + int(time.monotonic() - self.at)
        if context_name:
            msg_data = scoped_pdu(self.engine_id, context_name, encoded_pdu)
        else:
            msg_data = encode_tlv(0x30, self._scope + encoded_pdu)
        salt = b""
        if user.flags & FLAG_PRIV:
            self._salt = (self._salt + 1) & 0xFFFF_FFFF_FFFF_FFFF
            if self._des is not None:
                # RFC 3414 section 8.1.1.1: salt = snmpEngineBoots | a local 32-bit integer
                salt = self.boots.to_bytes(4, "big") + (self._salt & 0xFFFF_FFFF).to_bytes(4, "big")
                iv = bytes(a ^ b for a, b in zip(salt, self._pre_iv, strict=True))
                msg_data += bytes(-len(msg_data) % 8)  # padded to the block size
                encryptor = Cipher(self._des, modes.CBC(iv)).encryptor()
                ciphertext = encryptor.update(msg_data) + encryptor.finalize()
            else:
                salt = self._salt.to_bytes(8, "big")  # RFC 3826 section 3.1.2.1
                iv = self.boots.to_bytes(4, "big") + now.to_bytes(4, "big") + salt
                encryptor = Cipher(self._aes, CFB(iv)).encryptor()  # type: ignore[arg-type]
                ciphertext = encryptor.update(msg_data) + encryptor.finalize()
            msg_data = encode_tlv(0x04, ciphertext)
        size = user.digest_len
        message, at = self._message(msg_id, now, salt, msg_data)
        if not size:
            return message
        return message[:at] + self._mac(message)[:size] + message[at + size :]

    def _mac(self, message: bytes) -> bytes:
        """HMAC(auth key, message) from the key's two padded states (:func:`_hmac_pads`)."""
        inner, outer = self._pads
        inner = inner.copy()
        inner.update(message)
        outer = outer.copy()
        outer.update(inner.digest())
        return outer.digest()  # type: ignore[no-any-return]

    def _message(self, msg_id: int, now: int, salt: bytes, msg_data: bytes) -> tuple[bytes, int]:
        """:func:`encode_v3_message`'s message and offset, from the pieces this peer
        keeps (the engine ID, the user, the flags): a few joins per request instead of
        a dozen encodings. msgIDs below 2**24 take the general encoder."""
        if not 0x0100_0000 <= msg_id <= 0x7FFF_FFFF:
            return encode_v3_message(
                msg_id=msg_id,
                max_size=_MAX_SIZE,
                flags=self.user.flags | FLAG_REPORTABLE,
                engine_id=self.engine_id,
                boots=self.boots,
                time=now,
                user=self.user.name,
                auth_len=self.user.digest_len,
                priv_params=salt,
                msg_data=msg_data,
            )
        before_auth = self._engine_tlv + _int(self.boots) + _int(now) + self._user_tlv
        usm_body = before_auth + self._auth_tlv + encode_tlv(0x04, salt)
        usm = encode_tlv(0x30, usm_body)
        params = encode_tlv(0x04, usm)
        head = b"\x02\x01\x03\x30\x11\x02\x04" + msg_id.to_bytes(4, "big") + self._global_tail
        body = head + params + msg_data
        message = encode_tlv(0x30, body)
        at = len(message) - len(body) + len(head)  # the security parameters' OCTET STRING
        at += len(params) - len(usm) + len(usm) - len(usm_body)  # its header, the SEQUENCE's
        at += len(before_auth) + len(self._auth_tlv) - self.user.digest_len  # the auth header
        return message, at

    # --- answers ------------------------------------------------------------------

    def open(
        self, msg_id: int, request_id: int, subtrees: tuple[bytes, ...], skip: int, data: bytes
    ) -> ScopedPdu | Refusal | None:
        """The answer to request ``msg_id``/``request_id``: its Response ScopedPDU, a
        Refusal for a Report, or None when the datagram is not an authentic answer.
        ``subtrees``, ``skip``: see :func:`netalert.snmp.wire.ber.decode_message`."""
        header = decode_v3_header(data)
        if isinstance(header, DecodeError) or header.msg_id != msg_id:
            return None
        if header.security_model != 3:
            return None
        user = self.user
        if header.flags & FLAG_AUTH:
            if header.engine_id != self.engine_id or header.user != user.name:
                return None
            if not user.flags & FLAG_AUTH or not self._authentic(data, header):
                return None
            if header.flags & FLAG_PRIV:
                plain = self._decrypt(data, header)
                if plain is None:
                    return None
                scoped = decode_scoped_pdu(plain, subtrees=subtrees, skip=skip)
            else:
                scoped = decode_scoped_pdu(data, header.data_at, subtrees=subtrees, skip=skip)
            if isinstance(scoped, DecodeError):
                return None
            self.boots, self.time, self.at = header.boots, header.time, time.monotonic()
            if scoped.pdu_type == _REPORT:
                return _refusal(scoped, authentic=True)
        else:
            scoped = decode_scoped_pdu(data, header.data_at, subtrees=subtrees, skip=skip)
            if isinstance(scoped, DecodeError):
                return None
            if scoped.pdu_type == _REPORT:
                # unsigned: believed for its name only, its clock is not taken
                return _refusal(scoped, authentic=False)
            if user.flags & FLAG_AUTH:
                return None  # an unsigned Response for a user who signs: not the agent's
        if scoped.pdu_type != _RESPONSE or scoped.request_id != request_id:
            return None
        return scoped

    def _authentic(self, data: bytes, header: V3Header) -> bool:
        user = self.user
        size = user.digest_len
        if len(header.auth_params) != size:
            return False
        at = header.auth_at
        digest = self._mac(data[:at] + bytes(size) + data[at + size :])
        return hmac.compare_digest(digest[:size], header.auth_params)

    def _decrypt(self, data: bytes, header: V3Header) -> bytes | None:
        salt = header.priv_params
        start, stop = header.data_at
        ciphertext = data[start:stop]
        if len(salt) != 8:
            return None
        if self._des is not None:
            if len(ciphertext) % 8:
                return None
            iv = bytes(a ^ b for a, b in zip(salt, self._pre_iv, strict=True))
            decryptor = Cipher(self._des, modes.CBC(iv)).decryptor()
            return decryptor.update(ciphertext) + decryptor.finalize()
        if self._ecb is not None and ciphertext:
            iv = header.boots.to_bytes(4, "big") + header.time.to_bytes(4, "big") + salt
            return cfb_decrypt(self._ecb, iv, ciphertext)
        return None


def _refusal(scoped: ScopedPdu, *, authentic: bool) -> Refusal:
    oid = scoped.varbinds[0][0] if scoped.varbinds else ""
    return Refusal(REPORTS.get(oid, f"report {oid}" if oid else "report"), authentic)
