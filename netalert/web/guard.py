"""Bounds on the status page's HTTP connections: a deadline per phase and a cap.

aiohttp keeps a connection for as long as the client does, and nothing bounds
how long a request's head may take to arrive: a few hundred idle or half-sent
requests once held every file descriptor of the process. A
:class:`ConnectionGuard` sits between the listening socket and aiohttp:

* past ``max_connections`` open connections a new one is answered ``503`` and
  closed at once, and counted;
* every open connection is in one phase with one deadline, and is aborted and
  counted when the deadline passes:

  - ``header``: from the accept (or from the first byte of a next request on a
    keep-alive connection) until the request's head is complete. Bytes that
    arrive meanwhile never move the deadline, so a client that sends one
    header line a second gains nothing.
  - ``body``: from the complete head until the answer is written (the handler
    and a client slow to read the response).
  - ``idle``: between two requests on a keep-alive connection.

A request body is never read (every route is GET): aiohttp is told not to
linger over one, so a request that announces a body gets its answer and the
connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from netalert.logs import RateLimiter, event
from netalert.web.limits import PHASES, HttpLimits, HttpStats, Phase

__all__ = ["PHASES", "ConnectionGuard", "GuardedSite", "HttpLimits", "HttpStats", "Phase"]

log = logging.getLogger(__name__)

_REFUSAL_TEXT = b"too many connections\n"
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(_REFUSAL_TEXT)).encode("ascii") + b"\r\n"
    b"Retry-After: 1\r\n"
    b"Cache-Control: no-store\r\n"
    b"Connection: close\r\n\r\n" + _REFUSAL_TEXT
)


class ConnectionGuard:
    """Wraps aiohttp's protocol factory with the cap and the phase deadlines.

    Args:
        limits: The bounds.
        stats: Where opens, refusals and timeouts are counted.
        clock: Monotonic clock for the rate-limited log line (tests may pass their own).
    """

    def __init__(
        self,
        limits: HttpLimits,
        stats: HttpStats,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.stats = stats
        stats.max_connections = limits.max_connections  # a reload's new cap shows at once
        self._clock = clock
        self._by_transport: dict[asyncio.BaseTransport, _GuardedProtocol] = {}
        self._refusal_log = RateLimiter(limits.log_interval)
        self._refusals_logged = 0

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` around aiohttp's ``inner``.

        The slot is taken here, not in ``connection_made``: asyncio creates the
        protocols of a whole accept burst before any of them is connected. It is
        given back in ``connection_lost``.
        """

        def make() -> asyncio.Protocol:
            if self.stats.open >= self.limits.max_connections:
                self._refused()
                return _Refused()
            self.stats.open += 1
            return _GuardedProtocol(self, inner())

        return make

    def middleware(self) -> Middleware:
        """An aiohttp middleware (put it first) that moves a connection through its phases."""

        @web.middleware
        async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
            transport = request.transport
            conn = None if transport is None else self._by_transport.get(transport)
            if conn is None:
                return await handler(request)
            conn.enter("body")
            try:
                response = await handler(request)
                if not response.prepared:
                    # Written here, so the body deadline covers a client slow to read it.
                    await response.prepare(request)
                    await response.write_eof()
                return response
            except ConnectionResetError:
                # the client left before its answer (a health check that gave up on a
                # busy agent): nobody to answer, nothing wrong here; counted, no traceback
                self.stats.clients_gone += 1
                raise asyncio.CancelledError from None
            finally:
                conn.enter("idle")

        return track

    def _refused(self) -> None:
        self.stats.refused += 1
        if self._refusal_log.allow("refused", self._clock()):
            suppressed = self._refusal_log.suppressed - self._refusals_logged
            self._refusals_logged = self._refusal_log.suppressed
            log.warning(
                event(
                    "http_refused",
                    open=self.stats.open,
                    max_connections=self.limits.max_connections,
                    suppressed=suppressed,
                )
            )

    def _opened(self, conn: _GuardedProtocol, transport: asyncio.BaseTransport) -> None:
        self._by_transport[transport] = conn

    def _closed(self, transport: asyncio.BaseTransport | None) -> None:
        self.stats.open -= 1
        if transport is not None:
            self._by_transport.pop(transport, None)

    def _expired(self, phase: Phase) -> None:
        self.stats.timeouts[phase] += 1


class _Refused(asyncio.Protocol):
    """Answers 503 and closes: costs the descriptor for one loop iteration."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_REFUSAL)  # a few bytes: the socket buffer takes them at once
        transport.close()


class _GuardedProtocol(asyncio.Protocol):
    """Passes every event to aiohttp's protocol and keeps the phase deadline."""

    __slots__ = ("_guard", "_inner", "_phase", "_timer", "_transport")

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._phase: Phase = "header"
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None

    def enter(self, phase: Phase) -> None:
        """Starts ``phase`` and its deadline (replacing the previous one)."""
        if self._transport is None or self._transport.is_closing():
            return
        if self._timer is not None:
            self._timer.cancel()
        self._phase = phase
        delay = self._guard.limits.timeout(phase)
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._guard._expired(self._phase)
            # abort, not close: close would wait for a client that does not read
            self._transport.abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # a TCP server's transports are
        self._guard._opened(self, transport)
        self.enter("header")
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._phase == "idle":
            self.enter("header")
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._guard._closed(self._transport)
        self._transport = None
        self._inner.connection_lost(exc)


class GuardedSite(web.BaseSite):
    """An aiohttp site listening on ``host:port`` through a :class:`ConnectionGuard`."""

    __slots__ = ("_guard", "_host", "_port", "_sock")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        *,
        backlog: int = 128,
        sock: socket.socket | None = None,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._guard = guard
        self._sock = sock

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    def share(self) -> socket.socket | None:
        """A second descriptor of the listening socket (None before :meth:`start`)."""
        server = getattr(self, "_server", None)
        if server is None or not server.sockets:
            return None
        shared: socket.socket = server.sockets[0].dup()
        return shared

    async def start(self) -> None:
        """Listens; raises OSError when the address cannot be bound."""
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        if self._sock is not None:  # a listening socket shared with the server it replaces
            self._server = await loop.create_server(
                self._guard.factory(server), sock=self._sock, backlog=self._backlog
            )
        else:
            self._server = await loop.create_server(
                self._guard.factory(server), self._host, self._port, backlog=self._backlog
            )
