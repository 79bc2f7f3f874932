-- netalert cluster schema 4: the agent's notification log and the envelope of queued mail.

-- What each aggregation group was last told, one row per shard of its alerts: a node reads
-- the rows of the shards it holds (their union is the group's log), and writes them under
-- those shards' leases, in the transaction of the mail.
CREATE TABLE nflog (
    route text NOT NULL,
    group_key text NOT NULL,
    shard integer NOT NULL CHECK (shard >= 0),
    firing text NOT NULL,
    resolved text NOT NULL,
    sent_at double precision NOT NULL,
    epoch bigint NOT NULL,
    PRIMARY KEY (route, group_key, shard)
);

CREATE INDEX nflog_shard ON nflog (shard);

-- The envelope and the retry state of a queued mail (any node's sender may send it).
ALTER TABLE outbox
    ADD COLUMN sender text NOT NULL DEFAULT '',
    ADD COLUMN recipients text NOT NULL DEFAULT '',
    ADD COLUMN subject text NOT NULL DEFAULT '',
    ADD COLUMN created double precision NOT NULL DEFAULT extract(epoch FROM now()),
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt double precision NOT NULL DEFAULT 0,
    ADD COLUMN last_error text NOT NULL DEFAULT '';
