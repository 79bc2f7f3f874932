"""The status page, ``/metrics``, ``/healthz`` and the read-only JSON API.

``service.py`` builds a :class:`LiveStatus` (or any :class:`StatusProvider`),
passes it with the :class:`~netalert.metrics.Metrics` registry to
:func:`create_app`, and serves the app with :func:`start_web` in the agent's
event loop.
"""

from netalert.web.accept import AcceptErrorLog
from netalert.web.app import WebServer, create_app, start_web
from netalert.web.guard import ConnectionGuard, HttpLimits, HttpStats
from netalert.web.health import LoopMonitor
from netalert.web.history import DeviceBoard, History
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
