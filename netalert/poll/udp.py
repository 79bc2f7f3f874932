"""One UDP socket per address family for every device: requests out, answers matched back.

The native backend's transport. A request is registered under its key (the
request-id of a v1/v2c message, the msgID of a v3 one; random 31-bit numbers,
never two alike in flight), sent, and awaited until its answer or its deadline. The
socket's reader callback drains what has arrived, up to ``drain`` datagrams per
event-loop turn, and hands each to the request it answers:

* a datagram whose key cannot be read is dropped as ``malformed``; one whose key no
  request waits for (late, duplicate, or a stranger's) as ``stray``;
* one from another address than the request went to is dropped as ``spoofed``;
* one its request's ``accept`` refuses (not well-formed, wrong community, wrong
  digest, another request-id inside) is dropped as ``malformed``, and the request
  keeps waiting for its own answer.

So a hostile or broken datagram costs its decode and nothing else. Retransmissions
send the same bytes under the same key: an answer to any attempt completes it.
Timeouts share one timer (:meth:`Exchanges._expire`), set for the earliest
attempt still waiting.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import socket
from collections.abc import Callable
from typing import Any

from netalert.snmp.wire.request import message_key

__all__ = ["TIMED_OUT", "ExchangeStats", "Exchanges"]

Address = tuple[str, int]
TIMED_OUT: Any = object()  # what an attempt without an answer gives
_RECEIVE_BUFFER = 4 * 1024 * 1024  # asked for; the kernel caps it at net.core.rmem_max
_MAX_DATAGRAM = 65535


class ExchangeStats:
    """Datagrams the transport dropped, by why (``netalert_poll_datagrams_dropped_total``)."""

    __slots__ = ("malformed", "spoofed", "stray")

    def __init__(self) -> None:
        self.stray = 0
        self.spoofed = 0
        self.malformed = 0


class _Waiter:
    __slots__ = ("accept", "address", "future")

    def __init__(self, address: Address, accept: Callable[[bytes], Any]) -> None:
        self.address = address
        self.accept = accept
        self.future: asyncio.Future[Any] | None = None


class Exchanges:
    """Request/answer exchanges over shared sockets; see the module docstring."""

    def __init__(self, *, drain: int = 256) -> None:
        self.drain = drain
        self.stats = ExchangeStats()
        self._waiters: dict[int, _Waiter] = {}
        self._sockets: dict[int, socket.socket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        # Every attempt's (deadline, sequence, future), earliest first, and one timer for
        # the earliest not yet answered: a heap push per request instead of a timer
        # handle made, scheduled and cancelled per request.
        self._deadlines: list[tuple[float, int, asyncio.Future[Any]]] = []
        self._sequence = itertools.count()
        self._alarm: asyncio.TimerHandle | None = None
        self._alarm_at = 0.0

    def new_key(self) -> int:
        """A request-id / msgID not in flight now, in [2**24, 2**31): four bytes encoded,
        so a request is its cached template with the key in it."""
        waiters = self._waiters
        while True:
            key = random.getrandbits(31) | 0x0100_0000
            if key not in waiters:
                return key

    def _socket(self, family: int) -> socket.socket:
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            self.close()  # a new event loop (the old one ended): new sockets on this one
        sock = self._sockets.get(family)
        if sock is None:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
                loop.add_reader(sock.fileno(), self._readable, sock)
            except BaseException:
                sock.close()
                raise
            self._loop = loop
            self._sockets[family] = sock
        return sock

    def attempt(
        self, key: int, address: Address, data: bytes, accept: Callable[[bytes], Any], wait: float
    ) -> asyncio.Future[Any]:
        """Sends ``data`` to ``address`` under ``key`` (registered at the first attempt,
        until :meth:`forget`); the future is the first answer ``accept`` takes, or
        :data:`TIMED_OUT` after ``wait`` seconds. An exception ``accept`` raises is the
        future's.

        Raises:
            OSError: The datagram could not be sent (no route, a bad address).
        """
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = self._sockets.get(family) if self._loop is not None else None
        if sock is None:
            sock = self._socket(family)
        loop = self._loop
        assert loop is not None
        waiter = self._waiters.get(key)
        if waiter is None:
            self._waiters[key] = waiter = _Waiter(address, accept)
        future = waiter.future = loop.create_future()
        try:  # noqa: SIM105 - per request: no context manager
            sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            pass  # a full send buffer loses the datagram: the attempt times out
        deadline = loop.time() + wait
        heapq.heappush(self._deadlines, (deadline, next(self._sequence), future))
        if self._alarm is None or deadline < self._alarm_at:
            self._arm(loop, deadline)
        return future

    @property
    def waiting(self) -> int:
        """Requests registered now (each until its answer, last timeout or cancel)."""
        return len(self._waiters)

    @property
    def deadlines(self) -> int:
        """Attempts' deadlines kept (an answered one until its deadline has passed)."""
        return len(self._deadlines)

    def forget(self, key: int) -> None:
        """The request under ``key`` is over: answers to it are strays from now on."""
        self._waiters.pop(key, None)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._alarm is not None:
            self._alarm.cancel()
        self._alarm = loop.call_at(when, self._expire)
        self._alarm_at = when

    def _expire(self) -> None:
        """The alarm: attempts past their deadline time out; then the alarm is set for
        the earliest attempt still waiting (answered ones are dropped on the way)."""
        self._alarm = None
        loop = self._loop
        if loop is None:
            return
        deadlines = self._deadlines
        now = loop.time()
        while deadlines:
            deadline, _, future = deadlines[0]
            if future.done():
                heapq.heappop(deadlines)
            elif deadline <= now:
                heapq.heappop(deadlines)
                future.set_result(TIMED_OUT)
            else:
                self._arm(loop, deadline)
                return

    def _readable(self, sock: socket.socket) -> None:
        waiters = self._waiters
        stats = self.stats
        for _ in range(self.drain):
            try:
                data, source = sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error queued on the socket: the request times out
            key = message_key(data)
            if key is None:
                stats.malformed += 1
                continue
            waiter = waiters.get(key)
            future = waiter.future if waiter is not None else None
            if waiter is None or future is None or future.done():
                stats.stray += 1
                continue
            if source[0] != waiter.address[0] or source[1] != waiter.address[1]:
                stats.spoofed += 1
                continue
            try:
                answer = waiter.accept(data)
            except Exception as exc:  # the request's own verdict (a refusal): it ends
                future.set_exception(exc)
                continue
            if answer is None:
                stats.malformed += 1
                continue
            future.set_result(answer)

    def close(self) -> None:
        """Closes the sockets; requests still waiting time out now."""
        for sock in self._sockets.values():
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets.clear()
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None
        for _, _, future in self._deadlines:
            if not future.done():
                future.set_result(TIMED_OUT)
        self._deadlines.clear()
        self._loop = None
