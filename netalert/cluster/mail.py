"""A cluster node's notification log and mail queue, on PostgreSQL, behind the interfaces the
single node's SQLite ones have (:class:`~netalert.notify.nflog.NotificationLog`,
:class:`~netalert.mail.queue.MailQueue`), so the dispatcher, the mailer and the sender are
the same code.

* :class:`PgNotificationLog`: what each group was last told, one row per (route, group,
  shard). A node keeps the rows of the shards it holds in memory (loaded when it takes a
  shard, dropped when it loses one); the group's log is their union, so a shard taken
  over carries what its old owner told.
* :class:`PgMailOutbox`: the mailer's :meth:`~PgMailOutbox.enqueue_raw` queues the mail
  and its notification-log rows as one write of the node's :class:`ClusterState`, in
  the transaction of the alert transitions of the same loop turn, fenced by the leases of
  the shards of the mail's alerts, and claimed by this node in that transaction: at the
  commit it goes to this node's sender, with no query of its own. Until it commits the
  mail is held (as the SQLite outbox holds writes while its disk is full). The sender's
  side also claims due mails of any node (given back, put off, or queued by a node that
  died; ``FOR UPDATE SKIP LOCKED`` under a claim, :class:`~netalert.cluster.outbox.PgOutbox`)
  in a worker thread every ``poll``, and hands them to the sender from memory; each
  result is written back under the claim: sent (with the server's reply) or tried again
  later.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from typing import Any, TypeVar

import psycopg
from psycopg import Connection

from netalert.cluster.leases import Lease
from netalert.cluster.outbox import Claimed, MailRow, PgOutbox, StaleClaimError, mail_write
from netalert.cluster.pgstore import Extra, escape_text, unescape_text
from netalert.cluster.state import ClusterState
from netalert.logs import event
from netalert.mail.entries import OutboxEntry, RecipientResult
from netalert.mail.errors import MailError
from netalert.mail.outbox import enqueue_message
from netalert.notify.model import Notification
from netalert.notify.nflog import NflogEntry, told_entry

__all__ = [
    "PgMailOutbox",
    "PgNotificationLog",
    "PgWrite",
    "read_nflog",
    "read_threads",
    "thread_write",
]

log = logging.getLogger(__name__)

GroupId = tuple[str, str]  # (route, group key)
T = TypeVar("T")

# Longest a call of the mail queue may hang on its connection before it is broken (the
# statement timeout is 5 s; behind a silent network nothing ends a call by itself).
_CALL_TIMEOUT = 8.0


class PgWrite:
    """What the mail of one notification writes, gathered on the loop before it is queued:
    the shards it writes under and its SQL (the ``also`` of the SQLite outbox, for
    PostgreSQL)."""

    def __init__(self) -> None:
        self.label = ""  # the route and group, for the notification log row
        self.shards: set[int] = set()
        self.ops: list[Callable[[Connection[Any], Mapping[int, Lease]], None]] = []
        self.on_commit: list[Callable[[], None]] = []

    def apply(self, conn: Connection[Any], leases: Mapping[int, Lease]) -> None:
        for op in self.ops:
            op(conn, leases)


_UPSERT_NFLOG = (
    "INSERT INTO nflog (route, group_key, shard, firing, resolved, sent_at, epoch)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (route, group_key, shard) DO UPDATE"
    " SET firing = EXCLUDED.firing, resolved = EXCLUDED.resolved,"
    " sent_at = EXCLUDED.sent_at, epoch = EXCLUDED.epoch"
)


def read_nflog(
    conn: Connection[Any], shards: Collection[int]
) -> list[tuple[str, str, int, NflogEntry]]:
    """The notification-log rows of ``shards``: (route, group key, shard, entry)."""
    cur = conn.execute(
        "SELECT route, group_key, shard, firing, resolved, sent_at FROM nflog"
        " WHERE shard = ANY(%s)",
        (sorted(shards),),
    )
    return [
        (
            unescape_text(route),
            unescape_text(key),
            int(shard),
            NflogEntry(frozenset(json.loads(firing)), frozenset(json.loads(resolved)), float(at)),
        )
        for route, key, shard, firing, resolved, at in cur.fetchall()
    ]


_UPSERT_THREAD = (
    "INSERT INTO mail_threads (group_key, root, updated) VALUES (%s, %s, %s)"
    " ON CONFLICT (group_key) DO UPDATE SET root = EXCLUDED.root, updated = EXCLUDED.updated"
)


def thread_write(conn: Connection[Any], group_key: str, root: str, now: float) -> None:
    """Records the first Message-ID of a group's episode (in the transaction of its mail)."""
    conn.execute(_UPSERT_THREAD, (escape_text(group_key), root, now))


def read_threads(conn: Connection[Any]) -> dict[str, str]:
    """Every stored thread root: group key -> root."""
    cur = conn.execute("SELECT group_key, root FROM mail_threads")
    return {unescape_text(key): str(root) for key, root in cur.fetchall()}


class PgNotificationLog:
    """The notification log of a cluster node (see the module docstring).

    Args:
        shard_of: The shard of an alert's fingerprint (None: unknown, not recorded).
    """

    def __init__(self, shard_of: Callable[[str], int | None]) -> None:
        self._shard_of = shard_of
        self._rows: dict[GroupId, dict[int, NflogEntry]] = {}
        self._tokens = itertools.count(1)
        self._held: dict[GroupId, tuple[int, NflogEntry]] = {}

    def get(self, route: str, group_key: str) -> NflogEntry | None:
        """The group's last notification (a held one first): the union of its shards' rows."""
        held = self._held.get((route, group_key))
        if held is not None:
            return held[1]
        rows = self._rows.get((route, group_key))
        if not rows:
            return None
        entries = rows.values()
        return NflogEntry(
            frozenset().union(*(e.firing for e in entries)),
            frozenset().union(*(e.resolved for e in entries)),
            max(e.sent_at for e in entries),
        )

    def hold(self, notification: Notification) -> int:
        """As :meth:`NotificationLog.hold <netalert.notify.nflog.NotificationLog.hold>`."""
        token = next(self._tokens)
        entry = told_entry(notification)
        self._held[(notification.route, notification.group_key)] = (token, entry)
        return token

    def release(self, token: int, route: str, group_key: str) -> None:
        """As :meth:`NotificationLog.release <netalert.notify.nflog.NotificationLog.release>`."""
        held = self._held.get((route, group_key))
        if held is not None and held[0] == token:
            del self._held[(route, group_key)]

    def record(
        self,
        conn: Any,
        route: str,
        group_key: str,
        firing: frozenset[str],
        resolved: frozenset[str],
        now: float,
    ) -> None:
        """Adds the rows of a sent notification to ``conn``, a :class:`PgWrite`: one per
        shard of its alerts, and an empty one for each other shard the group had a row
        for (what it told there is over)."""
        if not isinstance(conn, PgWrite):
            raise TypeError("the cluster's notification log writes through a PgWrite")
        split: dict[int, tuple[set[str], set[str]]] = {
            shard: (set(), set()) for shard in self._rows.get((route, group_key), {})
        }
        for fps, part in ((firing, 0), (resolved, 1)):
            for fp in fps:
                shard = self._shard_of(fp)
                if shard is not None:
                    split.setdefault(shard, (set(), set()))[part].add(fp)
        entries = {s: NflogEntry(frozenset(f), frozenset(r), now) for s, (f, r) in split.items()}
        if not entries:
            return
        gid = (route, group_key)

        def apply(db: Connection[Any], leases: Mapping[int, Lease]) -> None:
            with db.cursor() as cur:
                cur.executemany(
                    _UPSERT_NFLOG,
                    [
                        (
                            escape_text(route),
                            escape_text(group_key),
                            shard,
                            json.dumps(sorted(e.firing)),
                            json.dumps(sorted(e.resolved)),
                            e.sent_at,
                            leases[shard].epoch,
                        )
                        for shard, e in entries.items()
                    ],
                )

        conn.label = f"{route} {group_key}"
        conn.shards.update(entries)
        conn.ops.append(apply)
        conn.on_commit.append(lambda: self._rows.setdefault(gid, {}).update(entries))

    def adopt(self, rows: Sequence[tuple[str, str, int, NflogEntry]]) -> None:
        """Takes the rows of shards just taken over (:func:`read_nflog`)."""
        for route, key, shard, entry in rows:
            self._rows.setdefault((route, key), {})[shard] = entry

    def forget(self, shards: Collection[int]) -> None:
        """Drops the rows of shards this node lost."""
        lost = set(shards)
        for gid in list(self._rows):
            rows = self._rows[gid]
            for shard in lost & rows.keys():
                del rows[shard]
            if not rows:
                del self._rows[gid]

    def prune(self, cutoff: float, *, live: Any, after: int, limit: int) -> tuple[int, int | None]:
        """Nothing yet: the cluster's notification log is not pruned (docs/cluster.md)."""
        return 0, None


class PgMailOutbox:
    """The mail queue of a cluster node (see the module docstring).

    Args:
        pg: The sender side's connection to the outbox tables (used in a worker thread).
        state: The node's state writer; mails are queued as its writes.
        max_age: ``[smtp].max_age``: mails older than this are counted as stale.
        batch: Mails claimed at a time.
        poll: Seconds between two looks for mails queued by other nodes or given back.
        clock: Wall-clock seconds.
    """

    def __init__(
        self,
        pg: PgOutbox,
        state: ClusterState,
        *,
        max_age: float = 3600.0,
        batch: int = 100,
        poll: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pg = pg
        self.state = state
        self.max_age = max_age
        self.batch = batch
        self.poll = poll
        self.clock = clock
        self.on_ready: Callable[[], None] | None = None  # the sender's wake-up
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="cluster-mail")
        # claimed and not attempted yet: the claim, the mail, when it was claimed (monotonic)
        self._claimed: dict[int, tuple[Claimed, OutboxEntry, float]] = {}
        self._queued: set[str] = set()  # Message-IDs handed to the state writer, not committed
        self._threads: dict[str, str] = {}  # group key -> its open episode's root
        self._updates = 0  # results being written back
        self._kick = asyncio.Event()
        self._depth = 0
        self._oldest: float | None = None
        self._stale = 0
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._more = False  # the last look for due mails found as many as it asked for
        self.duplicates_risked = 0  # mails sent whose claim had run out (StaleClaimError)

    # --- queueing (the mailer, the canary) --------------------------------------------------

    def enqueue(
        self,
        message: EmailMessage,
        recipients: Sequence[str] | None = None,
        *,
        now: float | None = None,
        thread: tuple[str, str] | None = None,
        also: Callable[[Any], None] | None = None,
        on_done: Callable[[bool], None] | None = None,
    ) -> int | None:
        """As :meth:`Outbox.enqueue <netalert.mail.outbox.Outbox.enqueue>`; always held
        until the state writer commits it (returns None)."""
        return enqueue_message(
            self.enqueue_raw,
            message,
            recipients,
            now=now,
            thread=thread,
            also=also,
            on_done=on_done,
        )

    def enqueue_raw(
        self,
        data: bytes,
        *,
        sender: str,
        recipients: Sequence[str],
        message_id: str = "",
        subject: str = "",
        now: float | None = None,
        thread: tuple[str, str] | None = None,
        also: Callable[[Any], None] | None = None,
        on_done: Callable[[bool], None] | None = None,
    ) -> int | None:
        """Queues the mail with what ``also`` writes (the notification log), fenced by
        the leases of its alerts' shards, in the state writer's next transaction.

        Returns:
            None: the mail is committed later (``on_done(True)``), or refused with a
            lost shard (``on_done(False)``).

        Raises:
            MailError: No recipient.
        """
        unique = tuple(dict.fromkeys(r.strip() for r in recipients if r.strip()))
        if not unique:
            raise MailError(f"message {message_id or subject!r} has no recipient")
        at = self.clock() if now is None else now
        write = PgWrite()
        if also is not None:
            also(write)
        row = MailRow(message_id, data, sender, unique, subject, at, write.label, "mail")
        claim = (self.pg.node, self.pg.claim_for)
        claimed: list[Claimed] = []  # set by the write, in the worker thread

        def queue(conn: Connection[Any], leases: Mapping[int, Lease]) -> None:
            # claimed by this node in the same transaction: sent without looking for it
            got = mail_write(conn, leases, row, claim=claim)
            claimed[:] = [] if got is None else [got]

        write.ops.append(queue)
        if thread is not None:  # the episode's root, for whichever node mails the next one
            key, root = thread
            write.ops.append(lambda conn, leases: thread_write(conn, key, root, at))
        self._queued.add(message_id)

        def done(committed: bool) -> None:
            self._queued.discard(message_id)
            if committed:
                for callback in write.on_commit:
                    callback()
                if thread is not None:
                    self._threads[thread[0]] = thread[1]
                if claimed:
                    self._hold(claimed[0], row)
                else:  # not this node's to send (yet): found with the others' mails
                    self._kick.set()
            if on_done is not None:
                on_done(committed)

        self.state.write(
            Extra(frozenset(write.shards), write.apply),
            on_commit=lambda: done(True),
            on_refused=lambda: done(False),
        )
        return None

    def _hold(self, claim: Claimed, row: MailRow) -> None:
        """A mail this node queued and claimed in one transaction: the sender's at once."""
        entry = OutboxEntry(
            id=claim.id,
            message_id=row.message_id,
            sender=row.sender,
            recipients=row.recipients,
            data=row.data,
            subject=row.subject,
            created=row.created,
            attempts=0,
            next_attempt=row.created,
            last_error="",
            stale=False,
        )
        self._claimed[claim.id] = (claim, entry, time.monotonic())
        if self.on_ready is not None:
            self.on_ready()

    def thread_root(self, group_key: str) -> str | None:
        """The first Message-ID of the group's open episode, as this node recorded it or
        read it with a shard it took over (:meth:`adopt_threads`)."""
        return self._threads.get(group_key)

    def adopt_threads(self, roots: Mapping[str, str]) -> None:
        """Takes the thread roots as stored (:func:`read_threads`): the episodes other
        nodes began, whose next mail this node may send."""
        self._threads.update(roots)

    def holds(self, message_id: str) -> bool:
        """Whether this node still has the mail in hand (queued, or claimed and not sent)."""
        return message_id in self._queued or any(
            entry.message_id == message_id for _, entry, _ in self._claimed.values()
        )

    def prune_threads(
        self, cutoff: float, *, live: AbstractSet[str], after: int, limit: int
    ) -> tuple[int, int | None]:
        """Thread roots of groups no longer live, forgotten (they live in memory only)."""
        for key in [k for k in self._threads if k not in live]:
            del self._threads[key]
        return 0, None

    # --- sending (the sender) ----------------------------------------------------------------

    def due(self, now: float, limit: int = 100) -> list[OutboxEntry]:
        """Mails this node claimed and has not attempted yet (all due), oldest first.

        A mail claimed more than half its claim ago (the sender was held off) is given
        back, not attempted: its claim could run out during the attempt, and another
        node send it too.
        """
        late = time.monotonic() - self.pg.claim_for / 2
        for row_id in [i for i, (_, _, at) in self._claimed.items() if at < late]:
            claim, _, _ = self._claimed.pop(row_id)
            self._background(self.pg.release, claim)
        entries = [entry for _, entry, _ in self._claimed.values()][:limit]
        if self._more and len(self._claimed) < self.batch:
            self._kick.set()  # the last look found a full batch: there may be more now
        return entries

    def _background(self, call: Callable[..., object], *args: Any) -> None:
        """``call(*args)`` in the worker thread, after what is queued there; not awaited."""
        self._updates += 1
        future = asyncio.get_running_loop().run_in_executor(self._pool, call, *args)
        future.add_done_callback(self._written_back)

    def record(
        self,
        entry: OutboxEntry,
        results: Sequence[RecipientResult],
        *,
        error: str,
        retry_at: float,
        now: float | None = None,
    ) -> bool:
        """Writes one attempt's results back under the claim (in the worker thread);
        returns True when the mail is done (every recipient accepted or refused for good)."""
        claimed = self._claimed.pop(entry.id, None)
        pending = set(entry.recipients)
        for result in results:
            if result.accepted or result.permanent:
                pending.discard(result.address)
        leaves = not pending
        if claimed is None:
            return leaves
        claim = claimed[0]
        rest = [r for r in entry.recipients if r in pending]
        reply = error or "250 accepted: " + ", ".join(r.address for r in results if r.accepted)
        self._background(self._write_back, claim, leaves, rest, reply, retry_at)
        return leaves

    def _write_back(
        self, claim: Claimed, leaves: bool, rest: list[str], reply: str, retry_at: float
    ) -> None:
        try:
            if leaves:
                self.pg.mark_sent(claim, reply)
            else:
                self.pg.retry_later(claim, rest, next_attempt=retry_at, error=reply)
        except StaleClaimError as exc:
            self.duplicates_risked += 1
            log.warning(event("cluster_mail_claim_lost", message_id=claim.message_id, error=exc))
        except (psycopg.Error, OSError) as exc:
            # the claim runs out and another sender takes the mail: maybe sent twice
            self.duplicates_risked += leaves
            log.warning(
                event("cluster_mail_result_unsaved", message_id=claim.message_id, error=exc)
            )
            self.pg.close()

    def _written_back(self, future: asyncio.Future[object]) -> None:
        self._updates -= 1
        if self._more:
            self._kick.set()
        if not future.cancelled() and future.exception() is not None:
            log.warning(event("cluster_mail_release_failed", error=future.exception()))

    def mark_stale(self, now: float, max_age: float) -> list[OutboxEntry]:
        """Nothing is flagged: stale mails are counted (:meth:`stale_count`) from the table."""
        self.max_age = max_age
        return []

    def next_due(self) -> float | None:
        """Now when this node holds claimed mails; else None (it is woken when it gets some)."""
        return self.clock() if self._claimed else None

    def pending(self) -> int:
        """Mails not yet sent by any node, as last read, plus this node's not yet committed."""
        return self._depth + len(self._queued)

    def stale_count(self) -> int:
        """Unsent mails older than ``[smtp].max_age``, as last read."""
        return self._stale

    def oldest_created(self) -> float | None:
        """When the oldest unsent mail was queued, as last read."""
        return self._oldest

    async def synced(self) -> None:
        """At once: a PostgreSQL commit is durable when it returns."""

    def settled(self) -> bool:
        """True when this node has nothing in hand: no mail uncommitted, claimed or being
        written back (what the drain waits for; other nodes' mails are theirs)."""
        return not self._queued and not self._claimed and not self._updates

    # --- the claiming task -------------------------------------------------------------------

    def start(self) -> None:
        """Starts claiming in the background."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster-mail")

    async def stop(self) -> None:
        """Stops claiming, gives back what was claimed and not attempted, closes."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        claimed = [claim for claim, _, _ in self._claimed.values()]
        self._claimed.clear()
        with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
            for claim in claimed:  # given back: another sender takes them at once
                await self._call(self.pg.release, claim)
        self.pg.interrupt()
        closing = asyncio.get_running_loop().run_in_executor(self._pool, self.pg.close)
        await asyncio.wait({closing}, timeout=_CALL_TIMEOUT)
        self._pool.shutdown(wait=False)

    async def _call(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` in the worker thread; its connection is broken when it hangs
        past :data:`_CALL_TIMEOUT` (a silent network), so it fails instead."""
        future = asyncio.get_running_loop().run_in_executor(self._pool, call, *args)
        while True:
            done, _ = await asyncio.wait({future}, timeout=_CALL_TIMEOUT)
            if done:
                return future.result()
            self.pg.interrupt()

    async def _run(self) -> None:
        next_summary = 0.0
        while True:
            try:
                wanted = self.batch - len(self._claimed)
                if wanted > 0:
                    got = await self._call(self.pg.claim_due, wanted, self.clock())
                    self._more = len(got) >= wanted
                    at = time.monotonic()
                    for claim, entry in got:
                        self._claimed[entry.id] = (claim, entry, at)
                    if got and self.on_ready is not None:
                        self.on_ready()
                if time.monotonic() >= next_summary:
                    next_summary = time.monotonic() + 1.0
                    summary = await self._call(self.pg.summary, self.max_age, self.clock())
                    self._depth, self._oldest, self._stale = summary
                if self._failing:
                    log.info(event("cluster_mail_reconnected", node=self.pg.node))
                self._failing = False
            except (psycopg.Error, OSError) as exc:
                if not self._failing:
                    log.warning(event("cluster_mail_failed", node=self.pg.node, error=exc))
                self._failing = True
                await self._call(self.pg.close)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout=self.poll)
            self._kick.clear()
