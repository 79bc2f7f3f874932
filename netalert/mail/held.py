"""What the outbox has written only in memory while the database cannot take writes.

The outbox's reads come from SQLite; this view corrects them for the writes the
state writer still holds: messages enqueued but not yet committed (they count as
pending, their Message-ID is "in the outbox", a thread root they start is known),
and entries whose delivery result is not yet committed (they are not attempted
again, and those the result removes no longer count as pending).

Each item belongs to one held write and leaves when that write is committed or
shed (so they are bounded by the writer's ``max_held``), with one exception: a
delivery result whose write is shed stays in :attr:`HeldView.unwritten` until it
is written again (:meth:`netalert.mail.outbox.Outbox.rewrite_results`). The mail
went out; forgetting that would send it a second time. There is at most one
such result per entry of the outbox, whose rows are on disk.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from netalert.mail.entries import OutboxEntry, RecipientResult

__all__ = ["HeldView", "Unwritten"]


@dataclass(frozen=True, slots=True)
class Unwritten:
    """An attempt's results whose write was shed: written again once the disk takes writes."""

    entry: OutboxEntry
    results: Sequence[RecipientResult]
    error: str
    retry_at: float
    at: float


class HeldView:
    """The outbox's held writes, as the reads must see them."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._messages: dict[int, tuple[str, tuple[str, str] | None]] = {}
        self._by_message_id: Counter[str] = Counter()
        self._threads: dict[str, tuple[int, str]] = {}  # group key -> (token, root)
        self.settling: set[int] = set()  # entry ids whose attempt result is held
        self._leaving: set[int] = set()  # ... and that result removes the entry
        self.unwritten: dict[int, Unwritten] = {}  # entry id -> a result whose write was shed

    @property
    def messages(self) -> int:
        """Messages enqueued in memory only."""
        return len(self._messages)

    @property
    def leaving(self) -> int:
        """Stored entries that a held result removes."""
        return len(self._leaving)

    def add_message(self, message_id: str, thread: tuple[str, str] | None) -> int:
        """Notes a message about to be enqueued; returns the token :meth:`drop_message` takes."""
        token = next(self._ids)
        self._messages[token] = (message_id, thread)
        self._by_message_id[message_id] += 1
        if thread is not None:
            self._threads[thread[0]] = (token, thread[1])
        return token

    def drop_message(self, token: int) -> None:
        """The enqueue is committed (or shed): the database answers for it now."""
        found = self._messages.pop(token, None)
        if found is None:
            return
        message_id, thread = found
        self._by_message_id[message_id] -= 1
        if self._by_message_id[message_id] <= 0:
            del self._by_message_id[message_id]
        if thread is not None and self._threads.get(thread[0], (0, ""))[0] == token:
            del self._threads[thread[0]]

    def has_message(self, message_id: str) -> bool:
        """Whether a message with this Message-ID is enqueued in memory."""
        return message_id in self._by_message_id

    def thread_root(self, group_key: str) -> str | None:
        """The thread root a held message starts for ``group_key``, if any."""
        found = self._threads.get(group_key)
        return None if found is None else found[1]

    def settle(self, entry_id: int, *, leaves: bool) -> None:
        """Notes that the result of an attempt at ``entry_id`` is being written."""
        self.settling.add(entry_id)
        if leaves:
            self._leaving.add(entry_id)

    def settled(self, entry_id: int) -> None:
        """The result is committed: the database answers for the entry now."""
        self.settling.discard(entry_id)
        self._leaving.discard(entry_id)

    def shed(self, result: Unwritten) -> None:
        """The result's write was shed: the entry stays settling until it is written again."""
        self.unwritten[result.entry.id] = result

    def take_unwritten(self) -> list[Unwritten]:
        """The shed results, oldest first, no longer settling (each is about to be recorded
        again, which settles it anew)."""
        taken = sorted(self.unwritten.values(), key=lambda u: u.at)
        self.unwritten = {}
        for result in taken:
            self.settled(result.entry.id)
        return taken
