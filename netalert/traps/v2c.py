"""The v2c fast path: the common SNMPv2c Trap read in one pass, its varbinds named from a cache.

Nearly every datagram at the trap port is an SNMPv2c Trap-PDU whose varbinds a
device sends again and again, byte for byte (``ifIndex.3 = 3``, ``ifDescr.3 =
"Gi0/3"``, ``snmpTrapOID.0 = linkDown``), around a ``sysUpTime.0`` that counts
on. :class:`V2cReader` walks such a message once and takes each varbind's
decoded and named form from a bounded cache keyed by the varbind's encoding,
and all those after the first at once from a second one keyed by theirs; a
varbind not seen before is decoded by :func:`~netalert.snmp.wire.ber.decode_varbind`
and named by :class:`~netalert.traps.names.TrapNamer`, as the general path
decodes and names it, and a ``TimeTicks`` value is read in place.

Whatever the reader does not expect (another version or PDU, an unusual length
form, a community that is not configured, a varbind that does not decode) it
leaves to the general path by returning None; that path decides and says why.
So the fast path accepts only what the general path accepts, with the same
varbinds, names and labels (tests hold the two equal).
"""

from __future__ import annotations

from typing import TypeVar

from netalert.present import timeticks_text
from netalert.snmp.types import SnmpType, VarBind, maker
from netalert.snmp.wire.ber import MAX_MESSAGE, DecodeError, RawVarBind, decode_varbind
from netalert.traps.names import TrapNamer
from netalert.traps.stats import TrapStats

__all__ = ["V2cReader", "V2cTrap"]

# (community as text, the varbinds as the decoder gives them, the same named)
V2cTrap = tuple[str, list[RawVarBind], tuple[VarBind, ...]]
_Entry = tuple[RawVarBind, VarBind]

_VERSION_2C = b"\x02\x01\x01"  # INTEGER 1: SNMPv2c
_TRAP_V2 = 0xA7
_TIMETICKS = SnmpType.TIMETICKS
# Values that change from one trap to the next: caching them would fill the cache.
_VARYING = frozenset({SnmpType.TIMETICKS, SnmpType.COUNTER32, SnmpType.COUNTER64})
_CACHED_BYTES = 129  # a varbind kept is one of short form: at most 2 + 127 bytes
_REST_BYTES = 512  # the varbinds after the first are kept as one when this short at most
_varbind = maker(VarBind)
_T = TypeVar("_T")


class V2cReader:
    """Reads the common v2c Trap for one receiver (its namer, communities and bounds)."""

    def __init__(
        self,
        namer: TrapNamer,
        communities: frozenset[bytes],
        *,
        max_varbinds: int,
        entries: int,
        stats: TrapStats,
    ) -> None:
        self._namer = namer
        self._communities = {c: c.decode("utf-8", "replace") for c in communities}
        self._limit = max_varbinds
        self._bound = entries
        self._stats = stats
        self._cache: dict[bytes, _Entry] = {}
        # the varbinds after the first, by their encoding: (raw, named)
        self._rests: dict[bytes, tuple[tuple[RawVarBind, ...], tuple[VarBind, ...]]] = {}
        # sysUpTime.0 and friends by their encoded OID: (oid, name, index), None if not plain
        self._ticks: dict[bytes, tuple[str, str, str] | None] = {}

    def __len__(self) -> int:
        return len(self._cache) + len(self._ticks) + len(self._rests)

    def read(self, data: bytes) -> V2cTrap | None:
        """The community, raw and named varbinds of a v2c Trap; None: the general path decides.

        Only a message the general decoder (:func:`~netalert.snmp.wire.ber.decode_message`
        with this receiver's communities and ``max_varbinds``) accepts as a v2c Trap-PDU
        is read here, to the same varbinds.
        """
        end = len(data)
        if end < 2 or end > MAX_MESSAGE or data[0] != 0x30:
            return None
        pos, stop = _length(data, 1)
        if stop != end or data[pos : pos + 3] != _VERSION_2C:
            return None
        pos += 3
        # community: a configured one, in short form
        if pos + 2 > end or data[pos] != 0x04 or data[pos + 1] >= 0x80:
            return None
        at = pos + 2 + data[pos + 1]
        community = self._communities.get(data[pos + 2 : at])
        if community is None or at >= end or data[at] != _TRAP_V2:
            return None
        pos, stop = _length(data, at + 1)
        if stop != end:
            return None
        # request-id and error-status: any Integer32 of 1-4 bytes; error-index: not negative
        for field in range(3):
            if pos + 3 > end or data[pos] != 0x02 or not 0 < data[pos + 1] <= 4:
                return None
            if field == 2 and data[pos + 2] >= 0x80:
                return None
            pos += 2 + data[pos + 1]
        if pos + 2 > end or data[pos] != 0x30:
            return None
        pos, stop = _length(data, pos + 1)
        if stop != end:
            return None
        cache = self._cache
        raw: list[RawVarBind] = []
        named: list[VarBind] = []
        limit = self._limit
        rest_at = 0  # where the varbinds after the first begin
        kept = True  # every varbind after the first is one the cache keeps
        while pos < stop:
            if pos == rest_at:
                # the rest (all but sysUpTime.0 in a well-made trap) is often the same
                # bytes trap after trap: all of it at once
                rest = self._rests.get(data[pos:stop])
                if rest is not None:
                    if len(rest[0]) >= limit:
                        return None
                    raw += rest[0]
                    return community, raw, (named[0], *rest[1])
            if len(raw) == limit or pos + 2 > stop or data[pos] != 0x30:
                return None
            size = data[pos + 1]
            if size < 0x80:
                vb_stop = pos + 2 + size
            elif size == 0x81 and pos + 3 <= stop:
                vb_stop = pos + 3 + data[pos + 2]
            else:
                return None
            if vb_stop > stop:
                return None
            tlv = data[pos:vb_stop]
            hit = cache.get(tlv)
            if hit is None:
                hit = self._learn(tlv)
                if hit is None:
                    return None
                kept = kept and (not raw or tlv in cache)
            raw.append(hit[0])
            named.append(hit[1])
            if not rest_at:
                rest_at = vb_stop
            pos = vb_stop
        if kept and len(raw) > 1 and stop - rest_at <= _REST_BYTES:
            self._keep(self._rests, data[rest_at:stop], (tuple(raw[1:]), tuple(named[1:])))
        return community, raw, tuple(named)

    def _learn(self, tlv: bytes) -> _Entry | None:
        """A varbind not in the cache: a TimeTicks read in place, else decoded and named
        (and kept unless its value changes trap after trap)."""
        ticks = self._ticks_varbind(tlv)
        if ticks is not None:
            return ticks
        raw = decode_varbind(tlv)
        if isinstance(raw, DecodeError):
            return None
        entry = (raw, self._namer.varbinds((raw,))[0])
        if raw[1] not in _VARYING and len(tlv) <= _CACHED_BYTES:
            self._keep(self._cache, tlv, entry)
        return entry

    def _ticks_varbind(self, tlv: bytes) -> _Entry | None:
        """A short-form TimeTicks varbind (below 2**31) of an OID seen before, read in place."""
        # 30 L 06 l <oid> 43 n <value>: every length short, the value filling the varbind
        if len(tlv) < 6 or tlv[1] >= 0x80 or tlv[2] != 0x06 or tlv[3] >= 0x80:
            return None
        at = 4 + tlv[3]
        if at + 3 > len(tlv) or tlv[at] != 0x43 or not 0 < tlv[at + 1] <= 4:
            return None
        if at + 2 + tlv[at + 1] != len(tlv) or tlv[at + 2] >= 0x80:
            return None
        key = tlv[2:at]
        plan = self._ticks.get(key)
        if plan is None:
            if key in self._ticks:
                return None  # this OID's ticks are labelled otherwise: the general way
            raw = decode_varbind(tlv)
            if isinstance(raw, DecodeError):
                return None
            oid = raw[0]
            naming = self._namer.plain_ticks(oid)
            plan = None if naming is None else (oid, *naming)
            self._keep(self._ticks, key, plan)
            if plan is None:
                return None
        oid, name, index = plan
        value = int.from_bytes(tlv[at + 2 :], "big")
        return (oid, _TIMETICKS, value), _varbind(
            oid, _TIMETICKS, value, name, index, timeticks_text(value)
        )

    def _keep(self, cache: dict[bytes, _T], key: bytes, value: _T) -> None:
        if len(cache) >= self._bound:
            # Emptied, not trimmed: no bookkeeping per hit; the working set refills it at once.
            self._stats.varbind_cache_evictions += len(cache)
            cache.clear()
        cache[key] = value


def _length(data: bytes, at: int) -> tuple[int, int]:
    """(content start, content end) of the length at ``at``: short form, or long form of
    one or two bytes; (0, -1) for anything else (or a length past the data)."""
    end = len(data)
    if at >= end:
        return 0, -1
    first = data[at]
    if first < 0x80:
        return at + 1, at + 1 + first
    if first == 0x81 and at + 2 <= end:
        return at + 2, at + 2 + data[at + 1]
    if first == 0x82 and at + 3 <= end:
        return at + 3, at + 3 + (data[at + 1] << 8 | data[at + 2])
    return 0, -1
