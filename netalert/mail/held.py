"""What the outbox has written only in memory while the database cannot take writes.

The outbox's reads come from SQLite; this view corrects them for the writes the
state writer still holds: messages enqueued but not yet committed (they count as
pending, their Message-ID is "in the outbox", a thread root they start is known),
and entries whose delivery result is not yet committed (they are not attempted
again, and those the result removes no longer count as pending).

Everything here is bounded by the writer's ``max_held``: each item belongs to one
held write and leaves when that write is committed or shed.
"""

from __future__ import annotations

import itertools
from collections import Counter

__all__ = ["HeldView"]


class HeldView:
    """The outbox's held writes, as the reads must see them."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._messages: dict[int, tuple[str, tuple[str, str] | None]] = {}
        self._by_message_id: Counter[str] = Counter()
        self._threads: dict[str, tuple[int, str]] = {}  # group key -> (token, root)
        self.settling: set[int] = set()  # entry ids whose attempt result is held
        self._leaving: set[int] = set()  # ... and that result removes the entry

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
        """The result is committed (or shed): the database answers for the entry now."""
        self.settling.discard(entry_id)
        self._leaving.discard(entry_id)
