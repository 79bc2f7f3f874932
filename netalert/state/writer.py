"""Every write the agent makes to the state database, held in memory while it cannot be written.

A write is a function that applies SQL to the connection inside one transaction.
While the database takes writes, :meth:`StateWriter.write` commits at once. When
a commit fails for a reason that may pass (the disk is full, an I/O error, a lock
held too long), the write is kept in a bounded queue, and so is every write after
it, so the database never sees them out of order. :meth:`StateWriter.retry`,
called by the agent once a second, commits what is held, oldest first, with a
capped backoff between failed attempts. Past ``max_held`` writes the oldest one is
dropped (its ``on_shed`` runs; the caller can redo it from memory) and counted.

A damaged database (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``) is never held: it raises
:class:`~netalert.errors.StateCorruptError`, which stops the agent. A write that
breaks a constraint or misuses the API is a bug, not a condition: it raises
:class:`~netalert.errors.StateError` and is not retried.

With ``max_held = 0`` (the CLI, tests) nothing is held: a failed write raises
:class:`~netalert.errors.StateWriteError` at once.

With ``per_turn`` (the agent) the writes made inside a running event loop are
not committed one by one: the first of a loop turn schedules the end of the
turn (``call_soon``), which commits every write of that turn, in order, in one
transaction (:meth:`StateWriter.end_turn`). A burst of traps and the mails and
notification-log entries of one turn then cost one commit, not one each. If
that transaction fails for a reason that may pass, its writes are held in
order as above; if one write is refused for good, the turn's writes are
committed one by one, so only the refused one is dropped. Outside a loop (the
CLI, tests) a write still commits at once.

:meth:`StateWriter.committed` waits until every write made so far is committed
(or dropped: shed past ``max_held``, or refused for good): a cluster node
acknowledges a trap taken from the shared stream only then.

Durable writes (a new alert mail) must be on disk before anything acts on them.
Commits run with ``synchronous=NORMAL``; after a durable one the writer fsyncs
the WAL (``sync``): outside an event loop at once; in the agent in a thread of
its own (group commit), so the loop never waits for the disk. One sync runs at a
time: the durable commits made while it runs, however many turns they span, are
put on disk by the next one. The mail sender awaits :meth:`StateWriter.synced`
before every SMTP attempt, so no mail is sent before it is on disk. (An fsync
on the loop cost 2 to 20 ms on a busy disk, once per turn that queued a mail: at
1,000 traps/s the loop spent about half its time in it, and traps waited.)
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from netalert.errors import StateCorruptError, StateError, StateWriteError
from netalert.logs import event
from netalert.metrics import MetricSample, Source
from netalert.state.integrity import corrupt_message, is_corrupt, sqlite_code

__all__ = ["StateWriter", "WriteFn", "state_error"]

log = logging.getLogger("netalert.state")

WriteFn = Callable[[sqlite3.Connection], object]
Begin = Callable[[], AbstractContextManager[sqlite3.Connection]]
_FULL = 13  # SQLITE_FULL
_LOG_EVERY = 60.0  # seconds between repeated lines about the same outage
_RETRY_BASE = 0.5

_FIXES = {
    _FULL: "free space on the disk holding it (or set [agent].state_dir to another disk)",
    8: "make it writable by the user netalert runs as",  # SQLITE_READONLY
    10: "check the disk (dmesg) and the filesystem",  # SQLITE_IOERR
    5: "another program holds a lock on it: stop it",  # SQLITE_BUSY
}


def state_error(exc: sqlite3.Error, path: Path | None) -> StateError:
    """The netalert error for a failed write: corrupt, retryable, or a bug."""
    if is_corrupt(exc):
        return StateCorruptError(corrupt_message(path, str(exc)))
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return StateError(f"{path or ':memory:'}: write refused: {exc}")
    return StateWriteError(f"{exc}")


@dataclass(slots=True)
class _Held:
    what: str
    apply: WriteFn
    durable: bool
    on_commit: Callable[[], None] | None
    on_shed: Callable[[], None] | None
    seq: int = 0  # the how-manieth write (see committed())


class StateWriter:
    """Commits writes in order, holding them while the database cannot take them.

    Args:
        begin: Opens one transaction (``Database.transaction``).
        path: The database file, for messages.
        sync: Puts every commit so far on disk (``Database.sync``).
        max_held: Writes kept in memory at most (0: hold nothing, raise at once).
        retry_max: Longest wait in seconds between two attempts while failing.
        clock: Monotonic clock.
    """

    def __init__(
        self,
        begin: Begin,
        path: Path | None,
        *,
        sync: Callable[[], None] = lambda: None,
        max_held: int = 0,
        retry_max: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._begin = begin
        self.path = path
        self._sync = sync
        self.unsynced = False  # a durable commit is not on disk yet
        self.syncs = 0
        # durable commits made so far, and how many of them a finished sync put on disk
        self._durable = 0
        self._synced = 0
        self._syncing = False  # a sync runs in the sync thread
        self._sync_scheduled = False  # one starts at the end of this loop turn
        self._sync_waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        # the agent's syncs run here (made now, started at the first: the CLI starts none)
        self._sync_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-sync")
        self.max_held = max_held
        self.retry_max = retry_max
        self._clock = clock
        self._queue: deque[_Held] = deque()
        # per_turn: the writes of this event-loop turn, committed together at its end
        self.per_turn = False
        self._turn: list[_Held] = []
        # where a damaged database found at the end of a turn is reported (else raised)
        self.on_fatal: Callable[[BaseException], None] | None = None
        self.turns = 0  # transactions that committed a whole turn
        self.shed_total = 0
        self.failures_total = 0
        self.failing_since: float | None = None  # wall clock, for the health line
        self.last_error = ""
        self._attempts = 0
        self._next_try = 0.0
        self._last_log = -_LOG_EVERY
        self._last_shed_log = -_LOG_EVERY
        self._shed_logged = 0
        # committed(): writes made so far, the last one finished (committed or dropped,
        # in order), and who waits for which
        self._made = 0
        self._finished = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    # ---- state --------------------------------------------------------------------

    @property
    def held(self) -> int:
        """Writes waiting in memory."""
        return len(self._queue)

    @property
    def holding(self) -> bool:
        """True while writes wait (a new write then queues behind them)."""
        return bool(self._queue)

    def problem(self) -> str | None:
        """One line for /healthz while writes are held, else None."""
        if not self._queue:
            return None
        since = time.strftime("%H:%M:%S", time.localtime(self.failing_since or time.time()))
        return (
            f"state database {self.path} cannot be written since {since}: {self.last_error}; "
            f"{self.held} writes held in memory, {self.shed_total} shed"
        )

    # ---- writing ------------------------------------------------------------------

    def write(
        self,
        what: str,
        apply: WriteFn,
        *,
        durable: bool = False,
        on_commit: Callable[[], None] | None = None,
        on_shed: Callable[[], None] | None = None,
    ) -> bool:
        """Commits ``apply`` now, or holds it behind earlier held writes.

        Args:
            what: What is written (``"alerts"``, ``"outbox"``), for the log.
            apply: Runs the SQL; called inside one transaction, maybe later.
            durable: The commit must survive a power cut (a mail): it is synced
                before the event loop runs anything else (see the module docstring).
            on_commit: Called once ``apply`` is committed (now or later).
            on_shed: Called if the write is dropped past ``max_held``.

        Returns:
            True when committed now, False when held or left for the end of the
            loop turn (``per_turn``).

        Raises:
            StateWriteError: The write failed and nothing may be held (``max_held`` 0).
            StateCorruptError: The database is damaged.
            StateError: The write is refused for good (a constraint, a bug).
        """
        self._made += 1
        item = _Held(what, apply, durable, on_commit, on_shed, self._made)
        if self._turn:
            self._turn.append(item)
            return False
        if not self._queue and self._batching():
            self._turn.append(item)
            asyncio.get_running_loop().call_soon(self._end_turn)
            return False
        if not self._queue:
            try:
                self._commit(apply)
            except StateWriteError as exc:
                if self.max_held <= 0:
                    self._finish(item)
                    raise
                self._failed(what, exc)
            except StateError:
                self._finish(item)
                raise
            else:
                if durable:
                    self._needs_sync()
                self._finish(item)
                if on_commit is not None:
                    on_commit()
                return True
        self._hold(item)
        return False

    def _batching(self) -> bool:
        if not self.per_turn or self.max_held <= 0:
            return False
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop (the CLI, tests): at once
            return False
        return True

    def _end_turn(self) -> None:
        try:
            self.end_turn()
        except StateCorruptError as exc:
            if self.on_fatal is None:
                raise
            self.on_fatal(exc)

    def end_turn(self) -> None:
        """Commits the writes of this loop turn in one transaction (see the module docstring).

        Called at the end of the turn, and by :meth:`retry` and ``Database.close``.

        Raises:
            StateCorruptError: The database is damaged.
        """
        items, self._turn = self._turn, []
        if not items:
            return
        try:
            self._commit(lambda conn: [item.apply(conn) for item in items])
        except StateWriteError as exc:
            self._failed(items[0].what, exc)
            for item in items:
                self._hold(item)
            return
        except StateCorruptError:
            raise
        except StateError:  # one of them is refused for good: one transaction each
            self._one_by_one(items)
            return
        self.turns += 1
        for item in items:
            self._committed(item)

    def _one_by_one(self, items: list[_Held]) -> None:
        for n, item in enumerate(items):
            try:
                self._commit(item.apply)
            except StateWriteError as exc:
                self._failed(item.what, exc)
                for rest in items[n:]:
                    self._hold(rest)
                return
            except StateCorruptError:
                raise
            except StateError as exc:
                self._refused(item, exc)
                continue
            self._committed(item)

    def _committed(self, item: _Held) -> None:
        if item.durable:
            self._needs_sync()
        self._finish(item)
        if item.on_commit is not None:
            item.on_commit()

    def _refused(self, item: _Held, exc: StateError) -> None:
        self.shed_total += 1
        self._finish(item)
        log.error(event("state_write_refused", what=item.what, error=exc))
        if item.on_shed is not None:
            item.on_shed()

    async def committed(self) -> None:
        """Returns once every write made so far is committed, or dropped (shed past
        ``max_held``, refused for good): at once when none waits, else at the end of
        this loop turn, or when :meth:`retry` writes the held ones."""
        target = self._made
        if self._finished >= target:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        await future

    def _finish(self, item: _Held) -> None:
        # Writes finish in the order they were made: the held queue and a turn's
        # writes keep it, and shedding drops the oldest.
        self._finished = max(self._finished, item.seq)
        waiters = self._waiters
        while waiters and waiters[0][0] <= self._finished:
            _, future = waiters.popleft()
            if not future.done():
                future.set_result(None)

    def retry(self, *, force: bool = False) -> bool:
        """Commits the held writes, oldest first, unless the backoff says wait (or ``force``).

        Returns:
            True when nothing is held any more.

        Raises:
            StateCorruptError: The database is damaged.
        """
        self.end_turn()
        if not self._queue:
            return True
        if not force and self._clock() < self._next_try:
            return False
        written = 0
        while self._queue:
            item = self._queue[0]
            try:
                self._commit(item.apply)
            except StateWriteError as exc:
                self._failed(item.what, exc)
                return False
            except StateCorruptError:
                raise
            except StateError as exc:  # refused for good: drop it, or it blocks the rest
                self._queue.popleft()
                self._refused(item, exc)
                continue
            self._queue.popleft()
            written += 1
            self._committed(item)
        outage = time.time() - (self.failing_since or time.time())
        log.warning(
            event(
                "state_writable",
                path=self.path,
                written=written,
                shed=self.shed_total,
                outage=f"{outage:.0f}s",
            )
        )
        self.failing_since = None
        self._attempts = 0
        self._next_try = 0.0
        self._last_log = -_LOG_EVERY
        return True

    def pending_writes(self) -> Iterator[str]:
        """What each held write is, oldest first (for the closing log line)."""
        return (item.what for item in self._queue)

    def sync(self) -> None:
        """Puts the durable commits made so far on disk, if one is not yet, in this thread
        (outside an event loop, and when the database closes)."""
        if not self.unsynced:
            return
        target = self._durable
        self._synced_to(target, self._sync_now())

    async def synced(self) -> None:
        """Returns once every durable commit made so far is on disk (or its sync failed,
        which is logged and counted): at once when none waits for a sync."""
        target = self._durable
        if self._synced >= target:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sync_waiters.append((target, future))
        self._start_sync()
        await future

    def close(self) -> None:
        """Waits for the sync running in the sync thread, if any; then syncs what is left."""
        self._sync_thread.shutdown(wait=True)
        self.sync()

    def _needs_sync(self) -> None:
        self._durable += 1
        self.unsynced = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (the CLI, tests): now
            self.sync()
            return
        if not self._sync_scheduled:  # after the turn's other commits: one sync for all
            self._sync_scheduled = True
            loop.call_soon(self._scheduled_sync)

    def _scheduled_sync(self) -> None:
        self._sync_scheduled = False
        self._start_sync()

    def _start_sync(self) -> None:
        """Starts a sync in the sync thread unless one runs (its end starts the next)."""
        if self._syncing or self._synced >= self._durable:
            return
        target = self._durable  # every durable commit so far is written to the WAL
        try:
            future = asyncio.get_running_loop().run_in_executor(self._sync_thread, self._sync_now)
        except RuntimeError:  # closing: no thread to be had
            self._synced_to(target, self._sync_now())
            return
        self._syncing = True
        future.add_done_callback(lambda done: self._sync_done(target, done))

    def _sync_done(self, target: int, done: asyncio.Future[OSError | None]) -> None:
        self._syncing = False
        error: BaseException | None = None
        if not done.cancelled():
            error = done.exception() or done.result()
        self._synced_to(target, error)
        self._start_sync()  # durable commits made while it ran

    def _sync_now(self) -> OSError | None:
        """One sync (in the sync thread, or the caller's); the disk's error, if any."""
        try:
            self._sync()
        except OSError as exc:
            return exc
        return None

    def _synced_to(self, target: int, error: BaseException | None) -> None:
        self.syncs += 1
        if error is not None:  # committed, maybe not on disk: say so, it may be lost
            self.failures_total += 1
            log.error(event("state_sync_failed", path=self.path, error=error))
        self._synced = max(self._synced, target)
        self.unsynced = self._synced < self._durable
        waiters = self._sync_waiters
        while waiters and waiters[0][0] <= self._synced:
            _, future = waiters.popleft()
            if not future.done():
                future.set_result(None)

    def _commit(self, apply: WriteFn) -> None:
        try:
            with self._begin() as conn:
                apply(conn)
        except sqlite3.Error as exc:
            raise state_error(exc, self.path) from exc

    def _failed(self, what: str, exc: StateWriteError) -> None:
        now = self._clock()
        self.failures_total += 1
        self.last_error = str(exc)
        if self.failing_since is None:
            self.failing_since = time.time()
        self._attempts += 1
        self._next_try = now + min(self.retry_max, _RETRY_BASE * 2.0 ** (self._attempts - 1))
        if now - self._last_log >= _LOG_EVERY:
            self._last_log = now
            cause = exc.__cause__
            code = sqlite_code(cause) if isinstance(cause, sqlite3.Error) else 0
            log.error(
                event(
                    "state_write_failed",
                    path=self.path,
                    what=what,
                    error=exc,
                    held=self.held + 1,
                    limit=self.max_held,
                    fix=_FIXES.get(code, "check the disk and the file's permissions"),
                )
            )

    def _hold(self, item: _Held) -> None:
        self._queue.append(item)
        while len(self._queue) > self.max_held:
            oldest = self._queue.popleft()
            self.shed_total += 1
            self._finish(oldest)
            if oldest.on_shed is not None:
                oldest.on_shed()
        now = self._clock()
        if self.shed_total > self._shed_logged and now - self._last_shed_log >= _LOG_EVERY:
            self._last_shed_log = now
            self._shed_logged = self.shed_total
            log.error(
                event(
                    "state_writes_shed",
                    path=self.path,
                    shed=self.shed_total,
                    limit=self.max_held,
                    kept="the newest writes; alerts stay in memory",
                )
            )

    # ---- metrics ------------------------------------------------------------------

    def source(self) -> Source:
        """A metrics source: held writes, shed writes, failed commits, writable or not."""

        def read() -> list[MetricSample]:
            return [
                MetricSample("netalert_state_writes_held", self.held),
                MetricSample("netalert_state_writes_shed_total", self.shed_total),
                MetricSample("netalert_state_write_failures_total", self.failures_total),
                MetricSample("netalert_state_writable", 0 if self._queue else 1),
            ]

        return read
