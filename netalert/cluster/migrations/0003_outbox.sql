-- netalert cluster schema 3: the notification log and the outbox of mails to send.

-- One row per notification (an alert transition to be mailed), written under its shard's
-- lease; message_id is fixed here, so every attempt at the mail carries the same one.
CREATE TABLE notification_log (
    id bigserial PRIMARY KEY,
    shard integer NOT NULL CHECK (shard >= 0),
    epoch bigint NOT NULL,
    fingerprint text NOT NULL,
    transition text NOT NULL,
    message_id text NOT NULL UNIQUE,
    created timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX notification_log_fingerprint ON notification_log (fingerprint);

-- The mail of a notification until an SMTP server accepted it. A sender claims a row for a
-- while (claimed_by, claim_expires); claim counts the claims and fences mark-sent: a sender
-- whose claim ran out and was taken over cannot mark the row any more.
CREATE TABLE outbox (
    id bigint PRIMARY KEY REFERENCES notification_log (id) ON DELETE CASCADE,
    message bytea NOT NULL,
    sent timestamptz,
    smtp_reply text,
    claim bigint NOT NULL DEFAULT 0,
    claimed_by text,
    claim_expires timestamptz NOT NULL DEFAULT '-infinity'
);

CREATE INDEX outbox_unsent ON outbox (id) WHERE sent IS NULL;
