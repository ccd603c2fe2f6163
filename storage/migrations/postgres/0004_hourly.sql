-- 0004: per relay × hour outcome counts, kept up to date on every insert,
-- so that status and reports need not scan raw results. Kept as long as
-- the rollups.

CREATE TABLE hourly (
    relay_id      BIGINT NOT NULL,
    hour          BIGINT NOT NULL,  -- ms since the epoch, start of the UTC hour
    ok            BIGINT NOT NULL,
    failure       TEXT    NOT NULL,  -- '' for successes
    n             BIGINT NOT NULL,
    p50_handshake BIGINT NOT NULL DEFAULT 0,  -- successes: median handshake, tenths of a ms
    timed         BIGINT NOT NULL DEFAULT 0,  -- successes behind p50_handshake
    PRIMARY KEY (relay_id, hour, ok, failure)
);

-- SQLite's version backfills the table from the rollups and raw results
-- of databases older than this migration. A PostgreSQL database is always
-- created at this version or later (or filled by "gmailtls storage copy"
-- after its migrations), so those tables are empty here: schema only.
