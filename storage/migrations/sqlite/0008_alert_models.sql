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
    incident_id INTEGER PRIMARY KEY REFERENCES incidents(id),
    model       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Every incident with a readable model in the outbox takes the newest:
-- that of the update to the highest level, else that of the alert (the
-- order in which the alerts package looked for it).
INSERT INTO alert_models (incident_id, model, updated_at)
WITH found AS (
    SELECT i.id AS incident_id,
           json_extract(CAST(o.payload AS TEXT), '$.meta') AS model,
           o.created_at AS at,
           CASE o.key
               WHEN 'alert:' || i.id || ':level:incident'    THEN 0
               WHEN 'alert:' || i.id || ':level:investigate' THEN 1
               WHEN 'alert:' || i.id || ':level:watch'       THEN 2
               ELSE 3
           END AS rank
    FROM incidents i
    JOIN outbox o ON o.key IN ('alert:' || i.id || ':level:incident', 'alert:' || i.id || ':level:investigate',
                               'alert:' || i.id || ':level:watch', 'alert:' || i.id)
    WHERE json_valid(CAST(o.payload AS TEXT))
      AND json_type(CAST(o.payload AS TEXT), '$.meta') = 'object'
)
SELECT incident_id, model, at FROM found f
WHERE rank = (SELECT MIN(rank) FROM found g WHERE g.incident_id = f.incident_id);
