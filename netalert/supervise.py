"""Supervision of the agent's background tasks and stage callbacks.

Every long-running task (mail sender, canary, ticker, watchdog) runs under a
:class:`Supervisor`: when it raises, the failure is counted
(``netalert_task_failures_total{task}``), logged with its context (the first time
and then at most once a minute per task and error, with the count), and the
task is started again after a backoff that doubles from 1 s up to
``[agent].task_retry_max``; a task that ran longer than that before failing
starts again from the shortest wait. A callback at a stage boundary (the trap
sink, the poller's results) reports its failures through :meth:`Supervisor.failed`
the same way; the next trap or poll simply calls it again.

Only a failure that cannot be recovered ends the agent: a damaged state
database. :meth:`Supervisor.failed` then calls ``on_fatal`` with one line saying
what is wrong and what to do; the agent drains and exits 1.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from netalert.logs import RateLimiter, event
from netalert.metrics import Source, counter_samples
from netalert.state.integrity import is_corrupt

__all__ = ["Supervisor", "backoff"]

log = logging.getLogger("netalert.service")

_FIRST_WAIT = 1.0


def backoff(attempt: int, cap: float, first: float = _FIRST_WAIT) -> float:
    """Seconds to wait before restart number ``attempt`` (1, 2, 4 ... up to ``cap``)."""
    return min(cap, first * 2.0 ** max(0, min(attempt - 1, 60)))


class Supervisor:
    """Runs tasks that restart after a failure, and counts every failure.

    Args:
        on_fatal: Called once with the failure when it cannot be recovered.
        retry_max: Longest wait in seconds before a failed task is started again.
        clock: Monotonic clock.
    """

    def __init__(
        self,
        *,
        on_fatal: Callable[[BaseException], None],
        retry_max: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_fatal = on_fatal
        self.retry_max = retry_max
        self._clock = clock
        self.failures: Counter[str] = Counter()
        self._limit = RateLimiter(60.0, max_keys=1000)
        self._waiting: dict[str, str] = {}  # task -> error, while it waits to restart
        self._errors: dict[str, str] = {}  # task -> its latest failure
        self.fatal: str | None = None

    def spawn(
        self, name: str, factory: Callable[[], Awaitable[Any]], *, restart: bool = True
    ) -> asyncio.Task[None]:
        """Starts ``factory()`` as the task ``name``; restarts it after failures if ``restart``."""
        return asyncio.get_running_loop().create_task(self._run(name, factory, restart), name=name)

    async def _run(self, name: str, factory: Callable[[], Awaitable[Any]], restart: bool) -> None:
        attempt = 0
        while True:
            started = self._clock()
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ran = self._clock() - started
                attempt = 1 if ran > self.retry_max else attempt + 1
                delay = backoff(attempt, self.retry_max)
                then = f"restart in {delay:g}s" if restart else "not restarted"
                if not self.failed(name, exc, then=then) or not restart:
                    return
            self._waiting[name] = self.last_error(name)
            try:
                await asyncio.sleep(delay)
            finally:
                self._waiting.pop(name, None)

    def failed(self, task: str, exc: BaseException, *, then: str = "next call") -> bool:
        """Counts and logs a failure of ``task``; returns False when it is fatal.

        ``then`` says what happens next, for the log line. A fatal failure (a
        damaged state database) calls ``on_fatal`` once.
        """
        self.failures[task] += 1
        self._errors[task] = _describe(exc)
        if is_corrupt(exc):
            if self.fatal is None:
                self.fatal = str(exc)
                log.error(event("task_failed", task=task, error=_describe(exc), then="stop"))
                self.on_fatal(exc)
            return False
        # once per task and kind of error a minute: a task failing every second is one line
        if self._limit.allow((task, type(exc).__name__), self._clock()):
            log.error(
                event(
                    "task_failed",
                    task=task,
                    error=self._errors[task],
                    failures=self.failures[task],
                    then=then,
                )
            )
        return True

    def last_error(self, task: str) -> str:
        """The latest failure of ``task`` ("" if none)."""
        return self._errors.get(task, "")

    def problems(self) -> list[str]:
        """One line per task now waiting to restart (for /healthz)."""
        return [f"task {name} failed ({err}); restarting" for name, err in self._waiting.items()]

    def source(self) -> Source:
        """A metrics source for ``netalert_task_failures_total{task}``."""

        return lambda: counter_samples("netalert_task_failures_total", "task", self.failures)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
