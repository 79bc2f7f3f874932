"""A :class:`StatusProvider` assembled from the live stages' objects.

``service.py`` builds one :class:`LiveStatus` from callables and recorders it
already has (the alert store, the mail stats, the configured devices); the
web layer only ever calls :meth:`LiveStatus.snapshot`. The converters
(:func:`alert_view`, :func:`trap_view`, :func:`outbox_status`) are pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from netalert import version
from netalert.present import value_text
from netalert.web.history import DeviceBoard, History
from netalert.web.model import AlertView, ClusterView, OutboxStatus, StatusSnapshot, TrapView

if TYPE_CHECKING:
    from netalert.alerts.model import Alert
    from netalert.mail.stats import MailStats
    from netalert.snmp.types import TrapEvent, VarBind

__all__ = ["LiveStatus", "alert_view", "format_varbind", "outbox_status", "trap_view"]

# sysUpTime.0 and snmpTrapOID.0 are on every v2 trap and shown in their own columns.
_HEADER_OIDS = frozenset({"1.3.6.1.2.1.1.3.0", "1.3.6.1.6.3.1.1.4.1.0"})
_VARBINDS_SHOWN = 4
_VALUE_CHARS = 120
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def alert_view(alert: Alert, muted: str = "", ack: str = "") -> AlertView:
    """The status-page form of ``alert``; ``muted`` says why no mail goes out ("" if none),
    ``ack`` who acknowledged it ("" if nobody)."""
    if not muted and alert.silenced:
        muted = "inhibited"
    return AlertView(
        fingerprint=alert.fingerprint,
        rule=alert.rule,
        severity=alert.severity,
        device=alert.device,
        state=str(alert.state),
        since=alert.starts_at,
        value=alert.value,
        summary=alert.annotations.get("summary", ""),
        flapping=alert.flapping,
        muted=muted,
        count=alert.count,
        source=alert.source,
        labels=dict(alert.labels),
        ack=ack,
    )


def format_varbind(vb: VarBind) -> str:
    """``ifOperStatus.3 = down(2)``: short name, index, and the value as
    :func:`netalert.present.value_text` writes it, cut at 120 characters."""
    name = vb.name.rpartition("::")[2] if vb.name else vb.oid
    if vb.name and vb.index:
        name = f"{name}.{vb.index}"
    return f"{name} = {value_text(vb.type, vb.value, vb.label, limit=_VALUE_CHARS)}"


def trap_view(event: TrapEvent) -> TrapView:
    """The status-page form of ``event`` with its first varbinds as text."""
    shown = [vb for vb in event.varbinds if vb.oid not in _HEADER_OIDS][:_VARBINDS_SHOWN]
    return TrapView(
        time=event.received,
        source=event.source,
        device=event.device,
        version=event.version,
        trap=event.trap_name or event.trap_oid,
        varbinds=tuple(format_varbind(vb) for vb in shown),
        count=event.storm_count,
        inform=event.inform,
    )


def outbox_status(
    stats: MailStats, oldest_pending_age: float | None = None, pending: int | None = None
) -> OutboxStatus:
    """The status-page form of the mail stage's stats (``pending``: the outbox's own count)."""
    return OutboxStatus(
        pending=stats.pending if pending is None else pending,
        failed=sum(stats.failed_total.values()),
        rejected=stats.failed_total.get("rejected", 0),
        sent=stats.sent_total,
        oldest_pending_age=oldest_pending_age,
        last_error=stats.last_error,
        last_error_at=stats.last_error_at,
        last_success_at=stats.last_success_at,
        healthy=not stats.canary_failing,
    )


class LiveStatus:
    """The agent's :class:`~netalert.web.model.StatusProvider`.

    Args:
        started: When the agent started (unix seconds).
        devices: Returns the configured devices as ``(name, address)``.
        alerts: Returns the active (pending and firing) alerts.
        board: The poll outcomes (fed by the poller's callbacks).
        history: Trap and alert history (fed by the trap receiver and here).
        mail: The mail stage's stats; None when mail is not running.
        oldest_pending_age: Returns the age of the oldest outbox message, or None.
        muted: Returns why ``alert`` gets no mail at ``now`` ("" if it does).
        pending: Returns how many messages wait in the outbox (read from it, not
            from the sender's progress, which stalls while a server stalls).
        firing_counts: Returns the firing alerts per severity, kept current by
            the store; without it :meth:`record_counts` counts ``alerts()``.
    """

    def __init__(
        self,
        *,
        started: float,
        devices: Callable[[], Iterable[tuple[str, str]]],
        alerts: Callable[[], Iterable[Alert]],
        board: DeviceBoard | None = None,
        history: History | None = None,
        mail: MailStats | None = None,
        oldest_pending_age: Callable[[], float | None] | None = None,
        muted: Callable[[Alert, float], str] | None = None,
        pending: Callable[[], int] | None = None,
        firing_counts: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self.started = started
        self.board = board if board is not None else DeviceBoard()
        self.history = history if history is not None else History()
        self.mail = mail
        self._devices = devices
        self._alerts = alerts
        self._oldest = oldest_pending_age
        self._muted = muted
        self._pending = pending
        self._firing_counts = firing_counts
        # [ack] (issue 17): who acknowledged an alert ("" if nobody); set by the agent
        self.acked: Callable[[Alert], str] | None = None
        # [cluster] (issue 16): this node of the cluster; set by the agent
        self.cluster: Callable[[], ClusterView] | None = None

    def record_counts(self, now: float) -> None:
        """Records the firing alerts per severity in the history.

        Call it on every alert transition so the "alerts over time" chart
        follows the store; with ``firing_counts`` it costs O(severities), not a
        walk over every active alert.
        """
        if self._firing_counts is None:
            self.sample_alerts(now)
        else:
            self.history.record_alerts(self._firing_counts(), now)

    def sample_alerts(self, now: float) -> list[Alert]:
        """Records the active alert counts in the history and returns the alerts.

        It runs on every snapshot; on transitions, :meth:`record_counts` is the
        cheaper call.
        """
        active = list(self._alerts())
        counts: dict[str, int] = {}
        for alert in active:
            if alert.state == "firing":
                counts[alert.severity] = counts.get(alert.severity, 0) + 1
        self.history.record_alerts(counts, now)
        return active

    def snapshot(self, now: float) -> StatusSnapshot:
        """Assembles the status at ``now``."""
        active = self.sample_alerts(now)
        acked = self.acked
        views = [
            alert_view(a, self._muted(a, now) if self._muted else "", acked(a) if acked else "")
            for a in active
        ]
        views.sort(
            key=lambda v: (_SEVERITY_ORDER.get(v.severity, 9), v.state != "firing", -v.since)
        )
        traps = tuple(trap_view(e) for e in reversed(self.history.recent_traps))
        outbox = (
            outbox_status(
                self.mail,
                self._oldest() if self._oldest else None,
                self._pending() if self._pending else None,
            )
            if self.mail is not None
            else OutboxStatus()
        )
        return StatusSnapshot(
            generated=now,
            started=self.started,
            version=version(),
            devices=self.board.devices(self._devices()),
            alerts=tuple(views),
            traps=traps,
            outbox=outbox,
            traps_per_minute=self.history.traps_per_minute(now),
            alerts_by_severity=self.history.alerts_by_severity(now),
            cluster=self.cluster() if self.cluster is not None else None,
        )
