"""The outbox's values and its pure decisions: an entry, one recipient's result, a refusal;
whether an entry is due or stale, and how long to wait after a failed attempt."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Failure", "OutboxEntry", "RecipientResult", "is_due", "is_stale", "next_backoff"]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One message waiting in the outbox; ``recipients`` are the pending ones."""

    id: int
    message_id: str
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    subject: str
    created: float
    attempts: int
    next_attempt: float
    last_error: str
    stale: bool


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What the server said about one recipient of one attempt.

    ``accepted`` true: delivered. Otherwise ``permanent`` tells whether the
    refusal is final (5xx) or the recipient stays pending (4xx, connection).
    """

    address: str
    accepted: bool
    permanent: bool = False
    code: int | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Failure:
    """A permanent refusal, kept for the status page."""

    at: float
    message_id: str
    subject: str
    address: str
    code: int | None
    error: str


def is_due(entry: OutboxEntry, now: float) -> bool:
    """Whether ``entry`` should be attempted at ``now``."""
    return entry.next_attempt <= now


def is_stale(entry: OutboxEntry, now: float, max_age: float) -> bool:
    """Whether ``entry`` has waited longer than ``max_age`` seconds."""
    return now - entry.created > max_age


def next_backoff(
    attempts: int,
    *,
    cap: float = 60.0,
    base: float = 1.0,
    jitter: float = 0.2,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt.

    Doubles from ``base`` (1 s, 2 s, 4 s...) up to ``cap``, then takes off up
    to ``jitter`` of it at random so a burst does not retry in lockstep. The
    result never exceeds ``cap`` and is at least ``base * (1 - jitter)``.
    """
    exponent = max(0, min(attempts - 1, 62))
    delay = min(cap, base * (2.0**exponent))
    return delay * (1.0 - jitter * rand())
