"""atheris harness: SNMPv3 datagrams through pysnmp's engine, the receiver's v3 fallback path.

The target is :class:`netalert.traps.v3.V3Engine` with ``fast=False`` (every
datagram goes to pysnmp after the security-level check), configured with the
users of fuzz/v3build.py: noAuthNoPriv, authNoPriv and authPriv, keyed for a
known sender engine ID, with a known engine ID of its own for informs. pysnmp
and pyasn1 are instrumented too, so coverage guides the fuzzer through them.

Properties, for every datagram whose header decodes (the receiver hands only
those to the engine):

* :meth:`V3Engine.handle` never raises, and the fast path counts no internal error;
* a notification is delivered only when ``handle`` returns None, at most one;
* an accepted notification comes from a configured user whose name is the
  message's, at that user's level: with the auth flag and a digest that
  verifies with the user's key when the user has an ``auth_protocol``; a trap
  names a configured engine ID (or the own one), an inform the own one
  (fuzz/oracles.py, :class:`V3Judge`; a privacy user's authNoPriv trap is
  accepted by design and only counted);
* at most one reply (a Report or a Response) per datagram, at most
  :data:`REPLY_SLACK` bytes longer than the datagram;
* time: the slowest input is tracked (fuzz/slow.py); libFuzzer's ``-timeout``
  catches hangs.

Half of the mutations are structured (fuzz/mutators.py): fields changed,
lengths right, the digest made again, so that the fuzzer gets past the
digest check into what an authenticated sender can reach.

Every input meets the same state: the time-window table is emptied first (an
authentic trap run twice is otherwise judged against itself) and the engine is
rebuilt every :data:`REBUILD_SECONDS`, so informs built with engine time 0
stay inside pysnmp's 150 s window. pysnmp exceptions, which ``handle`` turns
into ``malformed``, are printed once per type and place: pysnmp bugs on odd
input, but not failures of the receiver.

Run by ``make fuzz`` (see fuzz/run.py); alone, from the repository:
``.venv/bin/python fuzz/fuzz_pysnmp.py -max_total_time=60 build/fuzz/corpus/fuzz_pysnmp``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `fuzz.*` when run alone

if __name__ == "__main__":
    import atheris  # type: ignore[import-untyped]

    _instrument: Any = atheris.instrument_imports(include=["netalert", "pysnmp", "pyasn1"])
else:  # tests/test_fuzz_harnesses.py imports this module without atheris
    _instrument = contextlib.nullcontext()

with _instrument:
    from fuzz.mutators import mutate_v3
    from fuzz.oracles import V3Judge, tolerated
    from fuzz.slow import SlowWatch
    from fuzz.v3build import OWN_ENGINE, SENDER_ENGINE, USERS, trap_users
    from netalert.snmp.wire.berv3 import V3Header, decode_v3_header
    from netalert.traps.v3 import V3Engine, V3Notification

__all__ = ["REBUILD_SECONDS", "REPLY_SLACK", "Target", "check"]

REPLY_SLACK = 128  # a Report to a 58-byte discovery probe is 99 bytes
REBUILD_SECONDS = 100.0
SOURCE = ("192.0.2.1", 50162)


class _Raised(logging.Handler):
    """Prints each (exception type, place) that V3Engine logged, once."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: set[tuple[str, str]] = set()
        self.data = b""

    def emit(self, record: logging.LogRecord) -> None:
        if not record.exc_info or record.exc_info[1] is None or len(self.seen) >= 100:
            return
        exc = record.exc_info[1]
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        key = (type(exc).__name__, f"{Path(frame.filename).name}:{frame.lineno}")
        if key not in self.seen:
            self.seen.add(key)
            print(
                f"fuzz_pysnmp: {record.getMessage()} raised {key[0]} at {key[1]}: {exc!r:.200}"
                f" for {len(self.data)} bytes: {self.data[:512].hex()}",
                file=sys.stderr,
            )


class Target:
    """One V3Engine, the judge of what it accepts, and what it sent."""

    def __init__(self, judge: V3Judge | None = None, *, watch_log: bool = False) -> None:
        """Builds the engine for fuzz/v3build.py's users (2 password hashes per user).

        ``watch_log``: print the exceptions V3Engine logs (this takes over the
        ``netalert.traps`` logger: for the fuzzer process only).
        """
        self.judge = judge or V3Judge(USERS, [SENDER_ENGINE], OWN_ENGINE)
        self.tolerated = tolerated()
        self.notes: list[V3Notification] = []
        self.replies: list[tuple[bytes, tuple[Any, ...]]] = []
        self.counts: dict[str, int] = {}
        self.raised = _Raised()
        if watch_log:
            log = logging.getLogger("netalert.traps")
            log.setLevel(logging.DEBUG)
            log.propagate = False
            log.addHandler(self.raised)
        self.runs = 0
        self._build()

    def _build(self) -> None:
        self.engine = V3Engine(
            trap_users(),
            OWN_ENGINE,
            on_notification=self.notes.append,
            send=lambda data, addr: self.replies.append((data, addr)),
            fast=False,
        )
        self.built = time.monotonic()

    def run(self, data: bytes) -> str:
        """Feeds one datagram; returns the outcome (``accepted``, a reason, ``header``).

        Raises:
            AssertionError: a property in the module doc does not hold.
        """
        header = decode_v3_header(data)
        if not isinstance(header, V3Header):
            return "header"
        self.runs += 1
        if self.runs % 1000 == 0:
            self.engine.tick(time.time())
            if time.monotonic() - self.built > REBUILD_SECONDS:
                self._build()
        self.engine.clocks._known.clear()  # every input from the same state
        self.notes.clear()
        self.replies.clear()
        self.raised.data = data
        reason = self.engine.handle(data, SOURCE, header)
        assert self.engine._usm.internal_errors == 0, "fast path internal error"
        assert len(self.notes) <= 1, self.notes
        assert reason is None or not self.notes, (reason, self.notes)
        for note in self.notes:
            self._judge(data, header, note)
        assert len(self.replies) <= 1, [len(reply) for reply, _ in self.replies]
        for reply, addr in self.replies:
            assert addr == SOURCE, addr
            assert len(reply) <= len(data) + REPLY_SLACK, (len(reply), len(data))
        return "accepted" if self.notes else str(reason or "no_notification")

    def _judge(self, data: bytes, header: V3Header, note: V3Notification) -> None:
        found = self.judge.violations(
            data,
            name=header.user,
            engine_id=header.engine_id,
            flags=header.flags,
            auth_at=header.auth_at,
            auth_params=header.auth_params,
            accepted_user=note.user,
            inform=note.inform,
        )
        for name in found:
            if self.counts.get(name, 0) == 0 and name in self.tolerated:
                print(f"fuzz_pysnmp: tolerated {name}: {data.hex()}", file=sys.stderr)
            self.counts[name] = self.counts.get(name, 0) + 1
        failing = [name for name in found if name not in self.tolerated]
        assert not failing, (
            f"accepted {'inform' if note.inform else 'trap'} of user {note.user!r} "
            f"(header user {header.user!r}, flags {header.flags:#x}, engine "
            f"{header.engine_id.hex()}): {', '.join(failing)}"
        )


_target: Target | None = None


def check(data: bytes) -> None:
    """Raises AssertionError when a property does not hold for ``data``."""
    global _target
    if _target is None:
        _target = Target(watch_log=True)
    _target.run(data)


test_one_input = SlowWatch("fuzz_pysnmp", check)


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """Half structured (fuzz/mutators.py), half libFuzzer's byte mutations."""
    if seed % 2:
        out = mutate_v3(data, max_size, seed >> 1, atheris.Mutate)
        if out is not None:
            return out
    return bytes(atheris.Mutate(data, max_size))


if __name__ == "__main__":
    check(b"")  # builds the target now: its first input must not pay for it (-timeout)
    atheris.Setup(sys.argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()
