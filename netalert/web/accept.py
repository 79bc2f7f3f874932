"""A loop exception handler that keeps asyncio's accept() failures from flooding the log.

When ``accept()`` on a listening socket fails for want of resources (EMFILE:
the process is out of file descriptors; ENFILE, ENOBUFS, ENOMEM), asyncio's
selector loop reports it through the loop's exception handler, once per
queued connection it tries, up to its backlog each time, and tries again every
second. With the default handler that was thousands of multi-line log records
a second while the condition lasted. :class:`AcceptErrorLog` counts every
such report and logs one line per interval, carrying the number of reports
suppressed since the previous line; every other context goes on to the handler
installed before it (asyncio's default when there was none).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable
from typing import Any

from netalert.logs import event
from netalert.web.limits import HttpStats

__all__ = ["AcceptErrorLog", "is_accept_error"]

log = logging.getLogger(__name__)

_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


def is_accept_error(context: dict[str, Any]) -> bool:
    """True when ``context`` is asyncio's report of an accept() out of resources."""
    exc = context.get("exception")
    message = str(context.get("message", ""))
    return isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS and "accept" in message


class AcceptErrorLog:
    """The handler: counts into ``stats.accept_errors``, logs once per ``interval`` seconds.

    Args:
        stats: The HTTP counters /metrics reads.
        interval: Seconds between two logged lines.
        clock: A monotonic clock (tests may pass their own).
    """

    def __init__(
        self,
        stats: HttpStats,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = stats
        self.interval = interval
        self._clock = clock
        self._last: float | None = None
        self._suppressed = 0
        self._previous: ExceptionHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Makes this the exception handler of ``loop``, keeping the current one for the rest."""
        if self._loop is None:
            self._previous = loop.get_exception_handler()
            self._loop = loop
            loop.set_exception_handler(self)

    def uninstall(self) -> None:
        """Puts back the handler found by :meth:`install` (if this one is still in place)."""
        if self._loop is not None and self._loop.get_exception_handler() is self:
            self._loop.set_exception_handler(self._previous)
        self._loop = None
        self._previous = None

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not is_accept_error(context):
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self.stats.accept_errors += 1
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            self._suppressed += 1
            return
        self._last = now
        exc = context["exception"]
        fields: dict[str, object] = {
            "errno": errno.errorcode.get(exc.errno, exc.errno),
            "error": exc.strerror or str(exc),
        }
        listen = _listen_address(context.get("socket"))
        if listen:
            fields["listen"] = listen
        fields["suppressed"] = self._suppressed
        fields["interval"] = f"{self.interval:g}s"
        self._suppressed = 0
        log.error(event("http_accept_failed", **fields))


def _listen_address(sock: Any) -> str:
    try:
        name = sock.getsockname()
    except (AttributeError, OSError):
        return ""
    if isinstance(name, tuple) and len(name) >= 2:
        host = f"[{name[0]}]" if ":" in str(name[0]) else str(name[0])
        return f"{host}:{name[1]}"
    return str(name)
