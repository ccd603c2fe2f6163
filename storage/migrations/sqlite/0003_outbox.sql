-- 0003: the outbox of Slack messages, delivered exactly once.

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    key          TEXT    NOT NULL UNIQUE,   -- idempotency key
    kind         TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    thread_key   TEXT    NOT NULL DEFAULT '',
    update_key   TEXT    NOT NULL DEFAULT '',
    payload      BLOB    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'pending',
    last_error   TEXT    NOT NULL DEFAULT '',
    ts           TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    sent_at      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox (state, next_attempt) WHERE state = 'pending';
