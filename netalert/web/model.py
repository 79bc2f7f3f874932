"""What the status page and the JSON API show: frozen values and their one source.

The web layer never reaches into the stages. ``service.py`` hands it a
:class:`StatusProvider` whose :meth:`~StatusProvider.snapshot` returns a
:class:`StatusSnapshot`; the page, ``/api/status`` and the other JSON routes
are all renderings of that one value. Strings in it that came from devices
(names in traps, varbinds, error texts) are untrusted: the JSON encoder and
the page's script treat them as text, never as markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "AlertView",
    "ClusterView",
    "DeviceStatus",
    "OutboxStatus",
    "Series",
    "StatusProvider",
    "StatusSnapshot",
    "TrapView",
]


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """One configured device as the poller last saw it.

    ``reachable`` is None until the first poll finished. ``response_ms`` is the
    wall time of the last answered poll, None while the device does not answer
    (a stale time would read as a healthy device). ``last_error`` is the latest failure
    (kept after the device recovers; compare ``last_error_at`` with
    ``last_poll``). ``result`` is the last poll's result (ok, partial, timeout,
    auth, error; "" before the first poll).
    """

    name: str
    address: str
    reachable: bool | None = None
    last_poll: float | None = None
    response_ms: float | None = None
    result: str = ""
    last_error: str = ""
    last_error_at: float | None = None


@dataclass(frozen=True, slots=True)
class AlertView:
    """One pending or firing alert.

    ``since`` is when it fired (pending: when its condition was first true).
    ``muted`` says why no mail goes out for it now ("" when nothing mutes it):
    e.g. ``"silenced: maintenance window (id 3)"`` or ``"inhibited by
    DeviceUnreachable"``.
    """

    fingerprint: str
    rule: str
    severity: str
    device: str
    state: str
    since: float
    value: str
    summary: str
    flapping: bool = False
    muted: str = ""
    count: int = 1
    source: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    ack: str = ""  # [ack] (issue 17): who acknowledged it, when, how, why ("" if nobody)


@dataclass(frozen=True, slots=True)
class TrapView:
    """One received trap or inform (or storm event), newest first in the snapshot.

    ``varbinds`` holds the first few varbinds as ``name = value`` lines;
    ``count`` is how many traps a storm event folded (1 otherwise).
    """

    time: float
    source: str
    device: str
    version: str
    trap: str
    varbinds: tuple[str, ...] = ()
    count: int = 1
    inform: bool = False


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """The mail path: what waits, what failed, and whether mail gets out.

    ``failed`` counts failed delivery attempts since start (all kinds);
    ``rejected`` the messages a server refused for good (5xx). ``healthy`` is
    False once delivery has failed longer than the canary threshold.
    """

    pending: int = 0
    failed: int = 0
    rejected: int = 0
    sent: int = 0
    oldest_pending_age: float | None = None
    last_error: str = ""
    last_error_at: float | None = None
    last_success_at: float | None = None
    healthy: bool = True


@dataclass(frozen=True, slots=True)
class ClusterView:
    """This node of a cluster (``[cluster]`` only): what it sees and holds.

    ``publish_waiting`` counts the traps received here and not yet stored in the
    shared stream (NATS away); ``postgres`` and ``nats`` say whether the node is
    connected to each.
    """

    node: str
    nodes: int
    shards: int
    shards_owned: int
    stream_lag: int
    publish_waiting: int
    postgres: bool
    nats: bool


@dataclass(frozen=True, slots=True)
class Series:
    """Evenly spaced values for a chart: ``values[i]`` covers ``start + i*step``."""

    name: str
    start: float
    step: float
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """Everything the status page shows, at ``generated`` (unix seconds).

    ``alerts_by_severity`` has one :class:`Series` per severity (critical,
    warning, info), aligned with ``traps_per_minute``.
    """

    generated: float
    started: float
    version: str
    devices: tuple[DeviceStatus, ...] = ()
    alerts: tuple[AlertView, ...] = ()
    traps: tuple[TrapView, ...] = ()
    outbox: OutboxStatus = field(default_factory=OutboxStatus)
    traps_per_minute: Series = field(default_factory=lambda: Series("traps", 0.0, 60.0, ()))
    alerts_by_severity: tuple[Series, ...] = ()
    cluster: ClusterView | None = None  # [cluster] only; /api/status leaves it out without


class StatusProvider(Protocol):
    """The one source of the status page (implemented by ``service.py`` or a test)."""

    def snapshot(self, now: float) -> StatusSnapshot:
        """Returns the state of the agent at ``now`` (unix seconds); must not block."""
        ...
