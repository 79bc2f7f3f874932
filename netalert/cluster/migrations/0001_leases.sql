-- netalert cluster schema 1: the nodes and the shard leases with their fencing epochs.

-- Values every node must agree on (the shard count).
CREATE TABLE cluster_settings (
    key text PRIMARY KEY,
    value text NOT NULL
);

-- One row per node; a node is live while expires is in the future (the database's clock).
CREATE TABLE cluster_nodes (
    node text PRIMARY KEY,
    started timestamptz NOT NULL DEFAULT now(),
    heartbeat timestamptz NOT NULL DEFAULT now(),
    expires timestamptz NOT NULL
);

-- One row per shard. A shard is owned by node while expires is in the future; epoch grows
-- by one at every change of owner, and every write under the lease must carry it.
CREATE TABLE shard_leases (
    shard integer PRIMARY KEY CHECK (shard >= 0),
    node text,
    epoch bigint NOT NULL DEFAULT 0,
    expires timestamptz NOT NULL DEFAULT '-infinity',
    acquired timestamptz,
    renewed timestamptz
);

CREATE INDEX shard_leases_node ON shard_leases (node);
