-- 0007: the Gmail-bound mail queue of agent relays, sampled beside their
-- probes. Escalation's queue rule reads it (so a restart loses nothing),
-- and evidence shows it. Deleted with raw results (retention.raw).
CREATE TABLE queue_samples (
    id           INTEGER PRIMARY KEY,
    relay_id     INTEGER NOT NULL REFERENCES relays(id),
    at           INTEGER NOT NULL,
    deferred     INTEGER NOT NULL,
    oldest_age_s INTEGER NOT NULL,
    recipients   INTEGER NOT NULL DEFAULT 0,
    top_reason   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX queue_samples_relay_time ON queue_samples (relay_id, at);
CREATE INDEX queue_samples_time ON queue_samples (at);
