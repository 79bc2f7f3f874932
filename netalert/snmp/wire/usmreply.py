"""The pieces of an SNMPv3 inform's Response that the fast path makes once, not per inform.

:mod:`netalert.snmp.wire.usm` answers an authentic inform with an encrypted and
signed Response. Made with the general encoder
(:func:`berenc.encode_response_scoped_pdu`, :func:`berenc.encode_v3_message`)
and ``hmac.digest``, that Response cost about as much as decoding the inform.
Most of it is the same from one inform to the next, so it is made ahead here:

* :class:`HmacKey`: HMAC with the key's inner and outer hash states made once
  (``hmac.digest`` pads and hashes the key again for every message);
* :func:`response_scoped_pdu`: the Response's ScopedPDU is the inform's own
  bytes with the Response tag, when the inform is encoded as the general
  encoder encodes (minimal lengths and INTEGERs, error-status and error-index
  0: what net-snmp and pysnmp send); any other inform gets the general encoder's;
* :class:`ResponseFrame`: the message around it. Only msgID, the salt and
  msgData change between two Responses of one user within one second; the
  engine ID, boots, time, user and the digest's place are framed once a second.

The bytes are the general encoder's, byte for byte (a property test compares
them for random informs).
"""

from __future__ import annotations

import hashlib

from netalert.snmp.wire.berenc import encode_response_scoped_pdu, encode_tlv
from netalert.snmp.wire.berv3 import ScopedPdu

__all__ = ["HmacKey", "ResponseFrame", "response_scoped_pdu"]

_RESPONSE = b"\xa2"
_NO_ERROR = b"\x02\x01\x00\x02\x01\x00"  # error-status 0, error-index 0
_MAX_SIZE = b"\x02\x03\x00\xff\xe3"  # msgMaxSize 65507: what one UDP datagram carries
_MODEL = b"\x02\x01\x03"  # msgSecurityModel: USM
_VERSION = b"\x02\x01\x03"  # msgVersion: SNMPv3


class HmacKey:
    """HMAC (RFC 2104) with one key, as ``hmac.digest(key, message, hash_name)``.

    The key's padded inner and outer blocks are hashed once; each message
    continues copies of those two states.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes, hash_name: str) -> None:
        inner = hashlib.new(hash_name)
        block = inner.block_size
        if len(key) > block:
            key = hashlib.new(hash_name, key).digest()
        key = key.ljust(block, b"\0")
        inner.update(bytes(b ^ 0x36 for b in key))
        self._inner = inner
        self._outer = hashlib.new(hash_name, bytes(b ^ 0x5C for b in key))

    def digest(self, message: bytes) -> bytes:
        """The HMAC of ``message`` (whole: callers truncate)."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def _header_size(size: int) -> int:
    """Bytes of a tag and a minimal definite length of ``size``."""
    return 2 if size < 0x80 else 3 if size < 0x100 else 4 if size < 0x10000 else 5


def response_scoped_pdu(data: bytes, contents: int, scoped: ScopedPdu) -> bytes:
    """The ScopedPDU of the Response to the inform ``scoped``, decoded from ``data``.

    ``contents`` is where the inform's ScopedPDU SEQUENCE's contents start in
    ``data``. The inform's bytes with the Response tag when they are what the
    general encoder makes for the Response's fields: the SEQUENCE's header, the
    request-id and the zero error-status and error-index compared byte for byte,
    and the context strings and the PDU's header of the sizes it gives them
    (none can be smaller, so none is larger either). Otherwise the general
    encoder's :func:`berenc.encode_response_scoped_pdu`.
    """
    list_at, list_stop = scoped.varbinds_at
    request_id = scoped.request_id
    size = request_id.bit_length() // 8 + 1
    fixed = bytes((0x02, size)) + request_id.to_bytes(size, "big", signed=True) + _NO_ERROR
    pdu = len(fixed) + list_stop - list_at  # the PDU's contents
    engine_id, name = len(scoped.context_engine_id), len(scoped.context_name)
    before_pdu = _header_size(engine_id) + engine_id + _header_size(name) + name
    seq = before_pdu + _header_size(pdu) + pdu
    head = _head(0x30, seq)
    start = contents - len(head)
    if (
        list_at - contents == seq - (list_stop - list_at)
        and data[list_at - len(fixed) : list_at] == fixed
        and start >= 0
        and data[start:contents] == head
    ):
        tag = contents + before_pdu
        return data[start:tag] + _RESPONSE + data[tag + 1 : list_stop]
    return encode_response_scoped_pdu(
        scoped.context_engine_id, scoped.context_name, request_id, data[list_at:list_stop]
    )


class ResponseFrame:
    """The message around one user's Responses (RFC 3412 section 6, RFC 3414 section 2.4).

    :meth:`message` gives :func:`berenc.encode_v3_message`'s bytes for the
    same arguments (max_size 65507, USM). The security parameters up to the
    salt are made again only when boots or time change: at most once a second.
    """

    __slots__ = (
        "_auth_at",
        "_boots",
        "_engine_id",
        "_flags",
        "_params",
        "_sizes",
        "_time",
        "_user",
    )

    def __init__(
        self, engine_id: bytes, user: bytes, flags: int, digest_size: int, salt_size: int
    ) -> None:
        """``flags``: msgFlags (the user's level, never reportable); ``digest_size`` and
        ``salt_size``: the lengths of the authentication and privacy parameters."""
        self._engine_id = engine_id
        self._user = user
        self._flags = bytes((0x04, 0x01, flags)) + _MODEL
        self._sizes = digest_size, salt_size
        self._boots = self._time = -1
        self._params = b""
        self._auth_at = 0

    def _frame(self, boots: int, time: int) -> None:
        digest_size, salt_size = self._sizes
        before_auth = (
            encode_tlv(0x04, self._engine_id)
            + encode_tlv(0x02, boots.to_bytes(boots.bit_length() // 8 + 1, "big"))
            + encode_tlv(0x02, time.to_bytes(time.bit_length() // 8 + 1, "big"))
            + encode_tlv(0x04, self._user)
        )
        auth = encode_tlv(0x04, bytes(digest_size))
        usm_size = len(before_auth) + len(auth) + len(encode_tlv(0x04, bytes(salt_size)))
        usm_head = _head(0x30, usm_size)
        params_head = _head(0x04, len(usm_head) + usm_size)
        # everything but the salt's bytes: their tag and length end it
        self._params = params_head + usm_head + before_auth + auth + _head(0x04, salt_size)
        self._auth_at = (
            len(params_head) + len(usm_head) + len(before_auth) + len(auth) - digest_size
        )
        self._boots, self._time = boots, time

    def message(
        self, msg_id: int, boots: int, time: int, salt: bytes, msg_data: bytes
    ) -> tuple[bytes, int]:
        """The message with zeros for its digest, and the offset of the digest's bytes.

        ``salt`` is the privacy parameters (``salt_size`` bytes), ``msg_data`` the
        plaintext ScopedPDU or the encrypted one's OCTET STRING TLV.
        """
        if boots != self._boots or time != self._time:
            self._frame(boots, time)
        msg_id_bytes = msg_id.to_bytes(msg_id.bit_length() // 8 + 1, "big")
        size = len(msg_id_bytes)
        head = bytes((0x30, size + 13, 0x02, size)) + msg_id_bytes + _MAX_SIZE + self._flags
        params = self._params
        outer = _head(0x30, 3 + len(head) + len(params) + len(salt) + len(msg_data))
        message = b"".join((outer, _VERSION, head, params, salt, msg_data))
        return message, len(outer) + 3 + len(head) + self._auth_at


def _head(tag: int, size: int) -> bytes:
    """A tag and the minimal definite length of ``size`` (as :func:`berenc.encode_tlv`)."""
    if size < 0x80:
        return bytes((tag, size))
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(raw))) + raw
