"""The status page's HTTP bounds and counters, apart from the server that enforces them.

:mod:`netalert.web.guard` enforces these bounds with aiohttp; the stages, a reload's
comparison and /metrics need only the values, and an agent without a status page
(``http = ""``) must not import aiohttp (over 100 ms of CPU at every start).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from netalert.config.models import AgentConfig

__all__ = ["PHASES", "HttpLimits", "HttpStats", "Phase"]

Phase = Literal["header", "body", "idle"]
PHASES: tuple[Phase, ...] = ("header", "body", "idle")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The bounds (seconds and a count) a :class:`~netalert.web.guard.ConnectionGuard` enforces."""

    header_timeout: float
    body_timeout: float
    idle_timeout: float
    max_connections: int
    log_interval: float

    @classmethod
    def from_config(cls, agent: AgentConfig | None = None) -> HttpLimits:
        """The ``[agent] http_*`` bounds (their defaults when ``agent`` is None)."""
        agent = agent if agent is not None else AgentConfig()
        return cls(
            header_timeout=agent.http_header_timeout.total_seconds(),
            body_timeout=agent.http_body_timeout.total_seconds(),
            idle_timeout=agent.http_idle_timeout.total_seconds(),
            max_connections=agent.http_max_connections,
            log_interval=agent.http_log_interval.total_seconds(),
        )

    def timeout(self, phase: Phase) -> float:
        """The deadline, in seconds from its start, of ``phase``."""
        if phase == "header":
            return self.header_timeout
        if phase == "body":
            return self.body_timeout
        return self.idle_timeout


@dataclass(slots=True)
class HttpStats:
    """Plain counters of the HTTP server, read by /metrics (they outlive a restart of it)."""

    open: int = 0
    max_connections: int = 0  # the cap in force (HttpLimits), exported next to ``open``
    refused: int = 0
    timeouts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PHASES, 0))
    accept_errors: int = 0
    clients_gone: int = 0  # answers not written: the client had closed the connection
