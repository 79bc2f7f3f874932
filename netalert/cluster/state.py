"""A cluster node's state writer: the alert store and the mail writes of each loop turn in one
fenced PostgreSQL transaction, made in a worker thread.

:class:`ClusterState` is the agent's :class:`~netalert.alerts.store.AlertStore` with
``[cluster]``. The alert stage saves after each trap, poll and tick as it does on SQLite;
here a save only merges the records into the batch of the loop turn (the last version of
each alert wins). After the turn the batch, with the notifications and mails queued in
the same turn or the next (:meth:`ClusterState.write`: the mail-out task a turn starts
runs in the next, so a trap's alert and its mail are one transaction), goes to PostgreSQL in one
transaction fenced by the leases of every shard it touches
(:meth:`~netalert.cluster.pgstore.PgAlertStore.commit`), in one worker thread: the lease
renewals run on the event loop, and a transaction waits for their row locks.

* Refused for a stale lease: the records and writes of the shards this node lost are
  dropped, and the node forgets those alerts (``on_stale``): their new owner loads them
  from PostgreSQL. The rest of the batch is written again at once.
* PostgreSQL away: the batch stays in memory (merged with what comes after, so it never
  holds more than one version of each alert) and is tried again after a capped backoff.
  Losing a shard meanwhile drops its part (:meth:`ClusterState.drop_shards`).
* :meth:`ClusterState.committed` returns once everything saved before the call is
  committed (the trap consumer acknowledges a trap only then); it raises
  :class:`~netalert.cluster.errors.StaleLeaseError` when a part was refused instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from netalert.alerts.store import Lost, Records
from netalert.alerts.table import AlertRecord
from netalert.cluster.errors import ClusterError, StaleLeaseError
from netalert.cluster.leases import Lease
from netalert.cluster.pgstore import Extra, PgAlertStore
from netalert.errors import StateError, StateWriteError
from netalert.logs import event
from netalert.metrics import MetricSample, Source

__all__ = ["ClusterState", "Pending", "ShardLostError"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_RETRY_BASE = 0.25


class ShardLostError(ClusterError):
    """What waited to be written was dropped: its shard is no longer this node's."""


def _shard_list(shards: Collection[int]) -> str:
    return ",".join(map(str, sorted(shards)))


@dataclass(slots=True)
class Pending:
    """A write queued with the alerts (a notification and its mail)."""

    extra: Extra
    on_commit: Callable[[], None] | None = None
    on_refused: Callable[[], None] | None = None


@dataclass(slots=True)
class _Batch:
    records: dict[str, AlertRecord | None]  # fingerprint -> record, None: remove
    writes: list[Pending]
    leases: dict[int, Lease]  # shard -> the lease its changes were made under
    since: int  # what was settled when it was taken: it holds what came after, up to
    upto: int  # the last save or write it holds (a sequence number)


class ClusterState:
    """See the module docstring.

    Args:
        store: The PostgreSQL alert store (its connection is used by the worker thread only).
        lease_of: This node's current lease of a shard, or None.
        on_stale: Called on the loop with the shards whose write was refused: forget their
            alerts (and their notifications).
        retry_max: Longest wait in seconds between two attempts while PostgreSQL fails.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        store: PgAlertStore,
        *,
        lease_of: Callable[[int], Lease | None],
        on_stale: Callable[[frozenset[int]], None] = lambda shards: None,
        retry_max: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._lease_of = lease_of
        self.on_stale = on_stale
        self.retry_max = retry_max
        self._clock = clock
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="cluster-state")
        self._records: dict[str, AlertRecord | None] = {}
        self._writes: list[Pending] = []
        self._leases: dict[int, Lease] = {}  # shard -> lease the queued changes were made under
        self._shard_of: dict[str, int] = {}  # fingerprint -> shard, for removals
        self._seq = 0  # saves and writes handed in so far
        self._done = 0  # saves and writes settled (committed or refused) so far
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._last_failure: tuple[int, int, ClusterError] | None = None
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._inflight = False
        self._attempts = 0
        # counted (the /metrics source)
        self.commits = 0
        self.refused = 0  # transactions refused for a stale lease
        self.dropped = 0  # records and writes dropped with a lost shard
        self.failures = 0
        self.failing_since: float | None = None
        self.last_error = ""

    # --- the AlertStore protocol -----------------------------------------------------------

    def load(self) -> list[AlertRecord]:
        """Nothing at start: a node loads a shard's alerts when it takes the shard
        (:meth:`load_shards`)."""
        return []

    def save(self, changed: Records, removed: Sequence[str], *, on_lost: Lost) -> None:
        """Merges ``changed`` and ``removed`` into this turn's batch; committed after the
        turn (``on_lost`` is never called: a refused record is forgotten, not re-saved)."""
        if not changed and not removed:
            return
        for fp in removed:
            self._records[fp] = None
        for record in changed:
            fp = record.alert.fingerprint
            self._records[fp] = record
            self._shard_of[fp] = self._pin(self.store.shard_of(record))
        self._queued()

    def _pin(self, shard: int) -> int:
        """Remembers the lease ``shard``'s changes are made under: the batch is written
        under it, so a node whose lease moved on meanwhile is refused with its old epoch."""
        if shard not in self._leases:
            lease = self._lease_of(shard)
            self._leases[shard] = lease or Lease(shard, self.store.node, 0)
        return shard

    def write(
        self,
        extra: Extra,
        *,
        on_commit: Callable[[], None] | None = None,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        """Queues ``extra`` after this turn's saves, in the same transaction. ``on_commit``
        or ``on_refused`` (a shard of it was lost) is called once, on the loop."""
        for shard in extra.shards:
            self._pin(shard)
        self._writes.append(Pending(extra, on_commit, on_refused))
        self._queued()

    def _queued(self) -> None:
        self._seq += 1
        self._kick.set()

    # --- waiting for commits ---------------------------------------------------------------

    @property
    def settled(self) -> bool:
        """True when everything handed in is committed (or refused)."""
        return self._done >= self._seq

    async def committed(self) -> None:
        """Returns once every save and write handed in before the call is committed.

        Raises:
            StaleLeaseError: Part of it was refused (a shard moved on): its traps must
                be processed again by the shard's new owner.
            ShardLostError: Part of it was dropped before it was written (the same).
        """
        if self._done >= self._seq:
            return
        failed = self._last_failure
        if failed is not None and failed[0] < self._seq <= failed[1]:
            raise failed[2]  # dropped before this waiter came: nothing newer to wait for
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._seq, future))
        await future

    def _settle(self, upto: int, error: BaseException | None = None) -> None:
        self._done = max(self._done, upto)
        keep = []
        for seq, future in self._waiters:
            if seq > upto:
                keep.append((seq, future))
            elif not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
                    future.exception()  # a waiter that went away does not warn
        self._waiters = keep

    # --- shards gained and lost ------------------------------------------------------------

    async def load_shards(self, shards: Collection[int]) -> list[AlertRecord]:
        """The alerts of ``shards`` as stored (read in the worker thread).

        Raises:
            StateWriteError: PostgreSQL cannot be read.
        """
        records = await self.run(self.store.load_shards, shards)
        for record in records:
            self._shard_of[record.alert.fingerprint] = self.store.shard_of(record)
        return records

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` in the worker thread (after the writes queued before it).

        A call that takes longer than the store's ``call_timeout`` has its connection
        broken (:meth:`PgAlertStore.interrupt`): behind a silent network it would wait
        forever; it fails instead, and is made again on a new connection.
        """
        future = asyncio.get_running_loop().run_in_executor(self._pool, call, *args)
        while True:
            done, _ = await asyncio.wait({future}, timeout=self.store.call_timeout)
            if done:
                return future.result()
            log.warning(event("cluster_state_call_hung", seconds=self.store.call_timeout))
            self.store.interrupt()

    def drop_shards(self, shards: Collection[int]) -> int:
        """Drops what waits to be written for ``shards`` (lost: their new owner has them);
        returns how many records and writes were dropped."""
        lost = set(shards)
        dropped = [fp for fp in self._records if self._shard_of.get(fp) in lost]
        for fp in dropped:
            del self._records[fp]
        writes = [w for w in self._writes if w.extra.shards & lost]
        self._writes = [w for w in self._writes if not w.extra.shards & lost]
        for write in writes:
            if write.on_refused is not None:
                write.on_refused()
        for fp in [fp for fp, shard in self._shard_of.items() if shard in lost]:
            del self._shard_of[fp]
        for shard in lost:
            self._leases.pop(shard, None)
        count = len(dropped) + len(writes)
        self.dropped += count
        if count:  # whoever waits for them: not committed, their traps go to the new owner
            error = ShardLostError(f"shards {_shard_list(lost)} lost")
            self._fail_waiters(self._done, self._seq, error)
        if not self._records and not self._writes and not self._inflight:
            self._settle(self._seq)
        return count

    # --- the writer ------------------------------------------------------------------------

    def start(self) -> None:
        """Starts writing in the background."""
        self._closing = False
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster-state")

    async def drain(self, deadline: float) -> None:
        """Writes what is queued, until ``deadline`` (monotonic seconds)."""
        while not self.settled and self._clock() < deadline:
            self._kick.set()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stops writing (what is still queued is lost: said in the log) and closes."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self.settled:
            log.error(
                event(
                    "cluster_state_unsaved",
                    alerts=len(self._records),
                    writes=len(self._writes),
                    error=self.last_error,
                )
            )
        for _, future in self._waiters:
            future.cancel()
        self._waiters = []
        self.store.interrupt()  # a write still hanging in the thread ends now
        closing = asyncio.get_running_loop().run_in_executor(self._pool, self.store.close)
        await asyncio.wait({closing}, timeout=self.store.call_timeout)
        self._pool.shutdown(wait=False)

    def problem(self) -> str | None:
        """One line for /healthz while PostgreSQL cannot take the writes."""
        if self.failing_since is None:
            return None
        since = time.strftime("%H:%M:%S", time.localtime(self.failing_since))
        return (
            f"cluster state cannot be written to PostgreSQL since {since}: {self.last_error}; "
            f"{len(self._records)} alerts and {len(self._writes)} mails held in memory"
        )

    def source(self) -> Source:
        """A metrics source: commits, refusals, records dropped, failures, held."""

        def read() -> list[MetricSample]:
            return [
                MetricSample("netalert_cluster_state_commits_total", self.commits),
                MetricSample("netalert_cluster_state_refused_total", self.refused),
                MetricSample("netalert_cluster_state_dropped_total", self.dropped),
                MetricSample("netalert_cluster_state_failures_total", self.failures),
                MetricSample("netalert_cluster_state_held", len(self._records) + len(self._writes)),
            ]

        return read

    def _take(self) -> _Batch:
        batch = _Batch(self._records, self._writes, self._leases, self._done, self._seq)
        self._records, self._writes, self._leases = {}, [], {}
        return batch

    def _put_back(self, batch: _Batch) -> None:
        """A batch not written goes back under what came after it (newer versions win)."""
        batch.records.update(self._records)
        self._records = batch.records
        self._writes = batch.writes + self._writes
        # the older lease wins: changes made under a lease since lost are refused, never
        # written under a later one (another owner may have written in between)
        self._leases.update(batch.leases)

    async def _run(self) -> None:
        while not self._closing:
            await self._kick.wait()
            self._kick.clear()
            # One more turn: what the turn that kicked started (the mail-out task of its
            # alerts, queued behind this wake-up) joins the batch, so an alert and its
            # mail are one transaction, not two.
            await asyncio.sleep(0)
            while (self._records or self._writes) and not self._closing:
                if not await self._write_once():
                    await self._backoff()
            if self.settled:
                self._settle(self._seq)

    async def _backoff(self) -> None:
        # stop() cancels the task: no need to watch for it here
        await asyncio.sleep(min(self.retry_max, _RETRY_BASE * 2.0 ** max(0, self._attempts - 1)))

    async def _write_once(self) -> bool:
        """Writes one batch; False when PostgreSQL failed (the batch is held)."""
        batch = self._take()
        self._unleased(batch)
        if not batch.records and not batch.writes:
            self._settle(batch.upto)
            return True
        changed = [r for r in batch.records.values() if r is not None]
        removed = [fp for fp, r in batch.records.items() if r is None]
        extra = [w.extra for w in batch.writes]
        self._inflight = True
        try:
            await self.run(self.store.commit, changed, removed, extra, batch.leases)
        except StaleLeaseError as exc:
            self._refused(batch, exc)
            return True
        except StateWriteError as exc:
            self._failed(exc)
            self._put_back(batch)
            return False
        except StateError as exc:  # refused for good (a bug): dropped, said loudly
            log.error(event("cluster_state_refused", error=exc, alerts=len(changed)))
            self._committed(batch, ok=False)
            return True
        finally:
            self._inflight = False
        self._committed(batch, ok=True)
        return True

    def _committed(self, batch: _Batch, *, ok: bool) -> None:
        if ok:
            self.commits += 1
        if self.failing_since is not None:
            log.warning(
                event(
                    "cluster_state_writable",
                    outage=f"{time.time() - self.failing_since:.0f}s",
                )
            )
        self.failing_since = None
        self._attempts = 0
        for fp, record in batch.records.items():
            if record is None:
                self._shard_of.pop(fp, None)
        for write in batch.writes:
            callback = write.on_commit if ok else write.on_refused
            if callback is not None:
                callback()
        self._settle(batch.upto)

    def _unleased(self, batch: _Batch) -> None:
        """Drops, without asking PostgreSQL, what was made for shards this node held no
        lease on (epoch 0 is never a lease's: the fence would refuse it): the alerts of a
        device polled or heard by a node that does not hold its shard."""
        foreign = frozenset(s for s, lease in batch.leases.items() if lease.epoch == 0)
        if not foreign:
            return
        where = {fp: self._record_shard(fp, r) for fp, r in batch.records.items()}
        kept = {fp: r for fp, r in batch.records.items() if where[fp] not in foreign}
        refused = [w for w in batch.writes if w.extra.shards & foreign]
        self.dropped += len(batch.records) - len(kept) + len(refused)
        batch.records = kept
        batch.writes = [w for w in batch.writes if not w.extra.shards & foreign]
        batch.leases = {s: lease for s, lease in batch.leases.items() if s not in foreign}
        for write in refused:
            if write.on_refused is not None:
                write.on_refused()
        lost = ShardLostError(f"shards {_shard_list(foreign)} not held")
        self._fail_waiters(batch.since, batch.upto, lost)
        self.on_stale(foreign)

    def _refused(self, batch: _Batch, exc: StaleLeaseError) -> None:
        """A stale lease: the lost shards' part is dropped and forgotten; the rest goes back."""
        self.refused += 1
        where = {fp: self._record_shard(fp, r) for fp, r in batch.records.items()}
        shards = {exc.shard, *where.values()}
        for write in batch.writes:
            shards.update(write.extra.shards)
        stale = frozenset(
            s for s in shards if s == exc.shard or (s >= 0 and self._lease_of(s) is None)
        )
        log.warning(
            event(
                "cluster_state_stale",
                shard=exc.shard,
                epoch=exc.epoch,
                current_epoch=exc.current_epoch,
                holder=exc.current_node or "nobody",
                dropped_shards=_shard_list(stale),
            )
        )
        # removals of unknown shard go too (a resolved row left behind is pruned by its owner)
        kept = {fp: r for fp, r in batch.records.items() if where[fp] not in stale | {-1}}
        dropped = len(batch.records) - len(kept)
        refused = [w for w in batch.writes if w.extra.shards & stale]
        batch.records = kept
        batch.writes = [w for w in batch.writes if not w.extra.shards & stale]
        batch.leases = {s: lease for s, lease in batch.leases.items() if s not in stale}
        self.dropped += dropped + len(refused)
        for write in refused:
            if write.on_refused is not None:
                write.on_refused()
        # the waiters of this batch learn it: their traps go to the shard's new owner
        self._fail_waiters(batch.since, batch.upto, exc)
        self._put_back(batch)
        self.on_stale(stale)

    def _record_shard(self, fp: str, record: AlertRecord | None) -> int:
        if record is not None:
            return self.store.shard_of(record)
        return self._shard_of.get(fp, -1)

    def _fail_waiters(self, since: int, upto: int, exc: ClusterError) -> None:
        """The waiters for what was handed in up to ``upto`` learn that part of what came
        after ``since`` was not written."""
        self._last_failure = (since, upto, exc)
        keep = []
        for seq, future in self._waiters:
            if seq > upto:
                keep.append((seq, future))
            elif not future.done():
                future.set_exception(exc)
                future.exception()
        self._waiters = keep

    def _failed(self, exc: StateWriteError) -> None:
        self.failures += 1
        self._attempts += 1
        self.last_error = str(exc)
        if self.failing_since is None:
            self.failing_since = time.time()
            log.error(
                event(
                    "cluster_state_write_failed",
                    error=exc,
                    alerts=len(self._records),
                    note="held in memory, tried again",
                )
            )
