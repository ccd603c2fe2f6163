package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RollupStats reports what one retention pass did.
type RollupStats struct {
	// RelayHours is how many relay × hour slices of raw results were
	// rolled up; Rolled how many raw results they held (all deleted).
	RelayHours int
	Rolled     int
	// RunsDeleted counts probe runs left without results and removed.
	RunsDeleted int
	// RollupsDeleted counts hourly rollups older than the rollup retention;
	// HourlyDeleted the per-relay hourly counts behind summaries.
	RollupsDeleted int
	HourlyDeleted  int
	// Deleted audit entries and delivered outbox messages past the rollup
	// retention, and the alert models of incidents resolved before it.
	AuditDeleted       int
	MessagesDeleted    int
	AlertModelsDeleted int
	// QueueSamplesDeleted counts agents' queue samples past the raw
	// retention.
	QueueSamplesDeleted int
	// LogSamplesDeleted counts mail log samples past the raw retention.
	LogSamplesDeleted int
	// Watermark: raw results before it are now all rolled up.
	Watermark time.Time
}

// batchRows bounds the rows one retention transaction deletes, so that
// the write lock is never held for long.
const batchRows = 2000

// Rollup applies retention: raw results older than rawBefore (rounded
// down to the hour) become hourly aggregates per relay × MX and are
// deleted, one relay-hour per transaction, and so are queue samples;
// rollups, audit entries, delivered outbox messages older than
// rollupBefore and the alert models of incidents resolved before it (the
// incidents themselves stay) are deleted in small batches. Other writers
// get the lock between transactions. It stops at ctx's end, leaving the
// database consistent; the next call continues.
func (s *Store) Rollup(ctx context.Context, rawBefore, rollupBefore time.Time) (RollupStats, error) {
	var st RollupStats
	cutoff := floorHour(ms(rawBefore))
	var relayIDs []int64
	err := s.read(ctx, "retention", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM relays ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			relayIDs = append(relayIDs, id)
		}
		return rows.Err()
	})
	if err != nil {
		return st, err
	}
	for _, id := range relayIDs {
		for {
			n, err := s.rollupOneHour(ctx, id, cutoff)
			if err != nil {
				return st, err
			}
			if n == 0 {
				break
			}
			st.RelayHours++
			st.Rolled += n
		}
	}
	err = s.write(ctx, "retention", func(tx *sql.Tx) error {
		wm, err := watermark(ctx, tx)
		if err != nil {
			return err
		}
		wm = max(wm, cutoff)
		st.Watermark = fromMS(wm)
		_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('rollup_watermark', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.FormatInt(wm, 10))
		return err
	})
	if err != nil {
		return st, err
	}
	oldRollups := floorHour(ms(rollupBefore))
	steps := []struct {
		n   *int
		sql string
		arg int64
	}{
		{&st.RunsDeleted, `DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE started_at < ?
			AND NOT EXISTS (SELECT 1 FROM results WHERE run_id = runs.id) LIMIT ` + strconv.Itoa(batchRows) + `)`, cutoff},
		{&st.RollupsDeleted, `DELETE FROM rollups WHERE (relay_id, hour, mx_id) IN (SELECT relay_id, hour, mx_id
			FROM rollups WHERE hour < ? LIMIT ` + strconv.Itoa(batchRows) + `)`, oldRollups},
		{&st.HourlyDeleted, `DELETE FROM hourly WHERE (relay_id, hour, ok, failure) IN (SELECT relay_id, hour, ok, failure
			FROM hourly WHERE hour < ? LIMIT ` + strconv.Itoa(batchRows) + `)`, oldRollups},
		{&st.QueueSamplesDeleted, `DELETE FROM queue_samples WHERE id IN (SELECT id FROM queue_samples WHERE at < ? LIMIT ` + strconv.Itoa(batchRows) + `)`, cutoff},
		{&st.LogSamplesDeleted, `DELETE FROM log_samples WHERE id IN (SELECT id FROM log_samples WHERE at < ? LIMIT ` + strconv.Itoa(batchRows) + `)`, cutoff},
		{&st.AuditDeleted, `DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ? LIMIT ` + strconv.Itoa(batchRows) + `)`, ms(rollupBefore)},
		{&st.MessagesDeleted, `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE state <> 'pending' AND created_at < ?
			LIMIT ` + strconv.Itoa(batchRows) + `)`, ms(rollupBefore)},
		{&st.AlertModelsDeleted, `DELETE FROM alert_models WHERE incident_id IN (SELECT m.incident_id FROM alert_models m
			JOIN incidents i ON i.id = m.incident_id WHERE i.resolved_at <> 0 AND i.resolved_at < ? LIMIT ` + strconv.Itoa(batchRows) + `)`, ms(rollupBefore)},
	}
	for _, step := range steps {
		for {
			var n int64
			err := s.write(ctx, "retention", func(tx *sql.Tx) error {
				res, err := tx.ExecContext(ctx, step.sql, step.arg)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return st, err
			}
			*step.n += int(n)
			if n < batchRows {
				break
			}
		}
	}
	if st.Rolled > 0 || st.RollupsDeleted > 0 {
		s.log.Info("storage: retention applied", s.dialect.noun(), s.path, "relay_hours", st.RelayHours, "rolled_up", st.Rolled,
			"runs_deleted", st.RunsDeleted, "rollups_deleted", st.RollupsDeleted, "watermark", st.Watermark)
	}
	return st, nil
}

// hourAgg accumulates one relay × MX × hour.
type hourAgg struct {
	attempts, failures int
	byClass            map[string]int
	handshakes         []int64
	lastOK, lastFail   int64
	lastFailClass      string
}

// rollupOneHour rolls up the oldest hour of relayID's raw results before
// cutoff in one transaction and returns how many rows it held (0: none
// left).
func (s *Store) rollupOneHour(ctx context.Context, relayID, cutoff int64) (int, error) {
	var n int
	err := s.write(ctx, "retention", func(tx *sql.Tx) error {
		var first sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT min(started_at) FROM results WHERE relay_id = ? AND started_at < ?`,
			relayID, cutoff).Scan(&first); err != nil {
			return err
		}
		if !first.Valid {
			return nil
		}
		h := floorHour(first.Int64)
		end := min(h+hourMS, cutoff)
		aggs := map[int64]*hourAgg{}
		rows, err := tx.QueryContext(ctx, `SELECT p.mx_id, r.ok, r.failure, r.t_handshake, r.started_at
			FROM results r JOIN paths p ON p.id = r.path_id
			WHERE r.relay_id = ? AND r.started_at >= ? AND r.started_at < ?`, relayID, h, end)
		if err != nil {
			return err
		}
		for rows.Next() {
			var mx, at int64
			var ok bool
			var failure sql.NullString
			var hs sql.NullInt64
			if err := rows.Scan(&mx, &ok, &failure, &hs, &at); err != nil {
				rows.Close()
				return err
			}
			a := aggs[mx]
			if a == nil {
				a = &hourAgg{byClass: map[string]int{}}
				aggs[mx] = a
			}
			n++
			a.attempts++
			if ok {
				a.lastOK = max(a.lastOK, at)
				if hs.Valid && hs.Int64 > 0 {
					a.handshakes = append(a.handshakes, hs.Int64)
				}
			} else {
				a.failures++
				a.byClass[failure.String]++
				if at >= a.lastFail {
					a.lastFail, a.lastFailClass = at, failure.String
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var lastOK, lastFail int64
		var lastFailClass string
		for _, mx := range slices.Sorted(maps.Keys(aggs)) {
			a := aggs[mx]
			if err := mergeRollup(ctx, tx, relayID, h, mx, a); err != nil {
				return err
			}
			lastOK = max(lastOK, a.lastOK)
			if a.lastFail > lastFail {
				lastFail, lastFailClass = a.lastFail, a.lastFailClass
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO rollup_last (relay_id, last_ok_at, last_fail_at, last_fail_class)
			VALUES (?1, ?2, ?3, ?4) ON CONFLICT (relay_id) DO UPDATE SET
				last_ok_at = CASE WHEN ?2 > rollup_last.last_ok_at THEN ?2 ELSE rollup_last.last_ok_at END,
				last_fail_class = CASE WHEN ?3 > rollup_last.last_fail_at THEN ?4 ELSE rollup_last.last_fail_class END,
				last_fail_at = CASE WHEN ?3 > rollup_last.last_fail_at THEN ?3 ELSE rollup_last.last_fail_at END`,
			relayID, lastOK, lastFail, lastFailClass); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM results WHERE relay_id = ? AND started_at >= ? AND started_at < ?`, relayID, h, end)
		return err
	})
	return n, err
}

// mergeRollup writes one relay × MX × hour aggregate, adding to a rollup
// already there (results recorded late): counts add up, percentiles are
// weighted.
func mergeRollup(ctx context.Context, tx *sql.Tx, relayID, hour, mx int64, a *hourAgg) error {
	slices.Sort(a.handshakes)
	p50, p95 := percentile(a.handshakes, 50), percentile(a.handshakes, 95)
	timed := len(a.handshakes)
	var oldAttempts, oldFailures, oldTimed int
	var oldClass string
	var oldP50, oldP95 int64
	err := tx.QueryRowContext(ctx, `SELECT attempts, failures, by_class, p50_handshake, p95_handshake, successes_timed
		FROM rollups WHERE relay_id = ? AND hour = ? AND mx_id = ?`, relayID, hour, mx).
		Scan(&oldAttempts, &oldFailures, &oldClass, &oldP50, &oldP95, &oldTimed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	default:
		var m map[string]int
		if err := json.Unmarshal([]byte(oldClass), &m); err != nil {
			return fmt.Errorf("rollup of %s: %w", fromMS(hour).Format(time.RFC3339), err)
		}
		for k, v := range m {
			a.byClass[k] += v
		}
		a.attempts += oldAttempts
		a.failures += oldFailures
		if t := timed + oldTimed; t > 0 {
			p50 = (p50*int64(timed) + oldP50*int64(oldTimed)) / int64(t)
			p95 = (p95*int64(timed) + oldP95*int64(oldTimed)) / int64(t)
		}
		timed += oldTimed
	}
	b, err := json.Marshal(a.byClass)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO rollups (hour, relay_id, mx_id, attempts, failures, by_class,
		p50_handshake, p95_handshake, successes_timed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (relay_id, hour, mx_id) DO UPDATE SET attempts = excluded.attempts, failures = excluded.failures,
			by_class = excluded.by_class, p50_handshake = excluded.p50_handshake,
			p95_handshake = excluded.p95_handshake, successes_timed = excluded.successes_timed`,
		hour, relayID, mx, a.attempts, a.failures, string(b), p50, p95, timed)
	return err
}

// percentile returns the nearest-rank p-th percentile of sorted values.
func percentile(sorted []int64, p int) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}

// Rollup is one stored hourly aggregate, for reports over long windows.
type Rollup struct {
	Hour               time.Time
	Relay, MX          string
	Attempts, Failures int
	ByClass            map[string]int
	P50HandshakeMS     float64
	P95HandshakeMS     float64
}

// Rollups returns the hourly aggregates of [since, until), oldest first.
func (s *Store) Rollups(ctx context.Context, since, until time.Time) ([]Rollup, error) {
	var out []Rollup
	err := s.read(ctx, "read rollups", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT u.hour, r.name, m.name, u.attempts, u.failures, u.by_class,
			u.p50_handshake, u.p95_handshake FROM rollups u JOIN relays r ON r.id = u.relay_id
			JOIN mx_hosts m ON m.id = u.mx_id WHERE u.hour >= ? AND u.hour < ? ORDER BY u.hour, r.name, m.name`,
			floorHour(ms(since)), ms(until))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r Rollup
			var h, p50, p95 int64
			var byClass string
			if err := rows.Scan(&h, &r.Relay, &r.MX, &r.Attempts, &r.Failures, &byClass, &p50, &p95); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(byClass), &r.ByClass); err != nil {
				return err
			}
			r.Hour, r.P50HandshakeMS, r.P95HandshakeMS = fromMS(h), float64(p50)/10, float64(p95)/10
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}

// Backup writes a consistent copy of a SQLite database to dst with VACUUM
// INTO, while readers and writers carry on. dst must not exist. On
// PostgreSQL it refuses with an error wrapping [ErrBackupPostgres]: pg_dump
// backs a PostgreSQL database up.
func (s *Store) Backup(ctx context.Context, dst string) error {
	return s.dialect.backup(ctx, s, dst)
}

// IntegrityCheck asks the engine to check the database (SQLite: PRAGMA
// integrity_check and foreign_key_check; PostgreSQL checks its pages and
// foreign keys itself, so there only that the tables are readable); any
// finding is an error wrapping ErrCorrupt.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	var problems []string
	err := s.read(ctx, "check integrity", func(tx *sql.Tx) error {
		var err error
		problems, err = s.dialect.integrity(ctx, tx)
		return err
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("storage: check %s: %w: %s; restore a backup", s.path, ErrCorrupt, strings.Join(problems, "; "))
	}
	return nil
}
