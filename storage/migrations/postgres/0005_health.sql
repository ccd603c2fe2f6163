-- One row that /healthz rewrites to prove the database is writable.
CREATE TABLE health (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    checked_at BIGINT NOT NULL
);
