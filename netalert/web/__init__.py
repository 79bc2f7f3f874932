"""The status page, ``/metrics``, ``/healthz`` and the read-only JSON API.

``service.py`` builds a :class:`LiveStatus` (or any :class:`StatusProvider`),
passes it with the :class:`~netalert.metrics.Metrics` registry to
:func:`create_app`, and serves the app with :func:`start_web` in the agent's
event loop.

The names below are imported on first use: importing a module of this package (the
agent imports :mod:`netalert.web.wiring` and :mod:`netalert.web.limits` whether or not
it serves a page) must not import aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netalert.web.accept import AcceptErrorLog
    from netalert.web.app import WebServer, create_app, start_web
    from netalert.web.guard import ConnectionGuard
    from netalert.web.health import LoopMonitor
    from netalert.web.history import DeviceBoard, History
    from netalert.web.limits import HttpLimits, HttpStats
    from netalert.web.live import LiveStatus, alert_view, outbox_status, trap_view
    from netalert.web.model import (
        AlertView,
        DeviceStatus,
        OutboxStatus,
        Series,
        StatusProvider,
        StatusSnapshot,
        TrapView,
    )
    from netalert.web.sources import (
        alerts_source,
        http_source,
        mail_source,
        poller_source,
        traps_source,
    )

_WHERE = {
    "AcceptErrorLog": "accept",
    "AlertView": "model",
    "ConnectionGuard": "guard",
    "DeviceBoard": "history",
    "DeviceStatus": "model",
    "History": "history",
    "HttpLimits": "limits",
    "HttpStats": "limits",
    "LiveStatus": "live",
    "LoopMonitor": "health",
    "OutboxStatus": "model",
    "Series": "model",
    "StatusProvider": "model",
    "StatusSnapshot": "model",
    "TrapView": "model",
    "WebServer": "app",
    "alert_view": "live",
    "alerts_source": "sources",
    "create_app": "app",
    "http_source": "sources",
    "mail_source": "sources",
    "outbox_status": "live",
    "poller_source": "sources",
    "start_web": "app",
    "trap_view": "live",
    "traps_source": "sources",
}

__all__ = [
    "AcceptErrorLog",
    "AlertView",
    "ConnectionGuard",
    "DeviceBoard",
    "DeviceStatus",
    "History",
    "HttpLimits",
    "HttpStats",
    "LiveStatus",
    "LoopMonitor",
    "OutboxStatus",
    "Series",
    "StatusProvider",
    "StatusSnapshot",
    "TrapView",
    "WebServer",
    "alert_view",
    "alerts_source",
    "create_app",
    "http_source",
    "mail_source",
    "outbox_status",
    "poller_source",
    "start_web",
    "trap_view",
    "traps_source",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{where}"), name)
