"""atheris harness: one datagram through the trap receiver, socket to TrapEvent.

:meth:`TrapReceiver.handle` runs in the socket's reader callback: an exception
there is logged by asyncio and the rest of that read batch waits, so it must
never raise, whatever arrives. Behind the decoder this covers access control,
v1 → v2 conversion, trap OID extraction, naming through the built-in MIBs
(enum labels, DISPLAY-HINTs, index decoding), storm accounting and, for v3,
the header checks (no v3 users configured: every v3 datagram is rejected).
Every event handed on must be complete enough to print.

Run by ``make fuzz`` (see fuzz/run.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `fuzz.*` when run alone

with atheris.instrument_imports(include=["netalert"]):
    from fuzz.slow import SlowWatch
    from netalert.config.models import TrapsConfig
    from netalert.mib import MibTree
    from netalert.snmp.types import TrapEvent
    from netalert.traps.receiver import TrapReceiver

_events: list[TrapEvent] = []
_now = [1_000_000.0]
_runs = [0]


def _clock() -> float:
    _now[0] += 0.001  # time moves on, so storm buckets refill and folds come due
    return _now[0]


_receiver = TrapReceiver(
    TrapsConfig.model_validate(
        {"communities": ["public", ""], "allow": ["127.0.0.0/8"], "storm_interval": "1s"}
    ),
    sink=_events.append,
    tree=MibTree.builtin(),
    clock=_clock,
)


def check(data: bytes) -> None:
    """Raises when the receiver raises or hands on an incomplete event."""
    _events.clear()
    _receiver.handle(data, ("127.0.0.1", 50162))
    _runs[0] += 1
    if _runs[0] % 1000 == 0:
        _receiver._emit_storms(_now[0], all_=True)  # what the 1 s housekeeping does
    stats = _receiver.stats
    assert stats.datagrams >= sum(stats.received.values())
    for event in _events:
        assert event.trap_oid and event.trap_name, event
        assert event.source == "127.0.0.1"
        repr(event)
        for varbind in event.varbinds:
            str(varbind.name), str(varbind.value), str(varbind.label)


test_one_input = SlowWatch("fuzz_receiver", check)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
