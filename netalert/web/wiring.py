"""Connecting the status page and /metrics to the running agent's stages.

:class:`AgentStatus` is created before the stages start (so they can feed its
history from their callbacks) and outlives reloads; :meth:`AgentStatus.attach`
re-registers the metric sources after the stages are (re)built.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from netalert.alerts.model import Alert
from netalert.mail.outbox import Outbox
from netalert.mail.stats import MailStats
from netalert.metrics import Metrics
from netalert.notify.dispatcher import Dispatcher
from netalert.snmp.poller import PollerStats
from netalert.snmp.trapstats import TrapStats
from netalert.web.app import WebServer, create_app, start_web
from netalert.web.live import LiveStatus
from netalert.web.sources import alerts_source, mail_source, poller_source, traps_source

__all__ = ["AgentStatus"]


class AgentStatus:
    """The live status provider and metrics registry of one agent process."""

    def __init__(
        self,
        *,
        started: float,
        devices: Callable[[], Iterable[tuple[str, str]]],
        alerts: Callable[[], Sequence[Alert]],
        mib_modules: Callable[[], int] | None = None,
    ) -> None:
        self._dispatcher: Dispatcher | None = None
        self._outbox: Outbox | None = None
        self._alerts = alerts
        self.live = LiveStatus(
            started=started,
            devices=devices,
            alerts=alerts,
            oldest_pending_age=self._oldest_age,
            muted=self._muted,
            pending=self._pending,
        )
        self.metrics = Metrics(mib_modules=mib_modules)
        self.metrics.register_source("alerts", alerts_source(alerts))
        self.server: WebServer | None = None
        self._checks: list[Callable[[], Iterable[str]]] = []

    def add_health_check(self, check: Callable[[], Iterable[str]]) -> None:
        """Adds a check whose lines (what is wrong) make ``/healthz`` answer 503."""
        self._checks.append(check)

    def problems(self) -> list[str]:
        """Every line the health checks report now."""
        return [line for check in self._checks for line in check()]

    def attach(
        self,
        *,
        dispatcher: Dispatcher | None = None,
        outbox: Outbox | None = None,
        mail: MailStats | None = None,
        poller: PollerStats | None = None,
        traps: TrapStats | None = None,
        kernel_drops: Callable[[], int] | None = None,
    ) -> None:
        """Points the page and the metrics at the current stages (start and reload)."""
        if dispatcher is not None:
            self._dispatcher = dispatcher
        if outbox is not None:
            self._outbox = outbox
        if mail is not None:
            self.live.mail = mail
            self.metrics.register_source("mail", mail_source(mail, self._oldest_age, self._pending))
        if poller is not None:
            self.metrics.register_source("poller", poller_source(poller))
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

    async def serve(self, host: str, port: int) -> WebServer:
        """Starts the web server in the running loop.

        Raises:
            OSError: The address cannot be bound.
        """
        app = create_app(self.live, self.metrics, problems=self.problems)
        self.server = await start_web(app, host, port)
        return self.server

    async def stop(self) -> None:
        """Stops the web server, if running."""
        if self.server is not None:
            await self.server.stop()
            self.server = None
