"""Counters of the ack stage, read by /metrics (netalert_ack_*)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from netalert.metrics import MetricSample, Sample, Source, counter_samples

__all__ = ["RESULTS", "AckStats", "ack_source"]

# netalert_ack_replies_total{result}: what became of each message read
RESULTS = (
    "ack",
    "unack",
    "silence",
    "resolve",
    "help",
    "auto_reply",
    "unauthenticated",
    "not_operator",
    "no_token",
    "bad_token",
    "expired_token",
    "replayed",
    "not_applicable",
)


@dataclass(slots=True)
class AckStats:
    """What the reader and the handler did since the start."""

    replies: Counter[str] = field(default_factory=Counter)
    confirmations: Counter[str] = field(default_factory=Counter)
    connections: Counter[str] = field(default_factory=Counter)
    connected: bool = False
    idle: bool = False
    last_error: str = ""
    tokens_issued: int = 0
    pruned: int = 0


def ack_source(stats: AckStats) -> Source:
    """The metrics source of one ack stage."""

    def read() -> list[Sample]:
        out = counter_samples("netalert_ack_replies_total", "result", stats.replies)
        out += counter_samples("netalert_ack_confirmations_total", "result", stats.confirmations)
        out += counter_samples("netalert_ack_imap_connections_total", "result", stats.connections)
        out.append(MetricSample("netalert_ack_imap_connected", 1.0 if stats.connected else 0.0))
        out.append(MetricSample("netalert_ack_tokens_issued_total", stats.tokens_issued))
        return out

    return read
