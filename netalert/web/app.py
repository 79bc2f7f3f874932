"""The HTTP side: status page, ``/metrics``, ``/healthz`` and the read-only JSON API.

Every route is GET (and HEAD); nothing here changes the agent's state. The
page is one static file whose inline script fetches ``api/status`` and builds
the DOM with ``textContent`` only, so device strings (a forged trap can carry
anything) are never parsed as markup; a Content-Security-Policy that allows
just that script and style by hash backs this up.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import math
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from typing import Any

from aiohttp import web

from netalert.logs import event
from netalert.metrics import Metrics
from netalert.present import json_value
from netalert.web.guard import ConnectionGuard, GuardedSite, HttpLimits, HttpStats
from netalert.web.health import LoopMonitor
from netalert.web.model import StatusProvider, StatusSnapshot

__all__ = [
    "MONITOR_KEY",
    "PROVIDER_KEY",
    "WebServer",
    "create_app",
    "start_web",
    "to_jsonable",
]

log = logging.getLogger(__name__)

PROVIDER_KEY = web.AppKey("provider", StatusProvider)
MONITOR_KEY = web.AppKey("monitor", LoopMonitor)
_METRICS_KEY = web.AppKey("metrics", Metrics)
_CLOCK_KEY: web.AppKey[Callable[[], float]] = web.AppKey("clock")
_PROBLEMS_KEY: web.AppKey[Callable[[], list[str]]] = web.AppKey("problems")

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _load_page() -> tuple[bytes, str]:
    text = resources.files("netalert.web").joinpath("page.html").read_text("utf-8")

    def digest(tag: str) -> str:
        match = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
        if match is None:  # pragma: no cover - the file is ours
            raise RuntimeError(f"page.html has no <{tag}>")
        raw = hashlib.sha256(match.group(1).encode("utf-8")).digest()
        return f"'sha256-{base64.b64encode(raw).decode('ascii')}'"

    csp = (
        f"default-src 'none'; script-src {digest('script')}; style-src {digest('style')}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return text.encode("utf-8"), csp


_PAGE, _CSP = _load_page()


def to_jsonable(value: Any) -> Any:
    """Turns snapshot values (dataclasses, mappings, tuples, enums) into JSON types.

    Non-finite floats become null: JSON has no NaN and browsers reject it.
    Bytes become hex (:func:`netalert.present.json_value`).
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return json_value(value)
    return value


def _json(data: Any, status: int = 200) -> web.Response:
    body = json.dumps(to_jsonable(data), ensure_ascii=False, separators=(",", ":"))
    return web.Response(
        text=body, status=status, content_type="application/json", headers=_SECURITY_HEADERS
    )


def _snapshot(request: web.Request) -> StatusSnapshot:
    app = request.app
    try:
        return app[PROVIDER_KEY].snapshot(app[_CLOCK_KEY]())
    except Exception as exc:
        log.exception(event("status_snapshot_failed"))
        raise web.HTTPInternalServerError(
            text=json.dumps({"error": f"status unavailable: {type(exc).__name__}"}),
            content_type="application/json",
        ) from None


async def _page(request: web.Request) -> web.Response:
    headers = {**_SECURITY_HEADERS, "Content-Security-Policy": _CSP}
    return web.Response(body=_PAGE, content_type="text/html", charset="utf-8", headers=headers)


async def _status(request: web.Request) -> web.Response:
    snapshot = _snapshot(request)
    body = to_jsonable(snapshot)
    if snapshot.cluster is None:  # without [cluster] the answer is what it always was
        del body["cluster"]
    return _json(body)


async def _alerts(request: web.Request) -> web.Response:
    snap = _snapshot(request)
    return _json({"generated": snap.generated, "alerts": snap.alerts})


async def _devices(request: web.Request) -> web.Response:
    snap = _snapshot(request)
    return _json({"generated": snap.generated, "devices": snap.devices})


async def _traps(request: web.Request) -> web.Response:
    snap = _snapshot(request)
    return _json({"generated": snap.generated, "traps": snap.traps})


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[_METRICS_KEY].render(request.headers.get("Accept", ""))
    return web.Response(
        body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"}
    )


async def _healthz(request: web.Request) -> web.Response:
    monitor = request.app[MONITOR_KEY]
    if not monitor.healthy():
        text = f"event loop lag {monitor.lag:.3f}s exceeds {monitor.max_lag:g}s\n"
        return web.Response(status=503, text=text, headers={"Cache-Control": "no-store"})
    try:
        problems = request.app[_PROBLEMS_KEY]()
    except Exception as exc:  # a broken check is itself a reason to look
        problems = [f"health check failed: {type(exc).__name__}"]
    if problems:
        text = "".join(f"{line}\n" for line in problems)
        return web.Response(status=503, text=text, headers={"Cache-Control": "no-store"})
    return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})


def create_app(
    provider: StatusProvider,
    metrics: Metrics,
    *,
    monitor: LoopMonitor | None = None,
    clock: Callable[[], float] = time.time,
    problems: Callable[[], list[str]] = list,
) -> web.Application:
    """Builds the web application (GET routes only).

    The loop monitor starts and stops with the application and is registered
    as the ``loop`` metrics source.

    Args:
        provider: The source of every page and JSON answer.
        metrics: The registry ``/metrics`` exports.
        monitor: Loop-lag monitor for ``/healthz`` (default: 0.25 s ticks, 1 s limit).
        clock: Wall clock passed to ``provider.snapshot``.
        problems: Returns what is wrong besides the loop (one line each); any
            makes ``/healthz`` answer 503 with those lines.
    """
    app = web.Application()
    app[PROVIDER_KEY] = provider
    app[_METRICS_KEY] = metrics
    app[MONITOR_KEY] = monitor if monitor is not None else LoopMonitor()
    app[_CLOCK_KEY] = clock
    app[_PROBLEMS_KEY] = problems
    metrics.register_source("loop", app[MONITOR_KEY].source())

    async def monitor_ctx(app: web.Application) -> Any:
        app[MONITOR_KEY].start()
        yield
        await app[MONITOR_KEY].stop()

    app.cleanup_ctx.append(monitor_ctx)
    app.router.add_get("/", _page)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/status", _status)
    app.router.add_get("/api/alerts", _alerts)
    app.router.add_get("/api/devices", _devices)
    app.router.add_get("/api/traps", _traps)
    return app


@dataclass(frozen=True, slots=True)
class WebServer:
    """A started server: its runner and the address it is bound to."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:9162/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def share(self) -> socket.socket | None:
        """A second descriptor of the listening socket, for the server that replaces this one."""
        for site in self.runner.sites:
            if isinstance(site, GuardedSite):
                return site.share()
        return None

    async def stop(self) -> None:
        """Closes the listening socket and open connections, then the app."""
        await self.runner.cleanup()


async def start_web(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 9162,
    *,
    limits: HttpLimits | None = None,
    stats: HttpStats | None = None,
    sock: socket.socket | None = None,
) -> WebServer:
    """Serves ``app`` on ``host:port`` in the running loop (port 0 picks a free one).

    With ``sock``, a listening socket already bound to that address (shared
    with the server a reload replaces), nothing is bound.

    Every connection goes through a :class:`~netalert.web.guard.ConnectionGuard`
    (``limits``, default: the config's defaults; counted in ``stats``). Access
    logging is off: the page polls every few seconds.

    Raises:
        OSError: The address cannot be bound (in use, not local, privileged).
    """
    limits = limits if limits is not None else HttpLimits.from_config()
    guard = ConnectionGuard(limits, stats if stats is not None else HttpStats())
    app.middlewares.insert(0, guard.middleware())
    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=2.0,
        # The guard enforces the deadlines; aiohttp's own keep-alive timer is a later backstop.
        keepalive_timeout=2 * max(limits.header_timeout, limits.idle_timeout),
        # Never read an unread request body: answer, then close the connection.
        lingering_time=0,
    )
    await runner.setup()
    site = GuardedSite(runner, host, port, guard, sock=sock)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    # port 0 asks the kernel for a free port: report the one it chose
    bound = port
    for address in runner.addresses:
        if isinstance(address, tuple):
            bound = int(address[1])
            break
    return WebServer(runner, host, bound)
