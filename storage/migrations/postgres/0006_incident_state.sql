-- 0006: an incident keeps its current level and who muted it.

-- Who muted the incident (a Slack user id, or a name), with muted_until.
ALTER TABLE incidents ADD COLUMN muted_by TEXT NOT NULL DEFAULT '';

-- SQLite's version then lifts the level and scope of open incidents of
-- databases older than this migration from their outbox updates. A
-- PostgreSQL database is always created at this version or later, so
-- there is nothing to lift here: schema only.
