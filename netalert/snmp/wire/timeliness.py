"""Replay protection for authenticated SNMPv3 traps: the USM time window.

For a trap the sender is the authoritative SNMP engine and this receiver is
not (RFC 3414 section 3.2.7 b). Per sender engine ID it keeps the latest
(msgAuthoritativeEngineBoots, msgAuthoritativeEngineTime) it received and the
local monotonic time it learned them; its estimate of the sender's clock is
that time plus the local seconds elapsed since. An authenticated trap is

- *newer* when its boots are greater, or equal with a greater time: it is
  accepted and becomes the new reference (an engine restart raises boots, so
  it always passes, however low its time);
- *in the window* when it is not newer but has the same boots and a time at
  most 150 s behind the estimate: accepted, the reference stays;
- *current* when it has the same boots and time as the reference but is a
  different message (another digest), however late: accepted (see below);
- *stale* otherwise (lower boots, or a time more than 150 s behind): refused
  as ``not_in_time_window``. A recorded trap sent again later is stale, and
  so is the very message that set the reference.

Boots of 2**31-1 (latched: RFC 3414 wants such an engine reconfigured) are
always refused and never remembered. The order (update first, then compare) is the RFC's; it
means a sender whose clock runs slower than ours is still accepted as long as
its time keeps increasing.

Why *current*: measured with net-snmp 5.9.3, ``snmptrap -v 3 -e ID`` sends
boots 1 and the host's uptime in hundredths of a second (it grows 100 times
faster than real time, so repeated runs are always newer), while
``snmptrap -Z boots,time`` and devices without a running engine clock send the
same boots and time in every trap. By the letter of RFC 3414 those would be
refused from 150 s after the first one on. snmptrapd accepts them: it treats a
time equal to the latest received as fresh (seen 170 s after the first
``-Z 6,1``), and refuses what we call stale (``-Z 5,800`` after ``-Z 5,1000``,
lower boots) while taking a higher boots with a low time. We follow snmptrapd
so such senders keep alerting, with one tightening: an identical replay of the
message that set the reference (same digest: it covers msgID, the varbinds
and, with privacy, the salt, so two real traps all but never share one) is
still refused. For a
sender that repeats its time, replays of its other traps cannot be told from
new ones; only a running engine clock protects against those.

Also as snmptrapd: a sender host's reboot with plain ``snmptrap`` (boots stays
1, uptime restarts low) is refused until netalert restarts. Traps replayed
within 150 s are accepted; USM has no other replay defence for
unacknowledged notifications.

The table is in memory (a restart forgets it: the first trap per engine after
a restart is believed) and bounded: past ``max_engines`` the engine updated
least recently is forgotten. Entries are only made by traps that passed the
digest check for an engine ID users are keyed for. A cluster node shares it
with the other nodes (:mod:`netalert.cluster.usm`): ``on_newer`` hears of each
reference a trap moved, :meth:`EngineClocks.adopt` takes another node's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["BOOTS_LATCHED", "TIME_WINDOW", "EngineClock", "EngineClocks", "Verdict", "judge"]

TIME_WINDOW = 150  # seconds, RFC 3414 section 3.2.7
BOOTS_LATCHED = 2**31 - 1


class Verdict(StrEnum):
    """What :func:`judge` decided about one authenticated message."""

    NEWER = "newer"  # accept and remember its boots and time
    IN_WINDOW = "in_window"  # accept, keep the reference
    CURRENT = "current"  # same boots and time as the reference, another message: accept
    STALE = "stale"  # refuse: lower boots or more than 150 s behind
    LATCHED = "latched"  # refuse: boots at 2**31-1


@dataclass(frozen=True, slots=True)
class EngineClock:
    """The latest boots and time received from one engine, and when (local monotonic).

    ``digest`` is the msgAuthenticationParameters of the message they came from.
    """

    boots: int
    time: int
    learned: float
    digest: bytes

    def estimate(self, now: float) -> float:
        """The sender's snmpEngineTime as estimated at ``now``."""
        return self.time + (now - self.learned)


def judge(
    known: EngineClock | None, boots: int, engine_time: int, digest: bytes, now: float
) -> Verdict:
    """Decides an authenticated message's place in the time window (RFC 3414 3.2.7 b).

    Args:
        known: The reference for the message's engine ID, None if none yet.
        boots: msgAuthoritativeEngineBoots of the message.
        engine_time: msgAuthoritativeEngineTime of the message.
        digest: msgAuthenticationParameters of the message.
        now: Local monotonic seconds.

    Returns:
        The verdict; STALE and LATCHED refuse the message.
    """
    if boots >= BOOTS_LATCHED:
        return Verdict.LATCHED
    if known is None or boots > known.boots or (boots == known.boots and engine_time > known.time):
        return Verdict.NEWER
    if boots < known.boots:
        return Verdict.STALE
    if engine_time >= known.estimate(now) - TIME_WINDOW:
        return Verdict.IN_WINDOW
    if engine_time == known.time and digest != known.digest:
        return Verdict.CURRENT
    return Verdict.STALE


class EngineClocks:
    """The bounded table of :class:`EngineClock` per sender engine ID."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_engines: int = 65_536,
        relaxed: bool = False,
        defer: bool = False,
    ) -> None:
        """An empty table reading local time from ``clock`` (monotonic seconds).

        ``relaxed`` (replay of a recording only) admits stale messages too and
        counts them in ``relaxed``; a live receiver never sets it. With
        ``defer`` (a trap worker) nothing is judged here: :meth:`admit` keeps
        the message's claim in :attr:`claim` for the agent, which judges it
        against the table all workers share.
        """
        self.clock = clock
        self.max_engines = max_engines
        self.refused = 0
        self.relaxed_mode = relaxed
        self.relaxed = 0
        self._known: dict[bytes, EngineClock] = {}
        self.defer = defer
        self.claim: tuple[bytes, int, int, bytes] | None = None
        # Called with each reference an authenticated trap moved forward (a cluster node
        # writes it through to the other nodes); never blocks.
        self.on_newer: Callable[[bytes, EngineClock], None] | None = None

    def __len__(self) -> int:
        return len(self._known)

    def get(self, engine_id: bytes) -> EngineClock | None:
        """The reference for ``engine_id``, if any."""
        return self._known.get(engine_id)

    def admit(self, engine_id: bytes, boots: int, engine_time: int, digest: bytes) -> bool:
        """Judges an authenticated message now; remembers it when newer.

        Call only after the message's digest verified: an unauthenticated
        message must never move the reference.

        Returns:
            True when the message is inside the time window (always, with ``defer``).
        """
        if self.defer:
            self.claim = (engine_id, boots, engine_time, digest)
            return True
        now = self.clock()
        known = self._known.get(engine_id)
        verdict = judge(known, boots, engine_time, digest, now)
        if verdict is Verdict.NEWER:
            reference = EngineClock(boots, engine_time, now, digest)
            self._put(engine_id, reference)
            if self.on_newer is not None:
                self.on_newer(engine_id, reference)
            return True
        if verdict is not Verdict.STALE and verdict is not Verdict.LATCHED:
            return True
        if self.relaxed_mode:
            self.relaxed += 1
            return True
        self.refused += 1
        return False

    def adopt(self, engine_id: bytes, reference: EngineClock) -> bool:
        """Takes a reference learned elsewhere (another node; ``learned`` on this
        table's clock) when it is ahead of the one known here, or none is.

        Returns:
            True when it replaced the reference.
        """
        known = self._known.get(engine_id)
        if reference.boots >= BOOTS_LATCHED:
            return False
        if known is not None and (reference.boots, reference.time) <= (known.boots, known.time):
            return False
        self._put(engine_id, reference)
        return True

    def _put(self, engine_id: bytes, reference: EngineClock) -> None:
        if engine_id in self._known:
            del self._known[engine_id]  # re-inserted last: eviction forgets the idlest
        elif len(self._known) >= self.max_engines:
            del self._known[next(iter(self._known))]
        self._known[engine_id] = reference

    def describe(self, engine_id: bytes, boots: int, engine_time: int) -> str:
        """``key=value`` text for the log line of a refused message."""
        text = f"engine_id={engine_id.hex()} boots={boots} time={engine_time}"
        known = self._known.get(engine_id)
        if known is not None:
            estimate = int(known.estimate(self.clock()))
            text += f" known_boots={known.boots} estimated_time={estimate}"
        return text
