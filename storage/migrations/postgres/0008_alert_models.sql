-- 0008: the alert model of an incident gets a table of its own.

-- The alerts package rebuilds an alert's updates (acknowledged, muted,
-- risen, resolved) from a model of the alert: level, scope, advice, the
-- failing results, the confirming re-probes, the transcript. Until now it
-- kept that model only in the meta of an outbox payload (of the alert,
-- key 'alert:<id>', or of its latest level update, key
-- 'alert:<id>:level:<level>'), where it went with the delivered message at
-- retention. One row per incident; the model is the alerts package's
-- JSON, opaque to storage.
CREATE TABLE alert_models (
    incident_id BIGINT PRIMARY KEY REFERENCES incidents(id),
    model       TEXT    NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- SQLite's version then fills the table from the meta of outbox payloads
-- of databases older than this migration. A PostgreSQL database is always
-- created at this version or later, so there is nothing to move here:
-- schema only.
