-- netalert cluster schema 6: what every node shares beyond the shards: silences and the
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

-- [ack] on cluster nodes: the tables of SQLite's ack component, shared; the node holding
-- the mailbox lock reads the replies, every node reads `acks` every `silence_refresh`.
CREATE TABLE ack_tokens (
    nid text PRIMARY KEY,
    message_id text NOT NULL,
    subject text NOT NULL,
    alerts text NOT NULL,
    expires double precision NOT NULL,
    created double precision NOT NULL
);

CREATE INDEX ack_tokens_expires ON ack_tokens (expires);

CREATE TABLE ack_used (
    nid text NOT NULL,
    command text NOT NULL,
    at double precision NOT NULL,
    PRIMARY KEY (nid, command)
);

CREATE TABLE acks (
    fingerprint text PRIMARY KEY,
    starts_at double precision NOT NULL,
    author text NOT NULL,
    at double precision NOT NULL,
    comment text NOT NULL,
    via text NOT NULL
);

CREATE TABLE ack_mailbox (
    folder text PRIMARY KEY,
    uidvalidity bigint NOT NULL,
    last_uid bigint NOT NULL
);

-- Secrets every node must share: the HMAC key of the reply tokens ("ack_key") when
-- [ack] secret_file is not set.
CREATE TABLE cluster_secrets (
    name text PRIMARY KEY,
    value text NOT NULL
);
