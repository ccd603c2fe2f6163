-- 0011: the runs whose control destination ([target] control_mx), probed
-- beside the run's Gmail probe through the same relay, failed too.
-- Escalation rebuilds Observation.ControlFailed from it (scope
-- local_infrastructure), so it survives a restart. The control probe's own
-- results are not stored: they are never Gmail results, and so never in
-- history, summaries, status, hourly figures or metrics. Deleted with its
-- run.
CREATE TABLE control_failures (
    run_id BIGINT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE
);
