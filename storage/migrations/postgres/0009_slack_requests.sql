-- 0009: the replay memory of Slack's HTTP mode.

-- Every signed request the bot accepts leaves two digests here: one of its
-- signature (a replay of the captured request carries the same one) and
-- one of its body (a retry Slack signs anew carries the same body). A
-- digest is kept until expires_at: the signature's until its timestamp is
-- out of Slack's 5-minute window, after which the request is refused as
-- stale anyway; the body's for as long as Slack may retry. Expired rows
-- are deleted as new ones are written, so the table holds minutes of
-- requests, and it survives a restart, which the bot's memory does not.
CREATE TABLE slack_requests (
    digest     BYTEA    PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX slack_requests_expiry ON slack_requests (expires_at);
