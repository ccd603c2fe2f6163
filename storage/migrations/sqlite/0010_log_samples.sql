-- 0010: what an agent relay's own mail log said toward the target over a
-- window, sampled beside its probes. Escalation's mail log rules read it
-- (so a restart loses nothing). Deleted with raw results (retention.raw).
CREATE TABLE log_samples (
    id              INTEGER PRIMARY KEY,
    relay_id        INTEGER NOT NULL REFERENCES relays(id),
    at              INTEGER NOT NULL,
    window_s        INTEGER NOT NULL,
    tls_failures    INTEGER NOT NULL,
    connect_failures INTEGER NOT NULL,
    delivered       INTEGER NOT NULL,
    stuck           INTEGER NOT NULL,
    delivered_later INTEGER NOT NULL
);
CREATE INDEX log_samples_relay_time ON log_samples (relay_id, at);
CREATE INDEX log_samples_time ON log_samples (at);
