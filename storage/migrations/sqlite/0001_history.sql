-- 0001: relays, probe runs and results, escalation events, incidents, audit.
-- Times are INTEGER milliseconds since the Unix epoch (UTC); 0 means unset.
-- Timings are INTEGER tenths of a millisecond.

CREATE TABLE relays (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    kind         TEXT    NOT NULL DEFAULT '',
    url          TEXT    NOT NULL DEFAULT '',
    source_ips   TEXT    NOT NULL DEFAULT '[]',   -- JSON array
    retired      INTEGER NOT NULL DEFAULT 0,
    paused_until INTEGER NOT NULL DEFAULT 0,
    paused_by    TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- Interned MX host names.
CREATE TABLE mx_hosts (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- Interned probe paths: relay × source IP × MX × address × port × SNI name.
CREATE TABLE paths (
    id         INTEGER PRIMARY KEY,
    relay_id   INTEGER NOT NULL REFERENCES relays(id),
    mx_id      INTEGER NOT NULL REFERENCES mx_hosts(id),
    preference INTEGER NOT NULL,
    ip         TEXT    NOT NULL,
    port       INTEGER NOT NULL,
    source_ip  TEXT    NOT NULL,
    servername TEXT    NOT NULL,
    UNIQUE (relay_id, mx_id, preference, ip, port, source_ip, servername)
);

-- Interned negotiated TLS parameters.
CREATE TABLE tls_params (
    id       INTEGER PRIMARY KEY,
    version  TEXT    NOT NULL,
    cipher   TEXT    NOT NULL,
    grp      TEXT    NOT NULL,
    variant  TEXT    NOT NULL,
    verified INTEGER NOT NULL,
    UNIQUE (version, cipher, grp, variant, verified)
);

-- Interned peer certificate chains (JSON), keyed by SHA-256 of the JSON.
CREATE TABLE cert_chains (
    id    INTEGER PRIMARY KEY,
    hash  BLOB NOT NULL UNIQUE,
    chain TEXT NOT NULL
);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    relay_id     INTEGER NOT NULL REFERENCES relays(id),
    trigger      TEXT    NOT NULL,
    requested_by TEXT    NOT NULL DEFAULT '',
    started_at   INTEGER NOT NULL
);
CREATE INDEX runs_relay_time ON runs (relay_id, started_at);
CREATE INDEX runs_time ON runs (started_at);

-- One row per MX × IP × source probe. NULL columns cost nothing, so a
-- successful result stores only ids, the time and the timings.
CREATE TABLE results (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    relay_id    INTEGER NOT NULL,
    path_id     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    ok          INTEGER NOT NULL,
    stage       TEXT,
    failure     TEXT,
    engine      TEXT,
    error       TEXT,
    smtp_code   INTEGER,
    smtp_text   TEXT,
    tls_id      INTEGER,
    cert_id     INTEGER,
    t_dns       INTEGER,
    t_connect   INTEGER,
    t_banner    INTEGER,
    t_ehlo      INTEGER,
    t_starttls  INTEGER,
    t_handshake INTEGER,
    t_post_tls  INTEGER,
    t_total     INTEGER,
    hints       TEXT,   -- JSON array, NULL when empty
    transcript  BLOB    -- deflated JSON array; failures and the newest success per relay × MX
);
-- Covering index for summaries, per-relay history and escalation input.
CREATE INDEX results_relay_time ON results (relay_id, started_at, ok, failure, t_handshake);
CREATE INDEX results_time ON results (started_at);
CREATE INDEX results_run ON results (run_id);
CREATE INDEX results_failures ON results (relay_id, started_at, failure) WHERE ok = 0;

-- The result whose transcript is kept as the newest success per relay × MX.
CREATE TABLE newest_success (
    relay_id  INTEGER NOT NULL,
    mx_id     INTEGER NOT NULL,
    result_id INTEGER NOT NULL,
    PRIMARY KEY (relay_id, mx_id)
) WITHOUT ROWID;

CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    relay_id   INTEGER REFERENCES relays(id),   -- NULL: across relays
    from_level TEXT    NOT NULL,
    to_level   TEXT    NOT NULL,
    scope      TEXT    NOT NULL DEFAULT '',
    advice     TEXT    NOT NULL DEFAULT '',
    evidence   TEXT    NOT NULL DEFAULT '[]',    -- JSON array of result ids
    at         INTEGER NOT NULL
);
CREATE INDEX events_relay ON events (relay_id, id);

CREATE TABLE incidents (
    id            INTEGER PRIMARY KEY,
    relay_id      INTEGER REFERENCES relays(id), -- NULL: across relays
    level         TEXT    NOT NULL,
    scope         TEXT    NOT NULL DEFAULT '',
    opened_at     INTEGER NOT NULL,
    acked_at      INTEGER NOT NULL DEFAULT 0,
    acked_by      TEXT    NOT NULL DEFAULT '',
    resolved_at   INTEGER NOT NULL DEFAULT 0,
    muted_until   INTEGER NOT NULL DEFAULT 0,
    last_reminder INTEGER NOT NULL DEFAULT 0,
    alert_channel TEXT    NOT NULL DEFAULT '',
    alert_ts      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX incidents_open ON incidents (resolved_at, id);

CREATE TABLE audit (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    user_id    TEXT    NOT NULL DEFAULT '',
    user_name  TEXT    NOT NULL DEFAULT '',
    channel_id TEXT    NOT NULL DEFAULT '',
    source     TEXT    NOT NULL DEFAULT '',
    text       TEXT    NOT NULL DEFAULT '',
    outcome    TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_time ON audit (at);
