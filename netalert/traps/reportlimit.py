"""A per-source rate limit for the SNMPv3 Reports the receiver sends.

An engine-ID discovery probe is small and unauthenticated, and its Report is
a little larger: a spoofed source could use the receiver to reflect traffic.
Each source gets a token bucket; past it the Report is not sent (the sender
retries, a reflector gets nothing). Memory is bounded: past ``max_sources``
buckets, full ones are forgotten, and if none is, the Report is refused.
"""

from __future__ import annotations

from netalert.traps.storm import TokenBucket

__all__ = ["ReportLimiter"]


class ReportLimiter:
    """``rate`` Reports per second per source, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, *, max_sources: int = 10_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_sources = max_sources
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, source: str, now: float) -> bool:
        """Takes a token for ``source`` at ``now`` (monotonic seconds); False past the limit."""
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                self._buckets = {k: b for k, b in self._buckets.items() if not b.full_at(now)}
                if len(self._buckets) >= self.max_sources:
                    return False
            bucket = self._buckets[source] = TokenBucket(self.rate, self.burst, self.burst, now)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)
