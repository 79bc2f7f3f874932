"""What trap workers and the agent say to each other over their socketpair.

A frame is a 4-byte big-endian length and a :mod:`marshal` payload of
builtin values only (tuples, str, bytes, int, float, None); marshal builds
values and never runs code, so a frame cannot either. A payload is ``(kind, body)``:

- worker → agent: ``READY`` (its sockets are open: the agent's start waits
  for it), ``EVENTS`` (a batch of encoded trap events), ``STATS`` (the
  worker's counters, absolute), ``RECORDED`` (datagrams for the
  ``[traps] record`` file, which only the agent writes);
- agent → worker: ``ENGINE`` (an engine ID the poller learned), ``GO`` (start
  reading: a reload's new workers wait for the old ones to stop), ``QUIT``
  (drain and exit), ``RULES`` (the rule set in force: its token and the config
  it is compiled from, pickled; None: match no more, the agent does).

An event travels with its SNMPv3 clock claim (engine ID, boots, time,
digest) when it is an authenticated v3 trap: the agent judges it against the
one time-window table every worker shares (:mod:`netalert.snmp.wire.timeliness`),
and with what the trap rules made of it when the worker matches them: the rule
set's token and :meth:`netalert.rules.trapflow.TrapRules.matches`.

The agent trusts no frame a worker sends: a worker parses datagrams from the
network, so a bug there must not reach the agent. :func:`check_events`,
:func:`check_stats` and :func:`check_recorded` check every field of what
arrives (type, range, bound) and raise :class:`ValueError` otherwise; the
agent then refuses the frame and starts that worker afresh.
"""

from __future__ import annotations

import marshal
import math
import struct
from collections.abc import Iterable, Iterator
from typing import Any

from netalert.rules.trapcache import CACHES
from netalert.snmp.types import SnmpType, TrapEvent, VarBind, maker
from netalert.traps.stats import RejectReason, TrapStats

__all__ = [
    "ENGINE",
    "EVENTS",
    "GO",
    "QUIT",
    "READY",
    "RECORDED",
    "RULES",
    "STATS",
    "ClockClaim",
    "FrameReader",
    "VarbindCache",
    "VarbindEncoder",
    "add_difference",
    "add_snapshot",
    "check_events",
    "check_recorded",
    "check_stats",
    "decode_event",
    "encode_event",
    "frame",
    "stats_snapshot",
    "sum_stats",
]

EVENTS, STATS, RECORDED, READY, ENGINE, GO, QUIT = "E", "S", "R", "Y", "I", "G", "Q"
RULES = "M"
MAX_FRAME = 64 * 1024 * 1024  # a frame longer than this is a bug: the channel is closed
MAX_EVENTS = 1024  # events in one EVENTS frame at most (a worker sends batches of 256)
_MAX_KEYS = 256  # keys of one counter dict of a STATS frame (malformed_detail: decoder reasons)
_MAX_KEY = 128  # characters of one such key
_U64 = 2**64
_I63 = 2**63  # a count (_is_count)
_VERSIONS = frozenset({"1", "2c", "3"})
_REASONS = frozenset(reason.value for reason in RejectReason)
_VALUES = frozenset({int, float, bytes, str, type(None)})  # netalert.snmp.types.Value
_LENGTH = struct.Struct(">I")
ClockClaim = tuple[bytes, int, int, bytes]  # engine ID, boots, time, msgAuthenticationParameters
Matched = tuple[str, Any]  # a worker's rule-set token and TrapRules.matches
_TYPES = {kind.value: kind for kind in SnmpType}
_varbind = maker(VarBind)
_trap_event = maker(TrapEvent)
# Values that change trap after trap: not kept by a VarbindCache (it would only fill).
_VARYING = frozenset({SnmpType.TIMETICKS, SnmpType.COUNTER32, SnmpType.COUNTER64})
# Nor values longer than this: the v2c fast path hands again only the short varbinds it
# keeps, so a long one is a new object trap after trap, and 8,192 kept of 64 KB each would
# hold 512 MiB (in the worker and in the agent).
_KEPT_MAX = 128
_NONE = type(None)
# The types of an encoded event's fields (encode_event's order), in every combination
# a worker sends: uptime None or int, received float or int, no clock claim or one; with
# a worker's matches after them (its rule-set token and TrapRules.matches), or without.
# _decode checks them field by field (a test compares its checks with these shapes).
_FIELDS = (str, int, str, str, str, tuple, int, float, str, str, str, bool, int, str, tuple)
_EVENT_SHAPES = frozenset(
    (*_FIELDS[:6], uptime, received, *_FIELDS[8:14], claim, *matched)
    for uptime in (_NONE, int)
    for received in (float, int)
    for claim in (_NONE, tuple)
    for matched in ((), (str, tuple))
)
# rule, kind, key, labels or None, fingerprint or None, value, index or None (checked
# field by field by _checked_matches: a test compares its checks with these shapes)
_MATCH_SHAPES = frozenset(
    (str, str, str, labels, print_, str, index)
    for labels in (_NONE, dict)
    for print_ in (_NONE, str)
    for index in (_NONE, str)
)


def frame(kind: str, body: Any) -> bytes:
    """One length-prefixed frame."""
    payload = marshal.dumps((kind, body))
    return _LENGTH.pack(len(payload)) + payload


def encode_event(
    event: TrapEvent, claim: ClockClaim | None, varbinds: VarbindEncoder | None = None
) -> tuple[Any, ...]:
    """``event`` (and its clock claim) as a tuple of builtin values (``varbinds``: the
    worker's encoded varbinds, kept)."""
    return (
        event.source,
        event.source_port,
        event.version,
        event.trap_oid,
        event.trap_name,
        (varbinds or _NO_ENCODER).encode(event.varbinds),
        event.uptime,
        event.received,
        event.device,
        event.community,
        event.user,
        event.inform,
        event.storm_count,
        event.message_id,
        claim,
    )


class VarbindEncoder:
    """A worker's varbinds as :func:`encode_event` writes them, kept by the very
    :class:`VarBind` (the v2c fast path hands the same one trap after trap: see
    :mod:`netalert.traps.v2c`). An event's varbinds then are the same tuples frame after
    frame: marshal writes a tuple it has written in the frame already as a reference, and
    the agent reads it once. At most ``entries`` (emptied when full, counted in
    ``stats.varbind_cache_evictions``); values that change trap after trap, and long
    ones, are not kept."""

    __slots__ = ("_bound", "_kept", "_stats")

    def __init__(self, entries: int, stats: TrapStats) -> None:
        self._bound = entries
        self._stats = stats
        # id(varbind) -> (varbind, its tuple): the varbind kept alive keeps its id its own
        self._kept: dict[int, tuple[VarBind, tuple[Any, ...]]] = {}

    def encode(self, varbinds: tuple[VarBind, ...]) -> tuple[tuple[Any, ...], ...]:
        kept = self._kept
        out = []
        for vb in varbinds:
            hit = kept.get(id(vb))
            if hit is not None and hit[0] is vb:
                out.append(hit[1])
                continue
            value = vb.value
            item = (vb.oid, vb.type.value, value, vb.name, vb.index, vb.label)
            if (
                vb.type not in _VARYING
                and self._bound
                and not (isinstance(value, bytes | str) and len(value) > _KEPT_MAX)
            ):
                if len(kept) >= self._bound:
                    self._stats.varbind_cache_evictions += len(kept)
                    kept.clear()
                kept[id(vb)] = (vb, item)
            out.append(item)
        return tuple(out)


_NO_ENCODER = VarbindEncoder(0, TrapStats())


def decode_event(
    item: Any, varbinds: VarbindCache | None = None
) -> tuple[TrapEvent, ClockClaim | None, Matched | None]:
    """The event :func:`encode_event` encoded, its clock claim, and the worker's matches
    when it matched the trap (``(token, matches)`` after the event); every field checked.

    Each field's type is checked at once, by the tuple of the fields' types (one of a
    few shapes), then each range; ``varbinds`` keeps the varbinds already checked and
    made, by their encoding (the same, trap after trap, but for the uptime).

    Raises:
        ValueError: ``item`` is not what :func:`encode_event` (and the worker) make.
    """
    return _decode(item, varbinds if varbinds is not None else _NO_CACHE, {})


def _decode(
    item: Any, cache: VarbindCache, seen: dict[int, Any]
) -> tuple[TrapEvent, ClockClaim | None, Matched | None]:
    """:func:`decode_event`; ``seen``: the varbinds made from the frame so far, by the id
    of their tuple, and its label sets checked, by theirs (marshal makes one object of
    what the worker wrote once).

    Each field is taken into a name and its type compared there (one of the few shapes
    of ``_EVENT_SHAPES``: a tuple of the types is not made, hashed and looked up per
    event), then its range."""
    if type(item) is not tuple:
        raise ValueError("event: not a tuple of 15 or 17 fields of the right types")
    size = len(item)
    if size == 17:
        (
            source, port, version, trap_oid, trap_name, binds, uptime, received, device,
            community, user, inform, storm_count, message_id, claim, token, matches,
        ) = item  # fmt: skip
        if type(token) is not str or type(matches) is not tuple:
            raise ValueError("event: not a tuple of 15 or 17 fields of the right types")
        matched: Matched | None = _checked_matches(token, matches, seen)
    elif size == 15:
        (
            source, port, version, trap_oid, trap_name, binds, uptime, received, device,
            community, user, inform, storm_count, message_id, claim,
        ) = item  # fmt: skip
        matched = None
    else:
        raise ValueError("event: not a tuple of 15 or 17 fields of the right types")
    str_, int_ = str, int
    if not (
        type(source) is str_
        and type(port) is int_
        and type(version) is str_
        and type(trap_oid) is str_
        and type(trap_name) is str_
        and type(binds) is tuple
        and (uptime is None or type(uptime) is int_)
        and (type(received) is float or type(received) is int_)
        and type(device) is str_
        and type(community) is str_
        and type(user) is str_
        and type(inform) is bool
        and type(storm_count) is int_
        and type(message_id) is str_
    ):
        raise ValueError("event: not a tuple of 15 or 17 fields of the right types")
    if not (
        0 <= port <= 65535
        and version in _VERSIONS
        and (uptime is None or 0 <= uptime < _U64)
        and math.isfinite(received)
        and 1 <= storm_count < _U64
    ):
        raise ValueError("event: a field out of range")
    if claim is not None and (version != "3" or not _is_claim(claim)):
        raise ValueError("event: a malformed SNMPv3 clock claim")
    made = _varbinds(binds, cache, seen)
    event = _trap_event(
        source, port, version, trap_oid, trap_name, made, uptime, received, device,
        community, user, inform, storm_count, message_id,
    )  # fmt: skip
    return event, claim, matched


class VarbindCache:
    """The varbinds the agent checked and made, by their encoding (at most ``entries``:
    emptied when full, counted in ``stats.varbind_cache_evictions``), so that a varbind
    sent again is taken as it is. Values that change trap after trap, and long ones, are
    not kept."""

    __slots__ = ("_bound", "_stats", "made")

    def __init__(self, entries: int, stats: TrapStats) -> None:
        self._bound = entries
        self._stats = stats
        self.made: dict[tuple[Any, ...], VarBind] = {}

    def keep(self, bind: tuple[Any, ...], varbind: VarBind) -> None:
        if isinstance(bind[2], bytes | str) and len(bind[2]) > _KEPT_MAX:
            return  # sent again only as a new object: it would only fill the table
        made = self.made
        if len(made) >= self._bound:
            if not made:
                return  # a cache of 0 entries keeps nothing
            self._stats.varbind_cache_evictions += len(made)
            made.clear()
        made[bind] = varbind


_NO_CACHE = VarbindCache(0, TrapStats())


def _varbinds(
    binds: tuple[Any, ...], cache: VarbindCache, seen: dict[int, Any]
) -> tuple[VarBind, ...]:
    """The varbinds of an encoded event, every field checked (or one checked before)."""
    made = cache.made
    types = _TYPES
    out = []
    for bind in binds:
        varbind = seen.get(id(bind))  # the same object, checked earlier in this frame
        if varbind is not None:
            out.append(varbind)
            continue
        # a key equal to a checked varbind is one: its text fields are equal text, and its
        # value is of the same type (1 == 1.0 == True: the type is compared too)
        try:
            hit = made.get(bind)
        except TypeError:  # unhashable: not a varbind, as the checks below find
            hit = None
        if hit is not None and type(hit.value) is type(bind[2]):
            seen[id(bind)] = hit
            out.append(hit)
            continue
        if type(bind) is not tuple or len(bind) != 6:
            raise ValueError("event: a varbind not a tuple of 6 fields")
        oid, kind, value, name, index, label = bind
        snmp_type = types.get(kind) if type(kind) is str else None
        if not (
            snmp_type is not None
            and type(oid) is str
            and type(value) in _VALUES
            and (type(value) is not int or -_U64 < value < _U64)
            and type(name) is str
            and type(index) is str
            and type(label) is str
        ):
            raise ValueError("event: a varbind field of the wrong type or out of range")
        varbind = _varbind(oid, snmp_type, value, name, index, label)
        if snmp_type not in _VARYING:
            cache.keep(bind, varbind)
            seen[id(bind)] = varbind
        out.append(varbind)
    return tuple(out)


def _checked_matches(token: str, matches: tuple[Any, ...], seen: dict[int, Any]) -> Matched:
    """A worker's ``(token, matches)`` (:meth:`TrapRules.matches`), every field checked
    (a label set ``seen`` in the frame before, once); each match's fields taken into
    names and their types compared there (one of the shapes of ``_MATCH_SHAPES``)."""
    if len(token) > _MAX_KEY:
        raise ValueError("event: a rule-set token not a short string")
    if len(matches) != 2:
        raise ValueError("event: matches not a (found, cut) pair")
    found, cut = matches
    if not (
        type(found) is tuple and len(found) <= MAX_EVENTS and type(cut) is int and 0 <= cut < _I63
    ):
        raise ValueError("event: matches of the wrong shape")
    str_, none = str, None
    for match in found:
        if type(match) is not tuple or len(match) != 7:
            raise ValueError("event: a match not a tuple of 7 fields of the right types")
        rule, kind, key, labels, print_, value, index = match
        if not (
            type(rule) is str_
            and type(kind) is str_
            and type(key) is str_
            and (labels is none or type(labels) is dict)
            and (print_ is none or type(print_) is str_)
            and type(value) is str_
            and (index is none or type(index) is str_)
        ):
            raise ValueError("event: a match not a tuple of 7 fields of the right types")
        if kind not in ("c", "o"):
            raise ValueError("event: a match of an unknown kind")
        if labels is not None and id(labels) not in seen:
            if not _is_labels(labels):
                raise ValueError("event: a match's labels not text")
            seen[id(labels)] = labels
    return token, matches


def _is_labels(labels: dict[Any, Any]) -> bool:
    if len(labels) > _MAX_KEYS:
        return False
    try:  # text only: str.join takes nothing else
        "".join(labels)
        "".join(labels.values())
    except TypeError:
        return False
    return True


def _is_claim(claim: Any) -> bool:
    return (
        type(claim) is tuple
        and len(claim) == 4
        and type(claim[0]) is bytes
        and len(claim[0]) <= 32  # snmpEngineID: 5 to 32 octets
        and type(claim[1]) is int
        and type(claim[2]) is int
        and 0 <= claim[1] < 2**31  # snmpEngineBoots, snmpEngineTime: 0 to 2^31-1
        and 0 <= claim[2] < 2**31
        and type(claim[3]) is bytes
        and len(claim[3]) <= 64  # the longest HMAC-SHA-2 truncation is 48
    )


def check_events(
    body: Any, varbinds: VarbindCache | None = None
) -> list[tuple[TrapEvent, ClockClaim | None, Matched | None]]:
    """The events (and clock claims) of an EVENTS frame's body, every one checked
    (``varbinds``: see :func:`decode_event`).

    Raises:
        ValueError: not a list of at most ``MAX_EVENTS`` encoded events.
    """
    if type(body) is not list:
        raise ValueError("events: not a list")
    if len(body) > MAX_EVENTS:
        raise ValueError(f"events: {len(body)} in one frame, more than {MAX_EVENTS}")
    cache = varbinds if varbinds is not None else _NO_CACHE
    seen: dict[int, Any] = {}  # the frame's body holds every object: ids stay theirs
    return [_decode(item, cache, seen) for item in body]


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value < 2**63


def check_stats(body: Any) -> dict[str, Any]:
    """A STATS frame's body, checked: :func:`stats_snapshot`'s names, counts, bounded keys.

    Raises:
        ValueError: anything else (an unknown counter, a label value no worker counts,
            a negative or non-integer count).
    """
    if type(body) is not dict:
        raise ValueError("stats: not a dict")
    for name, value in body.items():
        if name in _COUNTERS:
            allowed = _VERSIONS if name == "received" else _REASONS if name == "rejected" else None
            if type(value) is not dict or len(value) > _MAX_KEYS:
                raise ValueError(f"stats: {name} not a dict of at most {_MAX_KEYS} counts")
            for key, count in value.items():
                if (
                    type(key) is not str
                    or len(key) > _MAX_KEY
                    or (allowed is not None and key not in allowed)
                    or not _is_count(count)
                ):
                    raise ValueError(f"stats: {name} has a key or count no worker counts")
        elif name in _INTS:
            if not _is_count(value):
                raise ValueError(f"stats: {name} not a count")
        elif name == "trap_cache_evicted":  # the worker's trap caches (netalert.rules.trapcache)
            if not (
                type(value) is dict and all(k in CACHES and _is_count(n) for k, n in value.items())
            ):
                raise ValueError("stats: trap_cache_evicted names a cache no worker has")
        else:
            raise ValueError(f"stats: an unknown counter {str(name)[:40]!r}")
    return body


def _is_address(address: Any) -> bool:
    # (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6
    return (
        type(address) is tuple
        and len(address) in (2, 4)
        and type(address[0]) is str
        and len(address[0]) <= 64
        and all(type(part) is int and 0 <= part < 2**32 for part in address[1:])
    )


def check_recorded(body: Any) -> list[tuple[bytes, Any, Any, float]]:
    """A RECORDED frame's body, checked: (datagram, source, destination, when) each.

    Raises:
        ValueError: anything else.
    """
    if type(body) is not list:
        raise ValueError("recorded: not a list")
    for item in body:
        if not (
            type(item) is tuple
            and len(item) == 4
            and type(item[0]) is bytes
            and len(item[0]) <= 65535
            and _is_address(item[1])
            and _is_address(item[2])
            and type(item[3]) in (float, int)
            and math.isfinite(item[3])
        ):
            raise ValueError("recorded: not a (datagram, source, destination, when)")
    return body


class FrameReader:
    """Splits a byte stream into decoded frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[str, Any]]:
        """Takes bytes received; yields every ``(kind, body)`` they complete.

        Raises:
            ValueError: a frame is longer than any the peer sends, or undecodable.
        """
        buffer = self._buffer
        buffer += data
        at = 0
        while len(buffer) - at >= 4:
            (size,) = _LENGTH.unpack_from(buffer, at)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes")
            if len(buffer) - at - 4 < size:
                break
            # marshal makes values (builtin types and code objects) and never runs code;
            # the checks above find what is not a worker's
            try:
                payload = marshal.loads(bytes(buffer[at + 4 : at + 4 + size]))  # noqa: S302
            except (ValueError, EOFError, TypeError) as exc:
                raise ValueError(f"undecodable frame: {exc}") from None
            if type(payload) is not tuple or len(payload) != 2 or type(payload[0]) is not str:
                raise ValueError("a frame not a (kind, body) pair")
            at += 4 + size
            yield payload[0], payload[1]
        del buffer[:at]


_COUNTERS = ("received", "rejected", "malformed_detail")
_INTS = (
    "informs_answered",
    "v3_replies",
    "reports_limited",
    "shared_source",
    "v3_fast",
    "storm_folded",
    "storm_events",
    "storm_shed",
    "storm_keys",
    "dropped",
    "record_shed",
    "queue_full_events",
    "queue_full_bytes",
    "varbind_cache_evictions",
    "name_cache_evictions",
    "datagrams",
    "errors",
)


def stats_snapshot(stats: TrapStats) -> dict[str, Any]:
    """A worker's counters as builtin values (absolute, since the worker started)."""
    out: dict[str, Any] = {name: dict(getattr(stats, name)) for name in _COUNTERS}
    out.update((name, getattr(stats, name)) for name in _INTS)
    return out


def add_snapshot(total: dict[str, Any], snapshot: dict[str, Any]) -> None:
    """Adds one :func:`stats_snapshot` to another (the counters of workers that exited)."""
    for name, value in snapshot.items():
        if isinstance(value, dict):
            counts = total.setdefault(name, {})
            for key, count in value.items():
                counts[key] = counts.get(key, 0) + count
        else:
            total[name] = total.get(name, 0) + value


def add_difference(total: TrapStats, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Adds to ``total`` what changed from a worker's counters ``old`` to ``new`` (two of
    its :func:`stats_snapshot`), as :func:`sum_stats` over every worker would set it."""
    for name in _COUNTERS:
        counts = getattr(total, name)
        before = old.get(name) or {}
        after = new.get(name) or {}
        if after == before:
            continue
        for key, count in after.items():
            change = count - before.get(key, 0)
            if change:
                counts[key] += change
        for key, count in before.items():
            if count and key not in after:
                counts[key] -= count
    for name in _INTS:
        change = new.get(name, 0) - old.get(name, 0)
        if change:
            setattr(total, name, getattr(total, name) + change)


def sum_stats(total: TrapStats, snapshots: Iterable[dict[str, Any]]) -> None:
    """Sets ``total``'s counters to the sum of ``snapshots`` (the workers' and the agent's)."""
    for name in _COUNTERS:
        getattr(total, name).clear()
    for name in _INTS:
        setattr(total, name, 0)
    for snapshot in snapshots:
        for name in _COUNTERS:
            getattr(total, name).update(snapshot.get(name, {}))
        for name in _INTS:
            setattr(total, name, getattr(total, name) + int(snapshot.get(name, 0)))
