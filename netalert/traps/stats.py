"""Counters of the trap receiver, read by the metrics layer.

``received[version]`` feeds ``netalert_traps_received_total{version}`` and
``rejected[reason]`` feeds ``netalert_traps_rejected_total{reason}``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from netalert.traps.pcap import RecordStats

__all__ = ["RejectReason", "TrapStats"]


class RejectReason(StrEnum):
    """Why a datagram did not become a trap event (the ``reason`` label)."""

    MALFORMED = "malformed"  # not a well-formed SNMP message, or a trap without snmpTrapOID.0
    BAD_VERSION = "bad_version"  # an SNMP version this receiver does not speak
    NOT_ALLOWED = "not_allowed"  # source outside [traps].allow
    BAD_COMMUNITY = "bad_community"
    UNKNOWN_USER = "unknown_user"  # v3 user not configured
    UNKNOWN_ENGINE_ID = "unknown_engine_id"  # v3 trap from an engine ID no user is keyed for
    BAD_DIGEST = "bad_digest"  # v3 authentication failed (wrong password or forged)
    DECRYPT_ERROR = "decrypt_error"
    NOT_IN_TIME_WINDOW = "not_in_time_window"
    BAD_SECURITY_LEVEL = "bad_security_level"  # e.g. noAuth for a user that has a password
    UNEXPECTED_PDU = "unexpected_pdu"  # a Get/Set/Response sent to the trap port
    TOO_MANY_VARBINDS = "too_many_varbinds"  # more than [traps].max_varbinds
    TOO_LARGE = "too_large"  # a v3 message for the slow path above slow_path_max_bytes


@dataclass(slots=True)
class TrapStats:
    """Counters since start; plain ints, updated on the event loop only."""

    received: Counter[str] = field(default_factory=Counter)  # by version: "1", "2c", "3"
    rejected: Counter[str] = field(default_factory=Counter)  # by RejectReason value
    malformed_detail: Counter[str] = field(default_factory=Counter)  # by decoder reason
    informs_answered: int = 0  # v1/v2c inform Responses sent
    v3_replies: int = 0  # v3 Responses and discovery Reports pysnmp sent
    reports_limited: int = 0  # v3 Reports not sent: past [traps].report_rate for the source
    shared_source: int = 0  # traps from an address two devices share, credited to the first
    v3_fast: int = 0  # v3 traps and informs taken by the fast path (rest of received["3"]: pysnmp)
    storm_folded: int = 0  # traps folded into storm events
    storm_events: int = 0  # storm events emitted
    storm_shed: int = 0  # folds refused because storm_max_keys folds were open (also in dropped)
    storm_keys: int = 0  # folds open now (a gauge, refreshed as traps fold and storms emit)
    dropped: int = 0  # accepted but lost: consumer queue full, or too many storm folds
    datagrams: int = 0
    record: RecordStats = field(default_factory=RecordStats)  # [traps] record
    record_shed: int = 0  # datagrams a trap worker did not pass on to be recorded: agent behind
    queue_full_events: int = 0  # traps a worker dropped: worker_queue events held (in dropped)
    queue_full_bytes: int = 0  # traps a worker dropped: worker_queue_bytes held (in dropped)
    varbind_cache_evictions: int = 0  # varbinds dropped from the v2c fast path's cache
    name_cache_evictions: int = 0  # OIDs dropped from the receiver's naming cache
    errors: int = 0  # datagrams whose handling raised (netalert_task_failures_total{task="traps"})
    workers: int = 0  # trap worker processes running (0: the agent receives itself)
    worker_restarts: int = 0  # trap workers that exited and were started again
    worker_restart_delay: float = 0.0  # seconds the next restart waits (the longest back-off)
    worker_refused: int = 0  # frames from a trap worker the agent refused (it was restarted)
    worker_stalls: int = 0  # trap workers silent past worker_stall_timeout (killed, restarted)

    def reject(self, reason: RejectReason) -> None:
        """Counts one rejected datagram."""
        self.rejected[reason.value] += 1

    def as_dict(self) -> dict[str, object]:
        """A JSON-able copy (for /api and the closing log line)."""
        return {
            "datagrams": self.datagrams,
            "received": dict(self.received),
            "rejected": dict(self.rejected),
            "malformed_detail": dict(self.malformed_detail),
            "informs_answered": self.informs_answered,
            "v3_replies": self.v3_replies,
            "reports_limited": self.reports_limited,
            "shared_source": self.shared_source,
            "v3_fast": self.v3_fast,
            "storm_folded": self.storm_folded,
            "storm_events": self.storm_events,
            "storm_shed": self.storm_shed,
            "storm_keys": self.storm_keys,
            "dropped": self.dropped,
            "recorded": self.record.recorded,
            "record_shed": self.record_shed,
            "queue_full_events": self.queue_full_events,
            "queue_full_bytes": self.queue_full_bytes,
            "varbind_cache_evictions": self.varbind_cache_evictions,
            "name_cache_evictions": self.name_cache_evictions,
            "errors": self.errors,
            "workers": self.workers,
            "worker_restarts": self.worker_restarts,
            "worker_restart_delay": self.worker_restart_delay,
            "worker_refused": self.worker_refused,
            "worker_stalls": self.worker_stalls,
        }
