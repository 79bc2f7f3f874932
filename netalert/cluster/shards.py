"""Which shard a device belongs to, and how many shards each node should own.

Pure functions. The hash is BLAKE2b, not Python's ``hash()`` (salted per process):
every node, every version and every restart must put a device in the same shard,
or two nodes would poll it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["fair_share", "shard_of"]


def shard_of(key: str | bytes, shards: int) -> int:
    """The shard of ``key`` (a device name, or a trap source without a device), 0-based.

    Raises:
        ValueError: ``shards`` is below 1.
    """
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    data = key.encode() if isinstance(key, str) else key
    digest = hashlib.blake2b(data, digest_size=8, person=b"netalert-shard").digest()
    return int.from_bytes(digest, "big") % shards


def fair_share(nodes: Sequence[str], shards: int, node: str) -> int:
    """How many of ``shards`` shards ``node`` should own among the live ``nodes``.

    Every node gets ``shards // len(nodes)``; the first ``shards % len(nodes)``
    nodes in name order get one more, so the shares add up to ``shards`` and no
    two differ by more than one. A node not in ``nodes`` gets 0.
    """
    ordered = sorted(set(nodes))
    if node not in ordered:
        return 0
    base, extra = divmod(shards, len(ordered))
    return base + (1 if ordered.index(node) < extra else 0)
