"""Counters and flags of the mail stage, read by /metrics and the status page.

A plain object the sender updates in the event loop; ``web/`` turns it into
``netalert_mail_sent_total``, ``netalert_mail_failed_total{kind}`` and
``netalert_outbox_pending`` (plus the flags below) when scraped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["MailStats"]


@dataclass
class MailStats:
    """What the mail stage has done and what is wrong with it now.

    Attributes:
        sent_total: Recipients accepted by a server (``netalert_mail_sent_total``).
        failed_total: Failed attempts by kind (``netalert_mail_failed_total{kind}``):
            ``auth``, ``tls``, ``timeout``, ``connection``, ``temporary`` (4xx),
            ``rejected`` (5xx, permanent), ``other``.
        pending: Messages waiting in the outbox (``netalert_outbox_pending``).
        stale: Waiting messages older than ``[smtp].max_age``.
        last_error: The latest failure, one line with server and SMTP reply.
        last_error_at: When it happened (unix seconds).
        last_success_at: When a server last accepted a message.
        failing_since: Start of the current run of failures (None while mail flows).
        auth_failed: The last attempt failed at AUTH (wrong username/password).
        using_fallback: The last connection went to the fallback smarthost.
        canary_failing: The mail path has failed longer than ``canary_threshold``.
        alerts_truncated: Alerts of mailed groups not listed in full because of
            ``[limits].max_alerts_per_mail`` or ``max_mail_bytes``; the mail counts
            them (``netalert_mail_alerts_truncated_total``).
        clipped: Mails whose values, varbinds or alerts were cut to fit
            ``[limits].max_mail_bytes`` (``netalert_mail_clipped_total``).
        rendered: Notification mails rendered, by where: ``loop`` (small groups,
            ``[agent].mail_render_on_loop_max_alerts``) or ``thread``
            (``netalert_mail_rendered_total{where}``).
    """

    sent_total: int = 0
    failed_total: Counter[str] = field(default_factory=Counter)
    pending: int = 0
    stale: int = 0
    last_error: str = ""
    last_error_at: float | None = None
    last_success_at: float | None = None
    failing_since: float | None = None
    auth_failed: bool = False
    using_fallback: bool = False
    canary_failing: bool = False
    alerts_truncated: int = 0
    clipped: int = 0
    rendered: Counter[str] = field(default_factory=Counter)

    def success(self, now: float, count: int = 1) -> None:
        """Records ``count`` accepted recipients."""
        self.sent_total += count
        self.last_success_at = now
        self.failing_since = None
        self.auth_failed = False

    def failure(self, kind: str, error: str, now: float) -> None:
        """Records one failed attempt."""
        self.failed_total[kind] += 1
        self.last_error = error
        self.last_error_at = now
        self.auth_failed = kind == "auth"
        if self.failing_since is None and kind != "rejected":
            # a refused recipient says nothing about the mail path; the rest does
            self.failing_since = now

    def snapshot(self) -> dict[str, object]:
        """A JSON-ready copy for the status page and the JSON API."""
        return {
            "sent_total": self.sent_total,
            "failed_total": dict(self.failed_total),
            "pending": self.pending,
            "stale": self.stale,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_success_at": self.last_success_at,
            "failing_since": self.failing_since,
            "auth_failed": self.auth_failed,
            "using_fallback": self.using_fallback,
            "canary_failing": self.canary_failing,
            "alerts_truncated": self.alerts_truncated,
            "clipped": self.clipped,
        }
