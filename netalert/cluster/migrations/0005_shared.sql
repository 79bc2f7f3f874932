-- netalert cluster schema 5: what every node shares beyond the shards: silences and the
-- thread roots of mail episodes.

-- The columns of SQLite's table `silences` (the matchers as JSON): `netalert silence`
-- on any node writes here, and every node reads it every `silence_refresh`.
CREATE TABLE silences (
    id text PRIMARY KEY,
    matchers text NOT NULL,
    starts_at double precision NOT NULL,
    ends_at double precision NOT NULL,
    comment text NOT NULL,
    author text NOT NULL,
    created_at double precision NOT NULL
);

CREATE INDEX silences_ends ON silences (ends_at);

-- The Message-ID the open episode of each group began with, written in the transaction
-- of that first mail: a follow-up mailed by another node (the shard moved) replies to it.
CREATE TABLE mail_threads (
    group_key text PRIMARY KEY,
    root text NOT NULL,
    updated double precision NOT NULL
);

CREATE INDEX mail_threads_updated ON mail_threads (updated);

-- The clean-up finds the sent mails by when they were sent.
CREATE INDEX outbox_sent ON outbox (sent) WHERE sent IS NOT NULL;
