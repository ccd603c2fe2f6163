-- 0002: hourly rollups of raw results older than the raw retention.

CREATE TABLE rollups (
    hour             BIGINT NOT NULL,  -- ms since the epoch, start of the UTC hour
    relay_id         BIGINT NOT NULL REFERENCES relays(id),
    mx_id            BIGINT NOT NULL REFERENCES mx_hosts(id),
    attempts         BIGINT NOT NULL,
    failures         BIGINT NOT NULL,
    by_class         TEXT    NOT NULL DEFAULT '{}',  -- JSON {"tls_reset": 2}
    p50_handshake    BIGINT NOT NULL DEFAULT 0,     -- tenths of a ms, successes only
    p95_handshake    BIGINT NOT NULL DEFAULT 0,
    successes_timed  BIGINT NOT NULL DEFAULT 0,     -- successes behind the percentiles
    PRIMARY KEY (relay_id, hour, mx_id)
);
CREATE INDEX rollups_hour ON rollups (hour);

-- Per relay, the last success and failure among rows already rolled up,
-- so that status can name them after the raw rows are gone.
CREATE TABLE rollup_last (
    relay_id        BIGINT PRIMARY KEY REFERENCES relays(id),
    last_ok_at      BIGINT NOT NULL DEFAULT 0,
    last_fail_at    BIGINT NOT NULL DEFAULT 0,
    last_fail_class TEXT    NOT NULL DEFAULT ''
);

-- Key/value state of the store, e.g. the rollup watermark.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
