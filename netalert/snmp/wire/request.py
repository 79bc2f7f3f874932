"""SNMP requests as a manager sends them, and the key that matches an answer to one.

The native poll backend (:mod:`netalert.poll.client_native`) builds its GET,
GETNEXT and GETBULK requests here, for SNMPv1/v2c (:func:`community_message`)
and as the ScopedPDU of an SNMPv3 message (:func:`scoped_pdu`; the USM layer is
:mod:`netalert.snmp.wire.usmclient`). Answers are decoded by
:mod:`netalert.snmp.wire.ber` and :mod:`netalert.snmp.wire.berv3`, the trap
receiver's strict decoders; :func:`message_key` reads only as far as the
request-id (v1/v2c) or msgID (v3) of a datagram, so that the receive loop finds
the waiting request before it decodes anything else.
"""

from __future__ import annotations

from collections.abc import Sequence

from netalert.snmp.wire.ber import _I32_MAX, _I32_MIN, _Bad, _expect, _int_field
from netalert.snmp.wire.berenc import encode_oid, encode_tlv

__all__ = ["ERROR_STATUS", "community_message", "message_key", "pdu", "scoped_pdu"]

# error-status names (RFC 3416 section 3), as messages print them
ERROR_STATUS = (
    "noError",
    "tooBig",
    "noSuchName",
    "badValue",
    "readOnly",
    "genErr",
    "noAccess",
    "wrongType",
    "wrongLength",
    "wrongEncoding",
    "wrongValue",
    "noCreation",
    "inconsistentValue",
    "resourceUnavailable",
    "commitFailed",
    "undoFailed",
    "authorizationError",
    "notWritable",
    "inconsistentName",
)

# The encoded VarBindList of a request (each OID with a NULL value), by its OIDs: the
# same lists go out device after device. Bounded, cleared when full.
_LISTS: dict[tuple[str, ...], bytes] = {}
_LISTS_MAX = 4096
# (head up to the request-id's value, the rest) of request PDUs, by type, the two
# integers and the OIDs; bounded like the lists.
_PDUS: dict[tuple[int, int, int, tuple[str, ...]], tuple[bytes, bytes]] = {}


def _int(value: int) -> bytes:
    return encode_tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _varbind_list(oids: tuple[str, ...]) -> bytes:
    found = _LISTS.get(oids)
    if found is None:
        body = b"".join(
            encode_tlv(0x30, encode_tlv(0x06, encode_oid(oid)) + b"\x05\x00") for oid in oids
        )
        found = encode_tlv(0x30, body)
        if len(_LISTS) >= _LISTS_MAX:
            _LISTS.clear()
        _LISTS[oids] = found
    return found


def pdu(pdu_type: int, request_id: int, oids: Sequence[str], a: int = 0, b: int = 0) -> bytes:
    """A request PDU: ``a`` and ``b`` are error-status and error-index (0), or for
    GETBULK non-repeaters and max-repetitions.

    Raises:
        ValueError: an OID that is not dotted numeric.
    """
    if not 0x0100_0000 <= request_id <= _I32_MAX:
        return encode_tlv(
            pdu_type, _int(request_id) + _int(a) + _int(b) + _varbind_list(tuple(oids))
        )
    # Four-byte request-ids (the native client's): the PDU's head and tail are the
    # same for every request of these OIDs, only the id between them changes.
    key = (pdu_type, a, b, tuple(oids))
    found = _PDUS.get(key)
    if found is None:
        tail = _int(a) + _int(b) + _varbind_list(key[3])
        head = encode_tlv(pdu_type, bytes(6) + tail)[: -6 - len(tail)] + b"\x02\x04"
        found = (head, tail)
        if len(_PDUS) >= _LISTS_MAX:
            _PDUS.clear()
        _PDUS[key] = found
    return found[0] + request_id.to_bytes(4, "big") + found[1]


def community_message(version: int, community: bytes, encoded_pdu: bytes) -> bytes:
    """An SNMPv1 (``version`` 0) or SNMPv2c (1) message around ``encoded_pdu``."""
    return encode_tlv(0x30, _int(version) + encode_tlv(0x04, community) + encoded_pdu)


def scoped_pdu(context_engine_id: bytes, context_name: bytes, encoded_pdu: bytes) -> bytes:
    """An SNMPv3 ScopedPDU (RFC 3412 section 6.8) around ``encoded_pdu``."""
    return encode_tlv(
        0x30, encode_tlv(0x04, context_engine_id) + encode_tlv(0x04, context_name) + encoded_pdu
    )


def message_key(data: bytes) -> int | None:
    """The request-id of a v1/v2c message, the msgID of a v3 one; None when the
    datagram is not shaped like either that far. Never raises; nothing after the
    key is read (the answer's own decoder checks the rest)."""
    try:
        end = len(data)
        start, stop = _expect(data, 0, end, 0x30)
        version, pos = _int_field(data, start, stop, _I32_MIN, _I32_MAX)
        if version == 3:
            g_start, g_stop = _expect(data, pos, stop, 0x30)
            return _int_field(data, g_start, g_stop, 0, _I32_MAX)[0]
        if version not in (0, 1):
            return None
        _, pos = _expect(data, pos, stop, 0x04)
        if pos + 2 > stop:
            return None
        # the PDU's tag and length (checked by the decoder), then request-id
        size = data[pos + 1]
        pos += 2 + (size & 0x7F if size & 0x80 else 0)
        return _int_field(data, pos, stop, _I32_MIN, _I32_MAX)[0]
    except _Bad:
        return None
    except Exception:  # a bug here must cost one datagram, not the receive loop
        return None
