"""Metrics sources for the stages' stats objects (read at scrape time).

Each function returns a :data:`~netalert.metrics.Source` closed over a live
stats object; ``service.py`` registers it with
:meth:`Metrics.register_source <netalert.metrics.Metrics.register_source>`.
Nothing is copied: every scrape reads the current counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from netalert.metrics import HistogramCounts, MetricSample, Sample, Source, counter_samples

if TYPE_CHECKING:
    from netalert.alerts.limits import AlertLimits
    from netalert.alerts.model import Alert, LabelStats
    from netalert.logs import LogStats
    from netalert.mail.stats import MailStats
    from netalert.poll.poller import PollerStats
    from netalert.rules.trapcache import TrapCacheStats
    from netalert.traps.stats import TrapStats
    from netalert.web.guard import HttpStats

__all__ = [
    "alerts_source",
    "http_source",
    "labels_source",
    "limits_source",
    "logs_source",
    "mail_source",
    "poller_source",
    "pruned_source",
    "trap_cache_source",
    "traps_source",
]


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
            MetricSample("netalert_mail_alerts_truncated_total", stats.alerts_truncated),
            MetricSample("netalert_mail_clipped_total", stats.clipped),
        ]
        out += counter_samples("netalert_mail_failed_total", "kind", stats.failed_total)
        out += counter_samples("netalert_mail_rendered_total", "where", stats.rendered)
        if oldest_pending_age is not None:
            age = oldest_pending_age()
            out.append(MetricSample("netalert_mail_oldest_pending_seconds", age or 0.0))
        return out

    return read


def poller_source(stats: PollerStats, durations: HistogramCounts | None = None) -> Source:
    """A source for the poller's :class:`~netalert.poll.poller.PollerStats`."""

    def read() -> list[Sample]:
        out = counter_samples("netalert_polls_total", "result", stats.polls)
        out.append(MetricSample("netalert_poll_overruns_total", stats.overruns))
        out.append(MetricSample("netalert_polls_missed_total", stats.missed))
        out.append(stats.lateness.sample("netalert_poll_lateness_seconds"))
        out.append(MetricSample("netalert_polls_in_flight", stats.in_flight))
        if stats.sessions:
            kept = [s for _, s in stats.sessions]
            out.append(MetricSample("netalert_poll_sessions", sum(s.open for s in kept)))
            out.append(
                MetricSample("netalert_poll_sessions_max", sum(cap for cap, _ in stats.sessions))
            )
            out.append(
                MetricSample("netalert_poll_session_evictions_total", sum(s.evicted for s in kept))
            )
            out.append(
                MetricSample(
                    "netalert_poll_descriptors_exhausted_total", sum(s.exhausted for s in kept)
                )
            )
        if stats.datagrams:
            dropped = {
                reason: sum(getattr(d, reason) for d in stats.datagrams)
                for reason in ("malformed", "spoofed", "stray")
            }
            out += counter_samples("netalert_poll_datagrams_dropped_total", "reason", dropped)
        if stats.faults:
            reasons = dict.fromkeys(reason for counts in stats.faults for reason in counts)
            faults = {
                reason: sum(counts.get(reason, 0) for counts in stats.faults) for reason in reasons
            }
            out += counter_samples("netalert_poll_answer_faults_total", "reason", faults)
        if durations is not None:
            out.append(durations.sample("netalert_poll_duration_seconds"))
        return out

    return read


def traps_source(stats: TrapStats, kernel_drops: Callable[[], int] | None = None) -> Source:
    """A source for the trap receiver's :class:`~netalert.traps.stats.TrapStats`.

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
        out.append(MetricSample("netalert_traps_v3_fast_total", stats.v3_fast))
        out.append(MetricSample("netalert_trap_storm_keys", stats.storm_keys))
        out.append(MetricSample("netalert_trap_storm_shed_total", stats.storm_shed))
        out.append(
            MetricSample(
                "netalert_trap_varbind_cache_evictions_total", stats.varbind_cache_evictions
            )
        )
        out.append(
            MetricSample("netalert_trap_name_cache_evictions_total", stats.name_cache_evictions)
        )
        out.append(MetricSample("netalert_traps_recorded_total", stats.record.recorded))
        out.append(MetricSample("netalert_trap_record_rotations_total", stats.record.rotations))
        out.append(MetricSample("netalert_trap_record_errors_total", stats.record.errors))
        out.append(MetricSample("netalert_trap_record_shed_total", stats.record_shed))
        out += counter_samples(
            "netalert_trap_worker_queue_full_total",
            "bound",
            {"events": stats.queue_full_events, "bytes": stats.queue_full_bytes},
        )
        out.append(MetricSample("netalert_task_failures_total", stats.errors, {"task": "traps"}))
        out.append(MetricSample("netalert_trap_workers", stats.workers))
        out.append(MetricSample("netalert_trap_worker_restarts_total", stats.worker_restarts))
        out.append(
            MetricSample("netalert_trap_worker_restart_delay_seconds", stats.worker_restart_delay)
        )
        out.append(MetricSample("netalert_trap_worker_refused_total", stats.worker_refused))
        out.append(MetricSample("netalert_trap_worker_stalls_total", stats.worker_stalls))
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


def logs_source(stats: LogStats) -> Source:
    """A source for the log formatters' :class:`~netalert.logs.LogStats`."""

    def read() -> list[Sample]:
        return [MetricSample("netalert_log_lines_truncated_total", stats.lines_cut)]

    return read


def labels_source(stats: LabelStats) -> Source:
    """A source for :func:`~netalert.alerts.model.label_text`'s :class:`LabelStats`."""

    def read() -> list[Sample]:
        return [MetricSample("netalert_label_values_cut_total", stats.cut)]

    return read


def trap_cache_source(stats: TrapCacheStats) -> Source:
    """A source for the trap rules' caches (:mod:`netalert.rules.trapcache`)."""

    def read() -> list[Sample]:
        return counter_samples("netalert_trap_cache_evictions_total", "cache", stats.evicted)

    return read


def http_source(stats: HttpStats) -> Source:
    """A source for the HTTP server's :class:`~netalert.web.guard.HttpStats`."""

    def read() -> list[Sample]:
        out: list[Sample] = [
            MetricSample("netalert_http_connections", stats.open),
            MetricSample("netalert_http_max_connections", stats.max_connections),
            MetricSample("netalert_http_connections_refused_total", stats.refused),
            MetricSample("netalert_http_accept_errors_total", stats.accept_errors),
            MetricSample("netalert_http_clients_gone_total", stats.clients_gone),
        ]
        out += counter_samples("netalert_http_timeouts_total", "phase", stats.timeouts)
        return out

    return read


def limits_source(limits: AlertLimits, rules: Callable[[], Iterable[str]]) -> Source:
    """A source for the alert caps: suppressions per rule, what is used, the caps.

    Args:
        limits: The alert stage's caps and counters.
        rules: Returns the names of the rules in force (their usage is exported, 0 included).
    """

    def read() -> list[Sample]:
        used = dict.fromkeys(rules(), 0) | limits.table.active_by_rule()
        out = counter_samples("netalert_alerts_suppressed_total", "rule", limits.suppressed_total)
        out += counter_samples("netalert_alerts_cap_used", "rule", used)
        out.append(MetricSample("netalert_alerts_cap", limits.caps.total, {"scope": "total"}))
        out.append(MetricSample("netalert_alerts_cap", limits.caps.per_rule, {"scope": "per_rule"}))
        return out

    return read


def pruned_source(rows: Callable[[], Mapping[str, int]]) -> Source:
    """A source for the clean-up: ``rows()`` returns the rows deleted so far, by table."""

    def read() -> list[Sample]:
        return counter_samples("netalert_pruned_rows_total", "table", rows())

    return read
