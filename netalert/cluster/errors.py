"""The cluster's errors, under netalert's one root."""

from __future__ import annotations

from netalert.errors import NetalertError

__all__ = ["ClusterError", "CodecError", "SchemaError", "StaleLeaseError"]


class ClusterError(NetalertError):
    """The shared PostgreSQL or NATS cannot be used as the cluster needs."""


class SchemaError(ClusterError):
    """The database's schema is not one this version can use (newer, or a shard count
    other than the config's)."""


class StaleLeaseError(ClusterError):
    """A write under a lease that is no longer current was refused (fencing).

    ``shard`` and ``epoch`` are the refused writer's; ``current_node`` and
    ``current_epoch`` what the database holds now (``None`` when the shard is free).
    """

    def __init__(
        self, shard: int, node: str, epoch: int, current_node: str | None, current_epoch: int
    ) -> None:
        self.shard = shard
        self.node = node
        self.epoch = epoch
        self.current_node = current_node
        self.current_epoch = current_epoch
        holder = current_node if current_node is not None else "nobody"
        super().__init__(
            f"shard {shard}: write refused: epoch {epoch} of {node} is not the current lease "
            f"(epoch {current_epoch}, held by {holder})"
        )


class CodecError(ClusterError, ValueError):
    """A message on the trap stream is not a trap this version can read.

    ``reason`` names why, as ``netalert_cluster_traps_rejected_total`` counts it:
    ``too_large``, ``not_json``, ``wrong_version`` or ``malformed``.
    """

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason
