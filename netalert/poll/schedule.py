"""The poll scheduler's executor: a run cancelled by a stop is counted, not a traceback.

APScheduler's :class:`AsyncIOExecutor` starts each due run of a coroutine job as an
asyncio task and, at ``shutdown``, cancels the tasks still pending. A task cancelled
before its first step never reaches the job's own ``except CancelledError``; the
executor then reports it as a failed job, one "Error running job" traceback per
device. With a busy loop (thousands of devices, a trap flood) a stop hands out
hundreds of those. This executor treats a cancelled run as the end of that run:
it keeps APScheduler's bookkeeping, counts it in :attr:`cancelled`, and logs
nothing; the poller's closing line carries the count.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from apscheduler.executors.asyncio import AsyncIOExecutor

__all__ = ["StoppableExecutor"]


class StoppableExecutor(AsyncIOExecutor):  # type: ignore[misc]  # APScheduler is untyped
    """:class:`AsyncIOExecutor` whose runs cancelled at shutdown end quietly."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = 0

    def _run_job_error(
        self, job_id: str, exc: BaseException, traceback: TracebackType | None = None
    ) -> None:
        if isinstance(exc, asyncio.CancelledError):
            self.cancelled += 1
            # no events to dispatch; this releases the job's instance as a success would
            self._run_job_success(job_id, [])
            return
        super()._run_job_error(job_id, exc, traceback)
