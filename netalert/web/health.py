"""Event-loop responsiveness for ``/healthz``.

A small task sleeps ``interval`` seconds again and again and notes how late it
woke up. Something that blocks the loop (a synchronous call, a decode storm
without yields) shows up as lag. ``/healthz`` answers 503 while the largest
lag of the last ``window`` seconds exceeds ``max_lag``, or when the task has
not ticked for longer than ``max_lag`` beyond its interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

from netalert.metrics import MetricSample, Source

__all__ = ["LoopMonitor", "is_healthy"]


def is_healthy(
    lag: float, last_tick: float, now: float, *, interval: float, max_lag: float
) -> bool:
    """True when the measured ``lag`` and the time since ``last_tick`` are within bounds."""
    return lag <= max_lag and now - last_tick <= interval + max_lag


class LoopMonitor:
    """Measures event-loop lag with a periodic task.

    Args:
        interval: Seconds between ticks.
        max_lag: Lag in seconds above which the loop counts as unresponsive.
        window: Seconds over which the largest lag is kept.
        clock: A monotonic clock (tests may pass their own).
    """

    def __init__(
        self,
        *,
        interval: float = 0.25,
        max_lag: float = 1.0,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.max_lag = max_lag
        self._clock = clock
        self._lags: deque[float] = deque(maxlen=max(1, round(window / interval)))
        self._last_tick = clock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts the ticking task on the running loop."""
        self._last_tick = self._clock()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-monitor")

    async def stop(self) -> None:
        """Stops the task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            before = self._clock()
            await asyncio.sleep(self.interval)
            now = self._clock()
            self._lags.append(max(0.0, now - before - self.interval))
            self._last_tick = now

    @property
    def lag(self) -> float:
        """The largest lag seen in the window (seconds)."""
        return max(self._lags, default=0.0)

    def healthy(self) -> bool:
        """True while the loop is responsive (see the module docstring)."""
        return is_healthy(
            self.lag, self._last_tick, self._clock(), interval=self.interval, max_lag=self.max_lag
        )

    def source(self) -> Source:
        """A metrics source for ``netalert_loop_lag_seconds``."""
        return lambda: [MetricSample("netalert_loop_lag_seconds", self.lag)]
