"""atheris harness: the whole trap receiver with its access control, fuzzed sources and bytes.

:meth:`TrapReceiver.handle` gets a datagram and the address it came from, both
from the input (see :func:`unframe`): IPv4, IPv6, IPv4-mapped IPv6 (a
dual-stack socket) and IPv6 with a zone, formatted as the socket module
returns them. The receiver is configured with an ``allow`` list of IPv4 and
IPv6 networks, two communities and the v3 users of fuzz/v3build.py (fast path
on, as in production); storm limits are out of reach, so every accepted trap
reaches the sink at once.

Properties (decided by fuzz/oracles.py, not by the receiver's code):

* ``handle`` never raises;
* an event reaches the sink only when the source is inside ``allow`` (an
  IPv4-mapped source is its IPv4 address) and names it; and for v1/v2c when
  the message's community is configured, for v3 when the user is configured,
  is the message's, and authenticated as its level demands
  (:class:`oracles.V3Judge`);
* one datagram is counted, and every accepted one is an event;
* replies (inform Responses, v3 Reports) go only to the datagram's source,
  when it is allowed, at most one, at most :data:`REPLY_SLACK` bytes longer
  than the datagram; a v1/v2c reply only for a configured community;
* every log line the receiver writes, as the agent formats it
  (:class:`netalert.logs.KeyValueFormatter`), is one line without control
  characters (a value from the network cannot forge a log event);
* time: the slowest input is tracked (fuzz/slow.py).

A violation named in ``FUZZ_KNOWN`` (fuzz/oracles.py) is counted, printed
once, and let pass. Every input meets the same v3 state: the time-window
table is emptied first, and the receiver is rebuilt every
:data:`REBUILD_SECONDS` (informs are built with engine time 0).

Run by ``make fuzz`` (see fuzz/run.py), with its own seeds (framed datagrams).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `fuzz.*` when run alone

from fuzz.instrument import instrumented

if __name__ == "__main__":
    import atheris  # type: ignore[import-untyped]

with instrumented(__name__):
    from fuzz.mutators import mutate_community, mutate_v3
    from fuzz.oracles import (
        IPAddress,
        IPNetwork,
        V3Judge,
        community_of,
        inside,
        source_ip,
        tolerated,
    )
    from fuzz.slow import SlowWatch
    from fuzz.v3build import OWN_ENGINE, SENDER_ENGINE, USERS, trap_users
    from netalert.config.models import TrapsConfig
    from netalert.logs import KeyValueFormatter
    from netalert.mib import MibTree
    from netalert.snmp.types import TrapEvent
    from netalert.snmp.wire.berv3 import V3Header, decode_v3_header
    from netalert.traps.receiver import TrapReceiver

__all__ = [
    "ADDRESSES",
    "ALLOW",
    "COMMUNITIES",
    "KIND_MAPPED",
    "KIND_V4",
    "KIND_V6",
    "KIND_ZONE",
    "REPLY_SLACK",
    "Target",
    "check",
    "frame",
    "unframe",
]

KIND_V4, KIND_V6, KIND_MAPPED, KIND_ZONE = range(4)
_SIZES = {KIND_V4: 4, KIND_V6: 16, KIND_MAPPED: 4, KIND_ZONE: 16}
ZONE = "lo"
ALLOW = ("192.0.2.0/24", "10.0.0.0/8", "2001:db8::/32", "fe80::/10")
COMMUNITIES = (b"public", b"s3cret")
REPLY_SLACK = 128
REBUILD_SECONDS = 100.0
_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})


def _edges() -> list[tuple[int, bytes]]:
    """Each allowed network's first and last address and the ones just outside it."""
    out = []
    for net in map(ipaddress.ip_network, ALLOW):
        size = 4 if net.version == 4 else 16
        kinds = (KIND_V4, KIND_MAPPED) if size == 4 else (KIND_V6, KIND_ZONE)
        first, last = int(net.network_address), int(net.broadcast_address)
        for value in (first - 1, first, last, last + 1):
            if 0 <= value < 2 ** (8 * size):
                out += [(kind, value.to_bytes(size, "big")) for kind in kinds]
    return out


# (kind, address bytes) the configuration allows, and ones it does not: seeds and mutations
ALLOWED = [
    (KIND_V4, bytes([192, 0, 2, 7])),
    (KIND_MAPPED, bytes([10, 1, 2, 3])),
    (KIND_V6, bytes.fromhex("20010db8000000000000000000000007")),
    (KIND_ZONE, bytes.fromhex("fe800000000000000000000000000001")),
    (KIND_V6, bytes.fromhex("00000000000000000000ffffc0000209")),  # mapped, from 16 bytes
]
REFUSED = [
    (KIND_V4, bytes([203, 0, 113, 9])),
    (KIND_MAPPED, bytes([198, 51, 100, 1])),
    (KIND_V6, bytes.fromhex("20010db9000000000000000000000001")),
    (KIND_V6, bytes.fromhex("000000000000000000000000c0000207")),  # IPv4-compatible
    (KIND_V6, bytes.fromhex("0064ff9b0000000000000000c0000207")),  # NAT64 of 192.0.2.7
]
ADDRESSES = ALLOWED + REFUSED + _edges()


def frame(kind: int, raw: bytes, port: int, datagram: bytes) -> bytes:
    """The fuzzer input for ``datagram`` from ``raw`` (4 or 16 bytes, see :func:`unframe`)."""
    return bytes([kind]) + raw + port.to_bytes(2, "big") + datagram


def _split(data: bytes) -> tuple[bytes, bytes] | None:
    """(kind, address and port bytes; datagram) of an input; None if too short."""
    if not data or len(data) < 3 + _SIZES[data[0] & 3]:
        return None
    at = 3 + _SIZES[data[0] & 3]
    return data[:at], data[at:]


def unframe(data: bytes) -> tuple[IPAddress, tuple[Any, ...], bytes] | None:
    """Splits an input into (source address, socket address, datagram); None if too short.

    Layout: one byte of kind (low 2 bits: IPv4, IPv6, IPv4-mapped from 4
    bytes, IPv6 with zone ``%lo``), the address bytes, a 2-byte port, the
    datagram. The socket address is what ``recvfrom`` gives on an IPv4 or a
    dual-stack IPv6 socket; the source address is decided from the raw bytes.
    """
    if not data:
        return None
    kind = data[0] & 3
    size = _SIZES[kind]
    if len(data) < 1 + size + 2:
        return None
    raw = data[1 : 1 + size]
    port = int.from_bytes(data[1 + size : 3 + size], "big")
    datagram = data[3 + size :]
    if kind == KIND_V4:
        return source_ip(raw), (socket.inet_ntop(socket.AF_INET, raw), port), datagram
    if kind == KIND_MAPPED:
        raw = _MAPPED_PREFIX + raw
    host = socket.inet_ntop(socket.AF_INET6, raw)
    if kind == KIND_ZONE:
        host += "%" + ZONE
    return source_ip(raw), (host, port, 0, 0), datagram


class _Sock:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[Any, ...]]] = []

    def sendto(self, data: bytes, addr: tuple[Any, ...]) -> int:
        self.sent.append((data, addr))
        return len(data)


class _Listener:
    """What handle() uses of a listener: a socket whose replies are recorded, not sent."""

    def __init__(self) -> None:
        self.sock = _Sock()


class _Lines(logging.Handler):
    """Every line the receiver logs, formatted as the agent does."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(KeyValueFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Target:
    """A started TrapReceiver, the oracle's view of its configuration, what it emitted."""

    def __init__(
        self,
        *,
        allow: tuple[str, ...] = ALLOW,
        communities: tuple[bytes, ...] = COMMUNITIES,
        judge: V3Judge | None = None,
        configured_allow: tuple[str, ...] | None = None,
        configured_communities: tuple[bytes, ...] | None = None,
        tree: MibTree | None = None,
    ) -> None:
        """Starts the receiver on a free loopback port (nothing reads it).

        ``allow``, ``communities`` and ``judge`` are what the oracle holds the
        receiver to; ``configured_*`` (default: the same) what the receiver is
        given, so a test can show that the oracle catches a receiver that
        accepts too much. ``tree`` names the traps (default: the built-in
        MIBs, 10 s to load; the tests give an empty one).
        """
        self.allow: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(net, strict=False) for net in allow
        )
        self.communities = frozenset(communities)
        self.judge = judge or V3Judge(USERS, [SENDER_ENGINE], OWN_ENGINE)
        self.tolerated = tolerated()
        self.counts: dict[str, int] = {}
        self.config = TrapsConfig.model_validate(
            {
                "listen": [f"127.0.0.1:{_free_port()}"],
                "allow": list(configured_allow or allow),
                "communities": [c.decode() for c in configured_communities or communities],
                "users": trap_users(),
                "engine_id": OWN_ENGINE.hex(),
                "storm_rate": 1e9,
                "storm_burst": 10**9,
                "storm_trap_rate": 1e9,
                "storm_trap_burst": 10**9,
            }
        )
        self.events: list[TrapEvent] = []
        self.listener = _Listener()
        self.lines = _Lines()
        self._log = logging.getLogger("netalert.traps")
        self._level = self._log.level
        self._log.setLevel(logging.DEBUG)
        self._log.addHandler(self.lines)
        self._now = 1_000_000.0
        self._loop = asyncio.new_event_loop()
        self._tree = tree if tree is not None else MibTree.builtin()
        self.receiver = self._start()

    def _clock(self) -> float:
        self._now += 0.001
        return self._now

    def _start(self) -> TrapReceiver:
        receiver = TrapReceiver(
            self.config, sink=self.events.append, tree=self._tree, clock=self._clock
        )
        self._loop.run_until_complete(receiver.start())
        self.started = time.monotonic()
        return receiver

    def close(self) -> None:
        """Stops the receiver and gives the ``netalert.traps`` logger back."""
        self._loop.run_until_complete(self.receiver.stop())
        self._loop.close()
        self._log.removeHandler(self.lines)
        self._log.setLevel(self._level)

    def run(self, data: bytes) -> str:
        """Feeds one input; returns ``accepted``, ``rejected`` or ``short``.

        Raises:
            AssertionError: a property in the module doc does not hold.
        """
        parts = unframe(data)
        if parts is None:
            return "short"
        source, addr, datagram = parts
        if time.monotonic() - self.started > REBUILD_SECONDS:
            self._loop.run_until_complete(self.receiver.stop())
            self.receiver = self._start()
        receiver = self.receiver
        if receiver._v3 is not None:
            receiver._v3.clocks._known.clear()  # every input from the same state
        self.events.clear()
        self.listener.sock.sent.clear()
        self.lines.lines.clear()
        stats = receiver.stats
        datagrams, received = stats.datagrams, sum(stats.received.values())
        receiver.handle(datagram, addr, self.listener)
        assert stats.datagrams == datagrams + 1
        assert sum(stats.received.values()) - received == len(self.events), self.events
        allowed = inside(source, self.allow)
        found: list[str] = []
        for event in self.events:
            found += self._judge_event(event, source, allowed, datagram)
        found += self._judge_replies(addr, allowed, datagram)
        found += self._judge_lines()
        self._fail_on(found, data)
        return "accepted" if self.events else "rejected"

    def _judge_event(
        self, event: TrapEvent, source: IPAddress, allowed: bool, datagram: bytes
    ) -> list[str]:
        found = [] if allowed else ["source_not_allowed"]
        named = ipaddress.ip_address(event.source.partition("%")[0])
        if named != source:
            found.append("wrong_source")
        if event.version in ("1", "2c"):
            head = community_of(datagram)
            if head is None or head[0] != ("1", "2c").index(event.version):
                return [*found, "unreadable_v1_v2c"]
            if head[1] not in self.communities:
                found.append("community_not_configured")
            return found
        header = decode_v3_header(datagram)
        if event.version != "3" or not isinstance(header, V3Header):
            return [*found, "not_v3"]
        return found + self.judge.violations(
            datagram,
            name=header.user,
            engine_id=header.engine_id,
            flags=header.flags,
            auth_at=header.auth_at,
            auth_params=header.auth_params,
            accepted_user=event.user,
            inform=event.inform,
        )

    def _judge_replies(self, addr: tuple[Any, ...], allowed: bool, datagram: bytes) -> list[str]:
        sent = self.listener.sock.sent
        found = ["several_replies"] if len(sent) > 1 else []
        for reply, to in sent:
            if to != addr:
                found.append("reply_elsewhere")
            if not allowed:
                found.append("reply_not_allowed")
            if len(reply) > len(datagram) + REPLY_SLACK:
                found.append("reply_amplified")
            head = community_of(datagram)
            if head is not None and head[0] in (0, 1) and head[1] not in self.communities:
                found.append("reply_bad_community")
        return found

    def _judge_lines(self) -> list[str]:
        for line in self.lines.lines:
            if any(unicodedata.category(c) in _LINE_BREAKING for c in line):
                return ["log_control"]
        return []

    def _fail_on(self, found: list[str], data: bytes) -> None:
        for name in found:
            if self.counts.get(name, 0) == 0 and name in self.tolerated:
                print(f"fuzz_access: tolerated {name}: {data.hex()}", file=sys.stderr)
            self.counts[name] = self.counts.get(name, 0) + 1
        failing = sorted({name for name in found if name not in self.tolerated})
        assert not failing, (
            f"{', '.join(failing)}: events {self.events}, replies "
            f"{self.listener.sock.sent}, log {self.lines.lines}"
        )


_target: Target | None = None


def check(data: bytes) -> None:
    """Raises AssertionError when a property does not hold for ``data``."""
    global _target
    if _target is None:
        _target = Target()
        logging.getLogger("netalert.traps").propagate = False  # the fuzzer's output stays short
    _target.run(data)


test_one_input = SlowWatch("fuzz_access", check)


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """A quarter each: another source address, a structured change of the datagram
    (fuzz/mutators.py), libFuzzer's byte mutations of the whole input (twice)."""
    parts = _split(data)
    roll = seed % 4
    if parts is not None and roll < 2:
        head, datagram = parts
        if roll == 0:
            kind, raw = ADDRESSES[(seed >> 2) % len(ADDRESSES)]
            return frame(kind, raw, int.from_bytes(head[-2:], "big"), datagram)[:max_size]
        room = max_size - len(head)
        out = mutate_v3(datagram, room, seed >> 2, atheris.Mutate)
        if out is None:
            out = mutate_community(datagram, room, seed >> 2, atheris.Mutate, COMMUNITIES)
        if out is not None:
            return head + out
    return bytes(atheris.Mutate(data, max_size))


if __name__ == "__main__":
    check(b"")  # builds the target now: its first input must not pay for it (-timeout)
    atheris.Setup(sys.argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()
