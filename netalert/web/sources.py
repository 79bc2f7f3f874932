"""Metrics sources for the stages' stats objects (read at scrape time).

Each function returns a :data:`~netalert.metrics.Source` closed over a live
stats object; ``service.py`` registers it with
:meth:`Metrics.register_source <netalert.metrics.Metrics.register_source>`.
Nothing is copied: every scrape reads the current counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from netalert.metrics import HistogramCounts, MetricSample, Sample, Source, counter_samples

if TYPE_CHECKING:
    from netalert.alerts.model import Alert
    from netalert.mail.stats import MailStats
    from netalert.snmp.poller import PollerStats
    from netalert.snmp.trapstats import TrapStats

__all__ = ["alerts_source", "mail_source", "poller_source", "traps_source"]


def mail_source(
    stats: MailStats,
    oldest_pending_age: Callable[[], float | None] | None = None,
    pending: Callable[[], int] | None = None,
) -> Source:
    """A source for the mail stage's :class:`~netalert.mail.stats.MailStats`.

    Args:
        stats: The live stats object (read at each scrape, never copied).
        oldest_pending_age: Returns the age in seconds of the oldest waiting
            message, or None when the outbox is empty.
        pending: Returns how many messages wait in the outbox (default: the
            count the sender last noted).
    """

    def read() -> list[Sample]:
        waiting = stats.pending if pending is None else pending()
        out: list[Sample] = [
            MetricSample("netalert_mail_sent_total", stats.sent_total),
            MetricSample("netalert_outbox_pending", waiting),
            MetricSample("netalert_mail_path_healthy", 0 if stats.canary_failing else 1),
        ]
        out += counter_samples("netalert_mail_failed_total", "kind", stats.failed_total)
        if oldest_pending_age is not None:
            age = oldest_pending_age()
            out.append(MetricSample("netalert_mail_oldest_pending_seconds", age or 0.0))
        return out

    return read


def poller_source(stats: PollerStats, durations: HistogramCounts | None = None) -> Source:
    """A source for the poller's :class:`~netalert.snmp.poller.PollerStats`."""

    def read() -> list[Sample]:
        out = counter_samples("netalert_polls_total", "result", stats.polls)
        out.append(MetricSample("netalert_poll_overruns_total", stats.overruns))
        out.append(MetricSample("netalert_polls_in_flight", stats.in_flight))
        if durations is not None:
            out.append(durations.sample("netalert_poll_duration_seconds"))
        return out

    return read


def traps_source(stats: TrapStats, kernel_drops: Callable[[], int] | None = None) -> Source:
    """A source for the trap receiver's :class:`~netalert.snmp.trapstats.TrapStats`.

    Args:
        stats: The live stats object.
        kernel_drops: Returns the kernel's drop count summed over the trap sockets.
    """

    def read() -> list[Sample]:
        out = counter_samples("netalert_traps_received_total", "version", stats.received)
        out += counter_samples("netalert_traps_rejected_total", "reason", stats.rejected)
        out.append(MetricSample("netalert_storm_folded_total", stats.storm_folded))
        out.append(MetricSample("netalert_traps_dropped_total", stats.dropped))
        out.append(MetricSample("netalert_trap_reports_limited_total", stats.reports_limited))
        out.append(MetricSample("netalert_traps_shared_source_total", stats.shared_source))
        out.append(MetricSample("netalert_task_failures_total", stats.errors, {"task": "traps"}))
        if kernel_drops is not None:
            out.append(MetricSample("netalert_trap_socket_drops", kernel_drops()))
        return out

    return read


def alerts_source(active: Callable[[], Iterable[Alert]]) -> Source:
    """A source counting firing alerts by severity (``netalert_alerts_active``)."""

    def read() -> list[Sample]:
        counts: dict[str, int] = {}
        for alert in active():
            if alert.state == "firing":
                counts[alert.severity] = counts.get(alert.severity, 0) + 1
        return counter_samples("netalert_alerts_active", "severity", counts)

    return read
