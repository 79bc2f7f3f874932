"""Bounded caches of the trap path: what is the same trap after trap is worked out once.

A device sends the same kinds of trap again and again (``linkDown`` of
``ifIndex`` 3, then of 3 again): the rules its trap OID matches (their plan,
:mod:`~netalert.rules.trapplan`), the varbinds' index decoded through the MIB, an
alert's labels, fingerprint and key, and where each name comes from in a list of
varbinds (its layout), are the same each time. The trap rules
(:class:`~netalert.rules.trapflow.TrapRules`) keep them in four least-recently-used
caches of ``[limits] trap_cache_entries`` entries each,
one set per rule set (a reload starts empty ones). A hit gives exactly what
working it out again would (tests compare the two); past the bound the least
recently used entry is dropped and counted in :data:`TRAP_CACHE_STATS`
(``netalert_trap_cache_evictions_total``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["CACHES", "TRAP_CACHE_ENTRIES", "TRAP_CACHE_STATS", "Lru", "TrapCacheStats"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

TRAP_CACHE_ENTRIES = 4096  # [limits] trap_cache_entries: entries of each cache
# the caches of the trap path, by the name the metric's ``cache`` label shows
CACHES = ("matches", "index", "labels", "layouts")


@dataclass(slots=True)
class TrapCacheStats:
    """Entries dropped from the trap path's caches past their bound, by cache."""

    evicted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CACHES, 0))


TRAP_CACHE_STATS = TrapCacheStats()


class Lru(Generic[K, V]):
    """A dict of at most ``bound`` entries that drops the least recently used one."""

    __slots__ = ("_bound", "_data", "_name", "_stats")

    def __init__(self, name: str, bound: int, stats: TrapCacheStats = TRAP_CACHE_STATS) -> None:
        if bound < 1:
            raise ValueError(f"an LRU bound must be at least 1, not {bound}")
        self._name, self._bound, self._stats = name, bound, stats
        self._data: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    @property
    def bound(self) -> int:
        """The most entries kept."""
        return self._bound

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recently used), or None."""
        data = self._data
        value = data.get(key)
        if value is not None:
            data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        """Stores ``value`` under ``key``, dropping the least recently used entry past the
        bound; returns ``value``."""
        data = self._data
        data[key] = value
        if len(data) > self._bound:
            data.popitem(last=False)
            self._stats.evicted[self._name] += 1
        return value
