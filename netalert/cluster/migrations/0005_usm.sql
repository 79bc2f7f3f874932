-- netalert cluster schema 5: the SNMPv3 state every node's trap receiver shares.

-- Per sender engine ID, the latest boots and time an authenticated trap carried (the USM
-- time window's reference, RFC 3414 3.2.7 b): a trap replayed to any node is judged by what
-- any node learned. `learned` is when, in the database's clock (epoch seconds); a row only
-- moves forward (a node writes it only with a greater boots and time). `changed` (the
-- database's clock) is what the nodes read the changes by.
CREATE TABLE usm_clocks (
    engine_id bytea PRIMARY KEY,
    boots bigint NOT NULL,
    engine_time bigint NOT NULL,
    learned double precision NOT NULL,
    digest bytea NOT NULL,
    node text NOT NULL,
    changed double precision NOT NULL
);

CREATE INDEX usm_clocks_changed ON usm_clocks (changed);

-- The engine ID each polled device revealed, one row per device: a node polls only its
-- shards' devices, and any node may receive their traps.
CREATE TABLE usm_engines (
    device text PRIMARY KEY,
    engine_id bytea NOT NULL,
    host text NOT NULL,
    port integer NOT NULL,
    user_name text NOT NULL,
    learned double precision NOT NULL,
    node text NOT NULL,
    changed double precision NOT NULL
);

CREATE INDEX usm_engines_changed ON usm_engines (changed);
