"""Storm control: token buckets per source and per source+trap, and folding.

A trap that finds both buckets with a token passes. Past either limit it is
still counted, but folded: one storm event per (source, trap OID) and
interval carries how many traps it stands for. Every decision takes ``now``;
memory is bounded however many sources a spoofed flood invents: at most
``max_keys`` buckets of each kind and folds, and a fold keeps a counter and a
sample of at most ``fold_bytes`` of varbinds (:func:`fold_sample`), never the
datagram. The storm events of an interval are logged as one rate-limited line
(:meth:`StormControl.log_line`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from netalert.config.models import TrapsConfig
from netalert.logs import Event, RateLimiter, event
from netalert.snmp.types import TrapEvent
from netalert.snmp.wire.ber import RawVarBind

__all__ = ["StormControl", "StormLimits", "TokenBucket", "fold_sample"]

_VARBIND_COST = 64  # what a kept varbind costs besides its OID and value (tuple, objects)
_MIN_CUT = 16  # a value is cut to fit only when at least this much of it can stay
_CUT_MARK = "…".encode()


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second up to ``burst``; starts full."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        """Takes one token at ``now``; False when the bucket is empty."""
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False

    def full_at(self, now: float) -> bool:
        """True when the bucket would be full at ``now`` (forgetting it loses nothing)."""
        return self.tokens + (now - self.stamp) * self.rate >= self.burst


@dataclass(frozen=True, slots=True)
class StormLimits:
    """The ``[traps]`` storm settings."""

    source_rate: float = 50.0
    source_burst: int = 200
    trap_rate: float = 10.0
    trap_burst: int = 50
    interval: float = 60.0
    max_keys: int = 10_000  # buckets and folds each; a flood of spoofed sources hits this
    fold_bytes: int = 1024  # the varbind sample a fold keeps (see fold_sample)

    @classmethod
    def from_config(cls, config: TrapsConfig) -> StormLimits:
        """The limits set in ``[traps]`` (``storm_*``)."""
        return cls(
            config.storm_rate,
            config.storm_burst,
            config.storm_trap_rate,
            config.storm_trap_burst,
            config.storm_interval.total_seconds(),
            config.storm_max_keys,
            config.storm_fold_bytes,
        )


def fold_sample(raw: Sequence[RawVarBind], budget: int) -> tuple[RawVarBind, ...]:
    """The first varbinds of ``raw`` that fit in about ``budget`` bytes; never the datagram.

    Each kept varbind costs its OID, its value and a fixed overhead. The first
    OCTET STRING that does not fit is cut to what is left, ending in ``…``,
    when at least a few bytes of it can stay; the varbinds after it are left
    out. The decoder's values are slices, not views of the datagram, so the
    sample keeps nothing of it beyond what it shows.
    """
    out: list[RawVarBind] = []
    left = budget
    for oid, kind, value in raw:
        cost = _VARBIND_COST + len(oid)
        size = len(value) if isinstance(value, bytes | str) else 8
        if cost + size <= left:
            out.append((oid, kind, value))
            left -= cost + size
            continue
        room = left - cost - len(_CUT_MARK)
        if isinstance(value, bytes) and room >= _MIN_CUT:
            out.append((oid, kind, value[:room] + _CUT_MARK))
        break
    return tuple(out)


@dataclass(slots=True)
class _Fold:
    first: float
    count: int
    last: Callable[[], TrapEvent]  # built only when emitted: folded traps skip the naming work


@dataclass(slots=True)
class StormControl:
    """Decides pass or fold for each trap and emits the folded storm events."""

    limits: StormLimits
    _sources: dict[str, TokenBucket] = field(default_factory=dict)
    _traps: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)
    _folds: dict[tuple[str, str], _Fold] = field(default_factory=dict)
    overflow: int = 0  # traps neither passed nor folded because every fold slot was taken
    _log_gate: RateLimiter | None = None
    _unlogged: int = 0  # storm events emitted since the last log line and not named by it
    _unlogged_traps: int = 0  # the traps those stand for

    def admit(self, source: str, trap_oid: str, now: float) -> bool:
        """True when a trap from ``source`` with ``trap_oid`` may pass at ``now``."""
        limits = self.limits
        bucket = self._sources.get(source)
        if bucket is None:
            if len(self._sources) >= limits.max_keys:
                self._prune(now)
                if len(self._sources) >= limits.max_keys:
                    return False
            bucket = self._sources[source] = TokenBucket(
                limits.source_rate, limits.source_burst, limits.source_burst, now
            )
        key = (source, trap_oid)
        per_trap = self._traps.get(key)
        if per_trap is None:
            if len(self._traps) >= limits.max_keys:
                self._prune(now)
                if len(self._traps) >= limits.max_keys:
                    return False
            per_trap = self._traps[key] = TokenBucket(
                limits.trap_rate, limits.trap_burst, limits.trap_burst, now
            )
        # Both buckets are charged so a source cannot dodge its limit by varying trap OIDs.
        source_ok = bucket.take(now)
        trap_ok = per_trap.take(now)
        return source_ok and trap_ok

    def fold(
        self, source: str, trap_oid: str, make_event: Callable[[], TrapEvent], now: float
    ) -> bool:
        """Counts a trap that did not pass; False if it had to be dropped (too many folds).

        ``make_event`` builds the trap's event; only the last one of an
        interval is called, when the storm event is emitted. It is kept until
        then, so it must hold a bounded sample (:func:`fold_sample`), not the
        datagram.
        """
        key = (source, trap_oid)
        entry = self._folds.get(key)
        if entry is None:
            if len(self._folds) >= self.limits.max_keys:
                self.overflow += 1
                return False
            self._folds[key] = _Fold(now, 1, make_event)
            return True
        entry.count += 1
        entry.last = make_event
        return True

    def due(self, now: float, *, all_: bool = False) -> list[TrapEvent]:
        """Storm events whose interval ended by ``now`` (every pending one with ``all_``).

        Each is the last folded trap with ``storm_count`` set to the number of
        traps it stands for.
        """
        out: list[TrapEvent] = []
        interval = self.limits.interval
        for key, entry in list(self._folds.items()):
            if all_ or now - entry.first >= interval:
                del self._folds[key]
                out.append(_with_count(entry.last(), entry.count))
        return out

    def pending(self) -> int:
        """How many traps are folded and not yet emitted."""
        return sum(entry.count for entry in self._folds.values())

    def keys(self) -> int:
        """How many (source, trap OID) folds are open now (at most ``max_keys``)."""
        return len(self._folds)

    def log_line(self, events: Sequence[TrapEvent], now: float) -> Event | None:
        """The ``trap_storm`` warning for storm events just emitted, or None to stay quiet.

        One line per storm interval at most: it names the largest storm of
        ``events`` and counts the storm events (and the traps they stand for)
        it does not name, including those of intervals that were not logged.
        Values are escaped (:func:`netalert.logs.event`).
        """
        if not events:
            return None
        if self._log_gate is None:
            # a little under the interval, so emissions one interval apart are each logged
            self._log_gate = RateLimiter(self.limits.interval * 0.9, max_keys=1)
        top = max(events, key=lambda e: e.storm_count)
        self._unlogged += len(events) - 1
        self._unlogged_traps += sum(e.storm_count for e in events) - top.storm_count
        if not self._log_gate.allow("trap_storm", now):
            self._unlogged += 1
            self._unlogged_traps += top.storm_count
            return None
        line = event(
            "trap_storm",
            source=top.source,
            trap=top.trap_name,
            folded=top.storm_count,
            suppressed=self._unlogged,
            suppressed_folded=self._unlogged_traps,
        )
        self._unlogged = self._unlogged_traps = 0
        return line

    def _prune(self, now: float) -> None:
        # A full bucket is the same as a fresh one, so forgetting it changes nothing.
        self._sources = {k: b for k, b in self._sources.items() if not b.full_at(now)}
        self._traps = {k: b for k, b in self._traps.items() if not b.full_at(now)}

    def housekeeping(self, now: float) -> None:
        """Forgets idle buckets; call every few seconds."""
        self._prune(now)


def _with_count(event: TrapEvent, count: int) -> TrapEvent:
    return TrapEvent(
        source=event.source,
        source_port=event.source_port,
        version=event.version,
        trap_oid=event.trap_oid,
        trap_name=event.trap_name,
        varbinds=event.varbinds,
        uptime=event.uptime,
        received=event.received,
        device=event.device,
        community=event.community,
        user=event.user,
        inform=event.inform,
        storm_count=count,
    )
