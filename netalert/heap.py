"""The cyclic garbage collector, kept from stalling the event loop.

A full collection walks every object the collector tracks. At start the agent
freezes what it loaded (the MIB tree: hundreds of thousands of objects; see
``service.freeze_heap``), but alerts keep coming: each keeps about 25 tracked
objects, and with 10,000 alerts a full collection took 120 ms of the loop.
So every ``[agent].gc_freeze_interval`` the agent collects what is new since
the last time (a few milliseconds) and freezes the survivors too; the
collector's own full collections then walk only what came since. A frozen
object is still freed when its last reference goes (reference counting); only
a cycle among frozen objects would wait for the next reload (``freeze_heap``
unfreezes first), so the agent's hot paths avoid making cycles. Every
collection's pause is measured: ``netalert_gc_pause_seconds``.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from netalert.metrics import HistogramCounts, MetricSample, Sample, Source

__all__ = ["GC_PAUSE_BUCKETS", "HeapKeeper"]

GC_PAUSE_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class HeapKeeper:
    """Measures every collection and freezes the survivors every ``interval`` seconds.

    Args:
        interval: Seconds between freezes; 0 leaves the collector alone (pauses
            are still measured).
    """

    def __init__(self, *, interval: float) -> None:
        self.interval = interval
        self.pauses = HistogramCounts(GC_PAUSE_BUCKETS)
        self.freezes = 0
        self._began = 0.0
        self._last = time.monotonic()
        self._installed = False

    def install(self) -> None:
        """Starts measuring the collector's pauses (``gc.callbacks``)."""
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True

    def uninstall(self) -> None:
        """Stops measuring."""
        if self._installed:
            gc.callbacks.remove(self._callback)
            self._installed = False

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.observe(time.perf_counter() - self._began)

    def tick(self, now: float | None = None) -> bool:
        """Collects and freezes when ``interval`` has passed (call it from the loop's ticker).

        Returns whether it did.
        """
        now = time.monotonic() if now is None else now
        if self.interval <= 0 or now - self._last < self.interval:
            return False
        self._last = now
        gc.collect()  # walks what is not frozen yet: what came since the last tick
        gc.freeze()
        self.freezes += 1
        return True

    def source(self) -> Source:
        """A metrics source for ``netalert_gc_pause_seconds`` and ``netalert_gc_frozen_objects``."""

        def read() -> list[Sample]:
            return [
                self.pauses.sample("netalert_gc_pause_seconds"),
                MetricSample("netalert_gc_frozen_objects", gc.get_freeze_count()),
            ]

        return read
