"""Connecting the status page and /metrics to the running agent's stages.

:class:`AgentStatus` is created before the stages start (so they can feed its
history from their callbacks) and outlives reloads; :meth:`AgentStatus.attach`
re-registers the metric sources after the stages are (re)built.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from netalert.alerts.model import LABEL_STATS, Alert
from netalert.logs import STATS as LOG_STATS
from netalert.logs import event
from netalert.mail.queue import MailQueue
from netalert.mail.stats import MailStats
from netalert.metrics import HistogramCounts, Metrics, Source
from netalert.notify.dispatcher import Dispatcher
from netalert.poll.poller import PollerStats, PollResult, Reachability
from netalert.rules.trapcache import TRAP_CACHE_STATS
from netalert.snmp.types import TrapEvent
from netalert.traps.stats import TrapStats
from netalert.web.accept import AcceptErrorLog
from netalert.web.limits import HttpLimits, HttpStats
from netalert.web.live import LiveStatus
from netalert.web.sources import (
    alerts_source,
    http_source,
    labels_source,
    limits_source,
    logs_source,
    mail_source,
    poller_source,
    pruned_source,
    trap_cache_source,
    traps_source,
)

if TYPE_CHECKING:
    from netalert.alerts.limits import AlertLimits
    from netalert.web.app import WebServer

__all__ = ["AgentStatus", "descriptors_short"]

log = logging.getLogger(__name__)

# Descriptors the agent needs besides HTTP connections: state, SMTP, trap sockets, imports.
_FD_RESERVE = 64


def descriptors_short(max_connections: int, soft_limit: int) -> bool:
    """True when ``max_connections`` HTTP connections could leave the process
    (``RLIMIT_NOFILE`` soft limit ``soft_limit``, negative for unlimited)
    without descriptors for the rest: then the cap cannot prevent EMFILE."""
    return 0 <= soft_limit < max_connections + _FD_RESERVE


class AgentStatus:
    """The live status provider and metrics registry of one agent process."""

    def __init__(
        self,
        *,
        started: float,
        devices: Callable[[], Iterable[tuple[str, str]]],
        alerts: Callable[[], Sequence[Alert]],
        mib_modules: Callable[[], int] | None = None,
        firing_counts: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self._dispatcher: Dispatcher | None = None
        self._outbox: MailQueue | None = None
        self._alerts = alerts
        self.live = LiveStatus(
            started=started,
            devices=devices,
            alerts=alerts,
            oldest_pending_age=self._oldest_age,
            muted=self._muted,
            pending=self._pending,
            firing_counts=firing_counts,
        )
        self.metrics = Metrics(mib_modules=mib_modules)
        self.metrics.register_source("alerts", alerts_source(alerts))
        self.metrics.register_source("logs", logs_source(LOG_STATS))
        self.metrics.register_source("labels", labels_source(LABEL_STATS))
        self.metrics.register_source("trap_cache", trap_cache_source(TRAP_CACHE_STATS))
        self.http = HttpStats()  # outlives restarts of the server (reloads)
        self.metrics.register_source("http", http_source(self.http))
        self._servers: list[WebServer] = []  # two only while a reload replaces one
        self._accept_log: AcceptErrorLog | None = None
        self._checks: list[Callable[[], Iterable[str]]] = []
        # netalert_poll_duration_seconds: every poll, answered or not; outlives reloads
        self.poll_durations = HistogramCounts()

    def add_health_check(self, check: Callable[[], Iterable[str]]) -> None:
        """Adds a check whose lines (what is wrong) make ``/healthz`` answer 503."""
        self._checks.append(check)

    def problems(self) -> list[str]:
        """Every line the health checks report now."""
        return [line for check in self._checks for line in check()]

    def record_poll(self, result: PollResult) -> None:
        """Takes one poll's outcome: the device board and the poll duration histogram."""
        self.poll_durations.observe(result.duration)
        self.live.board.record_poll(result)

    def record_trap(self, trap: TrapEvent) -> None:
        """Takes one trap for the page's recent-traps list."""
        self.live.history.record_trap(trap)

    def record_reachability(self, change: Reachability) -> None:
        """Takes a device's change between answering and not answering."""
        self.live.board.record_reachability(change)

    def record_counts(self, now: float) -> None:
        """Samples the alert counts for the page's history (after alerts changed)."""
        self.live.record_counts(now)

    def register_source(self, name: str, source: Source) -> None:
        """Adds a metrics source read at each scrape (replacing one of that name)."""
        self.metrics.register_source(name, source)

    def attach(
        self,
        *,
        dispatcher: Dispatcher | None = None,
        outbox: MailQueue | None = None,
        mail: MailStats | None = None,
        poller: PollerStats | None = None,
        traps: TrapStats | None = None,
        kernel_drops: Callable[[], int] | None = None,
        limits: tuple[AlertLimits, Callable[[], Iterable[str]]] | None = None,
        pruned: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        """Points the page and the metrics at the current stages (start and reload).

        ``limits`` is the alert stage's caps with the rule names; ``pruned``
        returns the rows deleted so far, by table.
        """
        if limits is not None:
            self.metrics.register_source("limits", limits_source(*limits))
        if pruned is not None:
            self.metrics.register_source("prune", pruned_source(pruned))
        if dispatcher is not None:
            self._dispatcher = dispatcher
        if outbox is not None:
            self._outbox = outbox
        if mail is not None:
            self.live.mail = mail
            self.metrics.register_source("mail", mail_source(mail, self._oldest_age, self._pending))
        if poller is not None:
            self.metrics.register_source("poller", poller_source(poller, self.poll_durations))
        if traps is not None:
            self.metrics.register_source("traps", traps_source(traps, kernel_drops))

    def _pending(self) -> int:
        return 0 if self._outbox is None else self._outbox.pending()

    def _oldest_age(self) -> float | None:
        if self._outbox is None:
            return None
        created = self._outbox.oldest_created()
        return None if created is None else max(0.0, time.time() - created)

    def _muted(self, alert: Alert, now: float) -> str:
        if self._dispatcher is None:
            return "inhibited by DeviceUnreachable" if alert.silenced else ""
        return self._dispatcher.muted([alert], now).get(alert.fingerprint, "")

    async def serve(
        self,
        host: str,
        port: int,
        limits: HttpLimits | None = None,
        *,
        sock: socket.socket | None = None,
    ) -> WebServer:
        """Starts a web server in the running loop, and rate-limits the loop's
        accept() failure reports (see :mod:`netalert.web.accept`) while it runs.

        ``sock``: a listening socket to serve on instead of binding ``host:port``
        (shared with the server a reload replaces, see :meth:`WebServer.share`).

        Raises:
            OSError: The address cannot be bound.
        """
        # aiohttp only now: an agent without a status page never imports it (its CA
        # store alone is a tenth of a second of CPU)
        from netalert.web.app import create_app, start_web

        limits = limits if limits is not None else HttpLimits.from_config()
        app = create_app(self.live, self.metrics, problems=self.problems)
        server = await start_web(app, host, port, limits=limits, stats=self.http, sock=sock)
        self._servers.append(server)
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if descriptors_short(limits.max_connections, soft):
            log.warning(
                event(
                    "http_max_connections_high",
                    max_connections=limits.max_connections,
                    nofile=soft,
                    fix="raise LimitNOFILE (ulimit -n) or lower [agent].http_max_connections",
                )
            )
        if self._accept_log is not None:
            self._accept_log.uninstall()
        self._accept_log = AcceptErrorLog(self.http, interval=limits.log_interval)
        self._accept_log.install(asyncio.get_running_loop())
        return server

    async def stop(self, server: WebServer | None = None) -> None:
        """Stops ``server`` (every server when None); the last one out puts the loop's
        exception handler back."""
        for running in [server] if server is not None else list(self._servers):
            if running in self._servers:
                self._servers.remove(running)
                await running.stop()
        if not self._servers and self._accept_log is not None:
            self._accept_log.uninstall()
            self._accept_log = None
