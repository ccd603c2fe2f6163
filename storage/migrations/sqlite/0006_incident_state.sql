-- 0006: an incident keeps its current level and who muted it.

-- Who muted the incident (a Slack user id, or a name), with muted_until.
ALTER TABLE incidents ADD COLUMN muted_by TEXT NOT NULL DEFAULT '';

-- Until now an incident kept the level it was opened at, and a rise of an
-- open incident was recorded only as the outbox update of its alert, key
-- 'alert:<id>:level:<level>', whose payload meta is the alert model (with
-- its Scope). Open incidents take the highest level so recorded.
UPDATE incidents SET
    level = 'investigate',
    scope = COALESCE((SELECT json_extract(CAST(o.payload AS TEXT), '$.meta.Scope') FROM outbox o
                      WHERE o.key = 'alert:' || incidents.id || ':level:investigate'
                        AND json_valid(CAST(o.payload AS TEXT))), scope)
WHERE resolved_at = 0 AND level = 'watch'
  AND EXISTS (SELECT 1 FROM outbox WHERE key = 'alert:' || incidents.id || ':level:investigate');

UPDATE incidents SET
    level = 'incident',
    scope = COALESCE((SELECT json_extract(CAST(o.payload AS TEXT), '$.meta.Scope') FROM outbox o
                      WHERE o.key = 'alert:' || incidents.id || ':level:incident'
                        AND json_valid(CAST(o.payload AS TEXT))), scope)
WHERE resolved_at = 0 AND level IN ('watch', 'investigate')
  AND EXISTS (SELECT 1 FROM outbox WHERE key = 'alert:' || incidents.id || ':level:incident');
