-- netalert cluster schema 2: alert state, one row per alert, each in its device's shard.

-- The columns of SQLite's table `alerts` (JSON kept as text, so both read back the same),
-- plus the shard (of the device name, the stable hash) whose lease fences every write.
CREATE TABLE alerts (
    fingerprint text PRIMARY KEY,
    shard integer NOT NULL CHECK (shard >= 0),
    lookup_key text NOT NULL,
    rule text NOT NULL,
    severity text NOT NULL,
    device text NOT NULL,
    labels text NOT NULL,
    annotations text NOT NULL,
    state text NOT NULL,
    starts_at double precision NOT NULL,
    ends_at double precision,
    updated_at double precision NOT NULL,
    value text NOT NULL,
    count bigint NOT NULL,
    flapping integer NOT NULL,
    silenced integer NOT NULL,
    source text NOT NULL,
    varbinds text NOT NULL,
    engine text NOT NULL,
    -- the fencing epoch of the lease the row was last written under
    epoch bigint NOT NULL
);

CREATE INDEX alerts_shard ON alerts (shard);
CREATE INDEX alerts_state ON alerts (state);
