-- 0012: the leader lease of serve replicas, and the fenced claim of an
-- outbox message (docs/architecture.md, "Replicas and the leader").
--
-- One row per lease name. token grows by one each time the lease changes
-- hands (or is taken again after it expired); a released lease keeps its
-- row, expired, so tokens never repeat. Times are milliseconds since the
-- epoch by the writing replica's clock.

CREATE TABLE leases (
    name        TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    token       INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL,
    renewed_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- The replica and lease token that last claimed an outbox message for
-- delivery (storage.ClaimMessage), and when; a row per message claimed.
CREATE TABLE outbox_claims (
    message_id  INTEGER PRIMARY KEY REFERENCES outbox (id) ON DELETE CASCADE,
    holder      TEXT    NOT NULL,
    token       INTEGER NOT NULL,
    claimed_at  INTEGER NOT NULL
);
