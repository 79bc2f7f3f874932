"""What trap workers and the agent say to each other over their socketpair.

A frame is a 4-byte big-endian length and a :mod:`marshal` payload of
builtin values only (tuples, str, bytes, int, float, None): the peer is our
own child or parent, and marshal builds no object but those, so a frame can
never run code. A payload is ``(kind, body)``:

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
"""

from __future__ import annotations

import marshal
import struct
from collections.abc import Iterable, Iterator
from typing import Any

from netalert.snmp.types import SnmpType, TrapEvent, VarBind, maker
from netalert.traps.stats import TrapStats

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
    "add_snapshot",
    "decode_event",
    "encode_event",
    "frame",
    "stats_snapshot",
    "sum_stats",
]

EVENTS, STATS, RECORDED, READY, ENGINE, GO, QUIT = "E", "S", "R", "Y", "I", "G", "Q"
RULES = "M"
MAX_FRAME = 64 * 1024 * 1024  # a frame longer than this is a bug: the channel is closed
_LENGTH = struct.Struct(">I")
ClockClaim = tuple[bytes, int, int, bytes]  # engine ID, boots, time, msgAuthenticationParameters
_TYPES = {kind.value: kind for kind in SnmpType}
_varbind = maker(VarBind)
_trap_event = maker(TrapEvent)


def frame(kind: str, body: Any) -> bytes:
    """One length-prefixed frame."""
    payload = marshal.dumps((kind, body))
    return _LENGTH.pack(len(payload)) + payload


def encode_event(event: TrapEvent, claim: ClockClaim | None) -> tuple[Any, ...]:
    """``event`` (and its clock claim) as a tuple of builtin values."""
    return (
        event.source,
        event.source_port,
        event.version,
        event.trap_oid,
        event.trap_name,
        tuple(
            (vb.oid, vb.type.value, vb.value, vb.name, vb.index, vb.label) for vb in event.varbinds
        ),
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


def decode_event(item: tuple[Any, ...]) -> tuple[TrapEvent, ClockClaim | None]:
    """The event :func:`encode_event` encoded, and its clock claim (what follows them in
    ``item``, the worker's matches, is not read here)."""
    types = _TYPES
    varbinds = tuple(
        _varbind(oid, types[kind], value, name, index, label)
        for oid, kind, value, name, index, label in item[5]
    )
    event = _trap_event(*item[:5], varbinds, *item[6:14])
    return event, item[14]


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
            # our own child or parent wrote it; marshal makes builtin values, never runs code
            kind, body = marshal.loads(bytes(buffer[at + 4 : at + 4 + size]))  # noqa: S302
            at += 4 + size
            yield kind, body
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
