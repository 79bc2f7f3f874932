"""Prometheus metrics read from the stages' plain counters at scrape time.

The live stages never call prometheus-client: a trap costs an ``int += 1`` in
the receiver's own stats object, not a labelled-counter lookup with a lock.
Each stage registers a *source*, a callable returning :class:`MetricSample`
and :class:`HistogramSample` values; the :class:`Metrics` collector calls
every source when ``/metrics`` is scraped and turns the samples into the
families declared in :data:`FAMILIES` (names listed in docs/metrics.md, fixed).

Wiring, in ``service.py`` (the adapters are in :mod:`netalert.web.sources`)::

    metrics = Metrics(mib_modules=lambda: len(tree.modules))
    metrics.register_source("mail", mail_source(stage.stats, outbox_oldest_age))
    metrics.register_source("alerts", alerts_source(store.active))
    body, content_type = metrics.render()

A source registered again under the same name replaces the old one, so a
reload that builds new stage objects just registers them again.
"""

from __future__ import annotations

import bisect
import logging
import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from netalert import version
from netalert.logs import event

if TYPE_CHECKING:  # imported where a registry is made: every stage imports this module
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector, CollectorRegistry

__all__ = [
    "FAMILIES",
    "POLL_DURATION_BUCKETS",
    "Family",
    "HistogramCounts",
    "HistogramSample",
    "MetricSample",
    "Metrics",
    "Sample",
    "Source",
    "counter_samples",
]

log = logging.getLogger(__name__)

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One value of a declared counter or gauge family.

    ``labels`` must name exactly the family's label names. Samples of the same
    family and label values coming from several sources are added up (two trap
    listeners, two outboxes).
    """

    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HistogramSample:
    """A whole histogram: cumulative counts per upper bound, ``+Inf`` last."""

    name: str
    buckets: tuple[tuple[float, int], ...]
    sum: float
    labels: Mapping[str, str] = field(default_factory=dict)


Sample = MetricSample | HistogramSample
Source = Callable[[], Iterable[Sample]]


@dataclass(frozen=True, slots=True)
class Family:
    """A declared metric: its type, help text, label names and preset label values.

    ``preset`` lists label values exported as 0 until a source reports them, so
    ``rate()`` and alerting rules work from the first scrape (single-label
    families only).
    """

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    preset: tuple[str, ...] = ()


# Answers the native poll client could not take as they were, by why: an error status;
# tooBig (asked again smaller); a walk's OIDs not increasing; a GETBULK answer that
# advanced no column; a GET answered with more or fewer values, or values of other OIDs
# than asked; noSuchObject/noSuchInstance in a walk (that instance left out).
NATIVE_ANSWER_FAULTS = (
    "error_status",
    "too_big",
    "not_increasing",
    "no_progress",
    "wrong_count",
    "wrong_oids",
    "exception_in_walk",
)
_MAIL_KINDS = ("auth", "tls", "timeout", "connection", "temporary", "rejected", "other")
# supervised tasks and stage callbacks (netalert.supervise), exported from the first scrape
_TASKS = ("ticker", "mail-sender", "mail-canary", "watchdog", "confirm", "traps", "poller")
_REJECT_REASONS = (
    "bad_community",
    "unknown_user",
    "bad_digest",
    "not_allowed",
    "malformed",
    "not_in_time_window",  # a replayed SNMPv3 trap: worth alerting on from the first scrape
    "bad_security_level",  # a v3 user below (or above) its configured level: a downgrade
    "unknown_engine_id",
    "too_large",
    "too_many_varbinds",
)

FAMILIES: Mapping[str, Family] = {
    f.name: f
    for f in (
        # docs/metrics.md: names and labels are a user-facing contract.
        Family(
            "netalert_traps_received_total",
            "counter",
            "Traps and informs accepted, by SNMP version.",
            ("version",),
            ("1", "2c", "3"),
        ),
        Family(
            "netalert_traps_rejected_total",
            "counter",
            "Messages refused by the trap receiver, by reason.",
            ("reason",),
            _REJECT_REASONS,
        ),
        Family(
            "netalert_polls_total",
            "counter",
            "Device polls finished, by result (ok, partial, timeout, auth, error).",
            ("result",),
            ("ok", "partial", "timeout", "auth", "error"),
        ),
        Family(
            "netalert_alerts_active",
            "gauge",
            "Firing alerts, by severity (pending ones are not counted).",
            ("severity",),
            ("critical", "warning", "info"),
        ),
        Family("netalert_mail_sent_total", "counter", "Recipients accepted by an SMTP server."),
        Family(
            "netalert_mail_failed_total",
            "counter",
            "Failed delivery attempts, by kind.",
            ("kind",),
            _MAIL_KINDS,
        ),
        Family("netalert_outbox_pending", "gauge", "Messages waiting in the outbox."),
        # Extras.
        Family(
            "netalert_trap_socket_drops",
            "gauge",
            "Datagrams the kernel dropped on the trap sockets (/proc/net/udp; resets on reopen).",
        ),
        Family(
            "netalert_traps_dropped_total",
            "counter",
            "Accepted traps lost inside the agent (queue full, too many storm folds).",
        ),
        Family(
            "netalert_trap_reports_limited_total",
            "counter",
            "SNMPv3 discovery Reports not sent: past [traps].report_rate for their source.",
        ),
        Family(
            "netalert_traps_shared_source_total",
            "counter",
            "Traps from an address two devices share, credited to the first of them.",
        ),
        Family(
            "netalert_traps_v3_fast_total",
            "counter",
            "SNMPv3 traps and informs accepted by the receiver's fast path (not pysnmp's engine).",
        ),
        Family(
            "netalert_traps_recorded_total",
            "counter",
            "Datagrams written to the [traps] record file (accepted and refused alike).",
        ),
        Family(
            "netalert_trap_record_rotations_total",
            "counter",
            "Times the [traps] record file reached record_max_bytes and was rotated.",
        ),
        Family(
            "netalert_trap_record_errors_total",
            "counter",
            "Recording failures (the file could not be written); the traps are unaffected.",
        ),
        Family(
            "netalert_trap_record_shed_total",
            "counter",
            "Datagrams not recorded: a trap worker held worker_queue of them (or "
            "worker_queue_bytes) for the agent.",
        ),
        Family(
            "netalert_trap_worker_queue_full_total",
            "counter",
            "Traps a trap worker dropped because it held worker_queue events or "
            "worker_queue_bytes for the agent, by the bound reached (also in "
            "netalert_traps_dropped_total).",
            ("bound",),
            ("events", "bytes"),
        ),
        Family(
            "netalert_storm_folded_total",
            "counter",
            "Traps folded into storm events instead of becoming an event each.",
        ),
        Family(
            "netalert_trap_storm_keys",
            "gauge",
            "Storm folds open now, one per source and trap OID ([traps].storm_max_keys at most).",
        ),
        Family(
            "netalert_trap_workers",
            "gauge",
            "Trap worker processes running ([traps] workers; 0: the agent receives traps itself).",
        ),
        Family(
            "netalert_trap_worker_restarts_total",
            "counter",
            "Trap workers that exited and were started again on the same socket.",
        ),
        Family(
            "netalert_trap_worker_restart_delay_seconds",
            "gauge",
            "Seconds the next restart of the trap worker with the longest back-off waits "
            "(0.2, doubling while it keeps exiting within a minute; [traps] worker_restart_max).",
        ),
        Family(
            "netalert_trap_worker_refused_total",
            "counter",
            "Frames from a trap worker the agent refused as malformed; the worker was restarted.",
        ),
        Family(
            "netalert_trap_worker_stalls_total",
            "counter",
            "Trap workers silent for [traps].worker_stall_timeout; each was killed and restarted.",
        ),
        Family(
            "netalert_trap_varbind_cache_evictions_total",
            "counter",
            "Varbinds (and runs of varbinds) dropped from the v2c fast path's tables of"
            " decoded and named varbinds, each emptied when it holds"
            " [traps] varbind_cache_entries.",
        ),
        Family(
            "netalert_trap_name_cache_evictions_total",
            "counter",
            "OIDs dropped from the trap receiver's table of OIDs named through the MIB,"
            " emptied when it holds [traps] name_cache_entries.",
        ),
        Family(
            "netalert_trap_storm_shed_total",
            "counter",
            "Traps neither passed nor folded: storm_max_keys folds were open (also in dropped).",
        ),
        Family(
            "netalert_poll_duration_seconds",
            "histogram",
            "Wall time of one device poll.",
        ),
        Family(
            "netalert_poll_overruns_total",
            "counter",
            "Polls that came due while the previous poll of the device still ran.",
        ),
        Family(
            "netalert_polls_missed_total",
            "counter",
            "Scheduled polls that never ran: not started before the next one came due.",
        ),
        Family(
            "netalert_poll_lateness_seconds",
            "histogram",
            "How late each scheduled poll's request started after its due time.",
        ),
        Family("netalert_polls_in_flight", "gauge", "Polls running now."),
        Family(
            "netalert_poll_sessions",
            "gauge",
            "gufo sessions open now (one UDP socket each); native targets known (no socket).",
        ),
        Family(
            "netalert_poll_sessions_max",
            "gauge",
            "The cap on open sessions: [snmp].max_sessions, at most the descriptor limit "
            "less a reserve.",
        ),
        Family(
            "netalert_poll_session_evictions_total",
            "counter",
            "Sessions dropped for the cap or to free descriptors (reopened at the next poll).",
        ),
        Family(
            "netalert_poll_datagrams_dropped_total",
            "counter",
            "Datagrams the native backend's shared sockets dropped: malformed, spoofed (from "
            "another address than asked) or stray (no request waits for them).",
            ("reason",),
            ("malformed", "spoofed", "stray"),
        ),
        Family(
            "netalert_poll_answer_faults_total",
            "counter",
            "Answers the native backend could not take as they were: an error status, "
            "tooBig (asked again smaller), OIDs not increasing, no progress, a GET's values "
            "not those asked, exception values in a walk; and the gufo backend's decoder "
            "panics.",
            ("reason",),
            (*NATIVE_ANSWER_FAULTS, "decoder_panic"),  # decoder_panic: the gufo client
        ),
        Family(
            "netalert_poll_descriptors_exhausted_total",
            "counter",
            "Polls failed because no descriptor was left for a new session.",
        ),
        Family(
            "netalert_mail_oldest_pending_seconds",
            "gauge",
            "Age of the oldest message waiting in the outbox (0 when empty).",
        ),
        Family(
            "netalert_mail_path_healthy",
            "gauge",
            "1 while mail is delivered, 0 once it has failed longer than the canary threshold.",
        ),
        Family(
            "netalert_mail_alerts_truncated_total",
            "counter",
            "Alerts of mailed groups not listed in full ([limits].max_alerts_per_mail, "
            "max_mail_bytes); each mail counts them.",
        ),
        Family(
            "netalert_mail_clipped_total",
            "counter",
            "Mails whose values, varbinds or alerts were cut to fit [limits].max_mail_bytes.",
        ),
        Family(
            "netalert_mail_rendered_total",
            "counter",
            "Notification mails rendered, on the event loop (groups of at most"
            " [agent].mail_render_on_loop_max_alerts alerts) or in a worker thread.",
            ("where",),
            ("loop", "thread"),
        ),
        Family("netalert_mib_modules_loaded", "gauge", "MIB modules loaded into the tree."),
        Family(
            "netalert_build_info",
            "gauge",
            "Always 1; the labels carry the netalert and Python versions.",
            ("version", "python"),
        ),
        Family(
            "netalert_log_lines_truncated_total",
            "counter",
            "Log lines whose longest values were cut to fit [agent] log_line_max.",
        ),
        Family(
            "netalert_label_values_cut_total",
            "counter",
            "Alert labels and values made from device text that were cut to"
            " [limits] max_label_chars (each time one is cut).",
        ),
        Family(
            "netalert_trap_cache_evictions_total",
            "counter",
            "Entries dropped from the trap rules' caches past [limits] trap_cache_entries,"
            " by cache (matches: the rules a trap OID matches; index: decoded varbind"
            " indexes; labels: alert labels and keys).",
            ("cache",),
            ("matches", "index", "labels"),
        ),
        Family(
            "netalert_alerts_suppressed_total",
            "counter",
            "Alerts not made because a [limits] cap was reached, by rule (counted once per key"
            " while the rule's summary alert fires).",
            ("rule",),
        ),
        Family(
            "netalert_alerts_cap_used",
            "gauge",
            "Active (pending or firing) alerts counted against the [limits] caps, by rule.",
            ("rule",),
        ),
        Family(
            "netalert_alerts_cap",
            "gauge",
            "The [limits] alert caps: max_active_alerts (scope total) and"
            " max_active_alerts_per_rule (scope per_rule).",
            ("scope",),
        ),
        # [ack] (issue 17): replies to alert mails, read over IMAP
        Family(
            "netalert_ack_replies_total",
            "counter",
            "Replies read from the [ack] mailbox, by result: the command applied, or why the"
            " reply was refused (never answered).",
            ("result",),
            ("ack", "auto_reply", "not_operator", "bad_token", "expired_token", "replayed"),
        ),
        Family(
            "netalert_ack_confirmations_total",
            "counter",
            "Confirmations of accepted replies: queued, or not sent (rate_limited).",
            ("result",),
            ("queued", "rate_limited"),
        ),
        Family(
            "netalert_ack_imap_connections_total",
            "counter",
            "IMAP sessions of the [ack] reader: ok (logged in, folder selected) or failed.",
            ("result",),
            ("ok", "failed"),
        ),
        Family(
            "netalert_ack_imap_connected",
            "gauge",
            "1 while the [ack] reader has a working IMAP session.",
        ),
        Family(
            "netalert_ack_tokens_issued_total",
            "counter",
            "Alert mails signed with a reply token.",
        ),
        Family(
            "netalert_pruned_rows_total",
            "counter",
            "Rows deleted by the clean-up, by table: resolved alerts, notification log"
            " entries and mail thread roots past [limits] retention.",
            ("table",),
            ("alerts", "nflog", "mail_threads"),
        ),
        Family(
            "netalert_loop_lag_seconds",
            "gauge",
            "Largest event-loop lag seen in the health window (/healthz).",
        ),
        Family(
            "netalert_state_checkpoints_total",
            "counter",
            "WAL checkpoints that copied pages into the state database, in a worker thread.",
        ),
        Family(
            "netalert_state_checkpoint_failures_total",
            "counter",
            "WAL checkpoints that failed (logged); the log grows until one succeeds.",
        ),
        Family(
            "netalert_state_wal_pages",
            "gauge",
            "Pages in the state database's write-ahead log at the last checkpoint "
            "([agent].wal_max_pages at most before the event loop checkpoints itself).",
        ),
        Family(
            "netalert_gc_pause_seconds",
            "histogram",
            "Pauses of the cyclic garbage collector (the event loop waits for each).",
        ),
        Family(
            "netalert_gc_frozen_objects",
            "gauge",
            "Objects frozen out of the collector's sight ([agent].gc_freeze_interval).",
        ),
        Family("netalert_http_connections", "gauge", "Open connections to the HTTP server."),
        Family(
            "netalert_http_max_connections",
            "gauge",
            "[agent].http_max_connections: open connections past which a new one gets 503.",
        ),
        Family(
            "netalert_http_connections_refused_total",
            "counter",
            "Connections answered 503 and closed at once: http_max_connections were open.",
        ),
        Family(
            "netalert_http_timeouts_total",
            "counter",
            "HTTP connections aborted at a deadline, by phase (header, body, idle).",
            ("phase",),
            ("header", "body", "idle"),
        ),
        Family(
            "netalert_http_accept_errors_total",
            "counter",
            "accept() failures on the HTTP port for want of resources (EMFILE: no descriptors).",
        ),
        Family(
            "netalert_http_clients_gone_total",
            "counter",
            "Answers not written: the client had closed its connection before them.",
        ),
        Family(
            "netalert_reloads_total",
            "counter",
            "Config reloads (SIGHUP), by result: ok, or rejected (the old config kept running).",
            ("result",),
            ("ok", "rejected"),
        ),
        Family(
            "netalert_task_failures_total",
            "counter",
            "Failures of background tasks and stage callbacks, by task (each is retried).",
            ("task",),
            _TASKS,
        ),
        Family(
            "netalert_state_writable",
            "gauge",
            "1 while the state database takes writes, 0 while writes are held in memory.",
        ),
        Family(
            "netalert_state_writes_held",
            "gauge",
            "State writes waiting in memory for the database (bound: [agent].state_hold_max).",
        ),
        Family(
            "netalert_state_writes_shed_total",
            "counter",
            "Held state writes dropped, oldest first, past [agent].state_hold_max.",
        ),
        Family(
            "netalert_state_write_failures_total",
            "counter",
            "Failed attempts to commit a state write (each held write is retried).",
        ),
        # [cluster] only (docs/cluster.md): left out of the exposition without it
        Family("netalert_cluster_nodes", "gauge", "Live cluster nodes this node sees."),
        Family("netalert_shards_owned", "gauge", "Shards this node holds a lease on."),
        Family(
            "netalert_lease_lost_total",
            "counter",
            "Shard leases this node lost without releasing them (expired or taken over).",
        ),
        Family(
            "netalert_stream_lag",
            "gauge",
            "Traps waiting on the JetStream subjects of this node's shards.",
        ),
        Family(
            "netalert_cluster_publish_waiting",
            "gauge",
            "Traps received by this node and not yet stored in the trap stream.",
        ),
        Family(
            "netalert_cluster_traps_refused_total",
            "counter",
            "Traps the trap stream refused (stream_max_messages or stream_max_bytes reached).",
        ),
        Family(
            "netalert_cluster_traps_rejected_total",
            "counter",
            "Trap messages taken from the stream and terminated, never processed, by reason.",
            ("reason",),
        ),
        Family(
            "netalert_cluster_traps_redelivered_total",
            "counter",
            "Traps this node processed that had been delivered before (not acknowledged "
            "within ack_wait).",
        ),
        Family(
            "netalert_cluster_traps_handed_back_total",
            "counter",
            "Traps this node fetched and gave back unhandled because its lease of the "
            "shard had lapsed or the shard was lost meanwhile; the shard's owner gets them.",
        ),
        Family(
            "netalert_cluster_usm_engines",
            "gauge",
            "SNMPv3 sender engines whose clock (boots, time) this node knows, its own "
            "traps' and the other nodes'.",
        ),
        Family(
            "netalert_cluster_usm_written_total",
            "counter",
            "SNMPv3 sender clocks and learned engine IDs this node wrote for the other nodes.",
        ),
        Family(
            "netalert_cluster_usm_adopted_total",
            "counter",
            "SNMPv3 sender clocks and engine IDs this node took from the other nodes.",
        ),
        Family(
            "netalert_cluster_usm_sync_failures_total",
            "counter",
            "Failed syncs of the shared SNMPv3 state (PostgreSQL away); tried again at the next.",
        ),
        Family(
            "netalert_cluster_state_commits_total",
            "counter",
            "Transactions that wrote a loop turn's alerts and mails to PostgreSQL.",
        ),
        Family(
            "netalert_cluster_state_refused_total",
            "counter",
            "State transactions refused because a shard's lease moved on (fencing).",
        ),
        Family(
            "netalert_cluster_state_dropped_total",
            "counter",
            "Alert changes and mails dropped unwritten with a shard this node lost.",
        ),
        Family(
            "netalert_cluster_state_failures_total",
            "counter",
            "Failed attempts to write the state to PostgreSQL (held, tried again).",
        ),
        Family(
            "netalert_cluster_state_held",
            "gauge",
            "Alert changes and mails waiting in memory to be written to PostgreSQL.",
        ),
        Family(
            "netalert_cluster_silence_reads_total",
            "counter",
            "Reads of the shared silences from PostgreSQL (every [cluster] silence_refresh).",
        ),
        Family(
            "netalert_cluster_silence_read_failures_total",
            "counter",
            "Failed reads of the shared silences (the last copy read stays in force).",
        ),
        Family(
            "netalert_cluster_ack_mailbox_held",
            "gauge",
            "1 while this node holds the cluster's [ack] mailbox lock (reads the replies).",
        ),
        Family(
            "netalert_cluster_pruned_rows_total",
            "counter",
            "Rows this node deleted from PostgreSQL past [cluster] retention, by table: sent"
            " mails, notification-log rows of groups told resolved, thread roots.",
            ("table",),  # no preset: no value without [cluster]
        ),
    )
}

# Polls over loopback take milliseconds; over a WAN with retries, seconds.
POLL_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class HistogramCounts:
    """A histogram a stage owns and feeds with plain ints (no locks, no labels).

    Args:
        bounds: Upper bounds of the buckets, ascending; ``+Inf`` is implicit.
    """

    __slots__ = ("_bounds", "_counts", "count", "sum")

    def __init__(self, bounds: Iterable[float] = POLL_DURATION_BUCKETS) -> None:
        self._bounds = tuple(sorted(bounds))
        self._counts = [0] * (len(self._bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Counts one observation."""
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self.count += 1
        self.sum += value

    def quantile(self, q: float) -> float:
        """The upper bound of the bucket holding quantile ``q`` (0..1) of the observations
        (0.0 with none; ``inf`` when it lies past the last bound)."""
        if not self.count:
            return 0.0
        wanted, running = q * self.count, 0
        for bound, n in zip((*self._bounds, float("inf")), self._counts, strict=True):
            running += n
            if running >= wanted:
                return bound
        return float("inf")

    def sample(self, name: str, labels: Mapping[str, str] | None = None) -> HistogramSample:
        """Returns the cumulative buckets as a :class:`HistogramSample` named ``name``."""
        running = 0
        buckets: list[tuple[float, int]] = []
        for bound, n in zip((*self._bounds, float("inf")), self._counts, strict=True):
            running += n
            buckets.append((bound, running))
        return HistogramSample(name, tuple(buckets), self.sum, dict(labels or {}))


def _collector(owner: Metrics) -> Collector:
    from prometheus_client.registry import Collector

    class _Collector(Collector):
        def collect(self) -> Iterator[Metric]:
            return iter(owner.families())

    return _Collector()


class Metrics:
    """The agent's own registry and the sources it reads at scrape time.

    Args:
        families: The declared families (tests may pass their own).
        mib_modules: Returns how many MIB modules are loaded (``None`` leaves it out).
    """

    def __init__(
        self,
        *,
        families: Mapping[str, Family] = FAMILIES,
        mib_modules: Callable[[], int] | None = None,
    ) -> None:
        self.families_declared = dict(families)
        self._registry: CollectorRegistry | None = None  # at the first scrape (see render)
        self._sources: dict[str, Source] = {}
        self._warned: set[str] = set()
        self.register_source("build", _build_info)
        if mib_modules is not None:
            count = mib_modules
            self.register_source(
                "mib", lambda: [MetricSample("netalert_mib_modules_loaded", count())]
            )

    def register_source(self, name: str, source: Source) -> None:
        """Adds ``source`` under ``name``, replacing a source of that name."""
        self._sources[name] = source

    def unregister_source(self, name: str) -> None:
        """Removes the source ``name`` (no error if there is none)."""
        self._sources.pop(name, None)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """Returns the exposition and its content type.

        Args:
            accept: The scraper's ``Accept`` header: OpenMetrics when it asks for
                it, else the Prometheus text format 0.0.4.
        """
        # prometheus_client only now (40 ms of CPU): an agent nobody scrapes, or without a
        # status page, never imports it
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import choose_encoder

        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(_collector(self))
        encoder, content_type = choose_encoder(accept)
        return encoder(self._registry), content_type

    def families(self) -> list[Metric]:
        """Calls every source and builds the metric families (the collector's work).

        A source that raises is logged (once per source until it recovers) and
        left out of this scrape; the others are still exported.
        """
        values: dict[str, dict[tuple[str, ...], float]] = {n: {} for n in self.families_declared}
        histograms: dict[str, dict[tuple[str, ...], HistogramSample]] = {}
        for source_name, source in list(self._sources.items()):
            try:
                samples = list(source())
            except Exception:
                self._warn(f"source:{source_name}", f"metrics source {source_name!r} failed")
                continue
            self._warned.discard(f"source:{source_name}")
            for s in samples:
                family = self.families_declared.get(s.name)
                if family is None:
                    self._warn(f"name:{s.name}", f"metric {s.name} is not declared")
                    continue
                key = self._key(family, s)
                if key is None:
                    continue
                if isinstance(s, HistogramSample):
                    histograms.setdefault(s.name, {})[key] = s
                else:
                    bucket = values[s.name]
                    bucket[key] = bucket.get(key, 0.0) + float(s.value)
        return [
            self._family(f, values[f.name], histograms.get(f.name, {}))
            for f in self.families_declared.values()
        ]

    def _key(self, family: Family, s: Sample) -> tuple[str, ...] | None:
        if set(s.labels) != set(family.labels) or (
            isinstance(s, HistogramSample) != (family.kind == "histogram")
        ):
            self._warn(f"shape:{s.name}", f"metric {s.name}: sample {s!r} does not fit its family")
            return None
        return tuple(str(s.labels[n]) for n in family.labels)

    def _warn(self, key: str, problem: str) -> None:
        # Scrapes come every few seconds: say it once, not on every scrape.
        if key not in self._warned:
            self._warned.add(key)
            log.warning(
                event("metrics_problem", problem=problem), exc_info=key.startswith("source:")
            )

    @staticmethod
    def _family(
        f: Family,
        values: dict[tuple[str, ...], float],
        histograms: dict[tuple[str, ...], HistogramSample],
    ) -> Metric:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        if f.kind == "histogram":
            hist = HistogramMetricFamily(f.name, f.help, labels=f.labels)
            for key, h in sorted(histograms.items()):
                buckets = [("+Inf" if b == float("inf") else repr(b), n) for b, n in h.buckets]
                hist.add_metric(list(key), buckets, h.sum)
            return hist
        for preset in f.preset:
            values.setdefault((preset,), 0.0)
        metric: CounterMetricFamily | GaugeMetricFamily
        if f.kind == "counter":
            metric = CounterMetricFamily(f.name, f.help, labels=f.labels)
        else:
            metric = GaugeMetricFamily(f.name, f.help, labels=f.labels)
        if not f.labels and not values:
            # A scalar nobody reported (stage not running): leave it out rather
            # than claim 0 pending messages or 0 sent.
            return metric
        for key, value in sorted(values.items()):
            metric.add_metric(list(key), value)
        return metric


def _build_info() -> list[Sample]:
    labels = {"version": version(), "python": platform.python_version()}
    return [MetricSample("netalert_build_info", 1, labels)]


def counter_samples(name: str, label: str, counts: Mapping[str, int]) -> list[Sample]:
    """Turns ``{"2c": 10, "3": 1}`` into samples of ``name`` labelled ``label``."""
    return [MetricSample(name, n, {label: key}) for key, n in counts.items()]
