-- 0004: per relay × hour outcome counts, kept up to date on every insert,
-- so that status and reports need not scan raw results. Kept as long as
-- the rollups.

CREATE TABLE hourly (
    relay_id      INTEGER NOT NULL,
    hour          INTEGER NOT NULL,  -- ms since the epoch, start of the UTC hour
    ok            INTEGER NOT NULL,
    failure       TEXT    NOT NULL,  -- '' for successes
    n             INTEGER NOT NULL,
    p50_handshake INTEGER NOT NULL DEFAULT 0,  -- successes: median handshake, tenths of a ms
    timed         INTEGER NOT NULL DEFAULT 0,  -- successes behind p50_handshake
    PRIMARY KEY (relay_id, hour, ok, failure)
) WITHOUT ROWID;

-- Backfill from the rollups and from the raw results.
INSERT INTO hourly (relay_id, hour, ok, failure, n, p50_handshake, timed)
SELECT relay_id, hour, 1, '', sum(attempts - failures),
       CAST(sum(p50_handshake * successes_timed) / max(sum(successes_timed), 1) AS INTEGER), sum(successes_timed)
FROM rollups WHERE attempts > failures GROUP BY relay_id, hour;

INSERT INTO hourly (relay_id, hour, ok, failure, n)
SELECT u.relay_id, u.hour, 0, j.key, sum(j.value)
FROM rollups u, json_each(u.by_class) j WHERE u.failures > 0 GROUP BY u.relay_id, u.hour, j.key;

INSERT INTO hourly (relay_id, hour, ok, failure, n, p50_handshake, timed)
SELECT relay_id, started_at / 3600000 * 3600000 AS h, ok, CASE WHEN ok THEN '' ELSE coalesce(failure, '') END AS f,
       count(*), CAST(coalesce(avg(t_handshake), 0) AS INTEGER), count(t_handshake)
FROM results WHERE true GROUP BY relay_id, h, ok, f
ON CONFLICT (relay_id, hour, ok, failure) DO UPDATE SET n = n + excluded.n,
    p50_handshake = (p50_handshake * timed + excluded.p50_handshake * excluded.timed) / max(timed + excluded.timed, 1),
    timed = timed + excluded.timed;
