"""WAL checkpoints in a worker thread, so the event loop never waits on the disk.

In WAL mode every commit appends to ``netalert.db-wal``; a checkpoint copies
those pages back into the database file and syncs it. SQLite does that by
itself inside the commit that takes the log past ``wal_autocheckpoint`` pages
(1,000 by default), so every few hundred mails one commit on the event loop
also copied megabytes and waited for ``fsync``: the trap-to-mail latency's
tail. The agent runs a passive checkpoint from its own connection in a worker
thread every ``[agent].wal_checkpoint_interval`` instead; it takes no lock the
writer needs, and the sqlite3 module releases the interpreter while it runs.

The log starts over only after a checkpoint that caught up with the last
commit, which a thread racing a storm of commits rarely does: the log grows
meanwhile. So SQLite's own threshold stays, raised to ``[agent].wal_max_pages``:
past it the committing loop checkpoints what the thread has not copied yet (a
short pause), and the log starts over. A log kept short also keeps commits
fast: every page read looks through the log's index first.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from netalert.logs import RateLimiter, event
from netalert.metrics import MetricSample, Source

__all__ = ["CheckpointStats", "Checkpointer"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CheckpointStats:
    """What the checkpointer did (exported in /metrics)."""

    checkpoints: int = 0  # checkpoints that copied pages into the database
    failures: int = 0
    wal_pages: int = 0  # pages in the log at the last checkpoint
    last_seconds: float = 0.0  # how long the last checkpoint took (in its thread)


class Checkpointer:
    """Checkpoints the WAL of the database at ``path`` every ``interval`` seconds.

    Args:
        path: The database file (its log is ``path`` + ``-wal``).
        interval: Seconds between checkpoints.
    """

    def __init__(self, path: Path, *, interval: float) -> None:
        """Opens the checkpointer's own connection (at start, while descriptors are free).

        Raises:
            sqlite3.Error: The database cannot be opened.
        """
        self.path = path
        self.interval = interval
        self.stats = CheckpointStats()
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=1.0
        )
        # a first read opens the log and its index now; later, the process may be out
        # of descriptors (a flood of connections to the web port)
        self._conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        # its own thread, made now: the default pool imports its module on first use,
        # which fails while the process is out of descriptors
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-checkpoint")
        self._last = (0, 0)  # (pages in the log, pages copied) of the last checkpoint
        self._lock = threading.Lock()  # a checkpoint still running in its thread when cancelled
        self._log_limit = RateLimiter(300.0)

    async def run(self) -> None:
        """Checkpoints until cancelled; a failure is counted and logged, never raised."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(self.interval)
                try:
                    await loop.run_in_executor(self._thread, self.checkpoint)
                except (OSError, RuntimeError) as exc:  # no thread to be had
                    self._failed(exc)
        finally:
            self.close()
            self._thread.shutdown(wait=False)

    def _failed(self, exc: BaseException) -> None:
        self.stats.failures += 1
        if self._log_limit.allow("failed", time.monotonic()):
            log.warning(event("wal_checkpoint_failed", db=self.path, error=exc))

    def checkpoint(self) -> None:
        """One passive checkpoint, in the calling thread (a worker thread in :meth:`run`)."""
        with self._lock:
            self._checkpoint()

    def _checkpoint(self) -> None:
        began = time.perf_counter()
        if self._conn is None:
            return  # closed
        try:
            row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            self._failed(exc)
            return
        _busy, pages, copied = (int(v) for v in row)
        self.stats.wal_pages = max(0, pages)
        # the pragma reports every page copied so far, not only this time's
        if copied > 0 and (pages, copied) != self._last:
            self.stats.checkpoints += 1
            self.stats.last_seconds = time.perf_counter() - began
        self._last = (pages, copied)

    def close(self) -> None:
        """Closes the checkpointer's connection (after the checkpoint running, if any)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def source(self) -> Source:
        """A metrics source for ``netalert_state_checkpoints_total`` and the WAL's size."""
        stats = self.stats
        return lambda: [
            MetricSample("netalert_state_checkpoints_total", stats.checkpoints),
            MetricSample("netalert_state_checkpoint_failures_total", stats.failures),
            MetricSample("netalert_state_wal_pages", stats.wal_pages),
        ]
