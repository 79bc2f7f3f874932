"""Several nodes sharing PostgreSQL and NATS JetStream (``[cluster]``, docs/cluster.md).

* :mod:`~netalert.cluster.schema`: the PostgreSQL schema, versioned migrations in
  ``migrations/``;
* :mod:`~netalert.cluster.shards`: which shard a device is in, each node's fair share;
* :mod:`~netalert.cluster.leases`: shard leases with fencing epochs, heartbeats,
  rebalancing; :mod:`~netalert.cluster.fence`: writes refused under a stale lease;
* :mod:`~netalert.cluster.codec`, :mod:`~netalert.cluster.transport`: traps over
  JetStream, stored once per message ID, acknowledged after the owner's commit;
* :mod:`~netalert.cluster.status`: ``netalert cluster status``;
  :mod:`~netalert.cluster.metrics`: the ``/metrics`` source.

Nothing here is imported without ``[cluster]``.
"""
