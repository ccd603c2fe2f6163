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
	"time"
)

// HourBucket is one hour of a relay's summary.
type HourBucket struct {
	Hour     time.Time // start of the UTC hour
	Attempts int
	Failures int
}

// RelaySummary is a relay's history over a window, for reports and
// status.
type RelaySummary struct {
	Relay    string
	Attempts int
	Failures int
	// ByClass counts failures per failure class.
	ByClass map[string]int
	// MedianHandshakeMS is the median TLS handshake time of successful
	// probes (0 without any); over rolled-up hours it is approximated from
	// the hourly medians.
	MedianHandshakeMS float64
	// LastSuccess, LastFailure and LastFailureClass are the latest before
	// the window's end, inside the window or not (hour precision once
	// rolled up).
	LastSuccess      time.Time
	LastFailure      time.Time
	LastFailureClass string
	// Hourly has one bucket per hour of the window, oldest first.
	Hourly []HourBucket
}

const hourMS = int64(time.Hour / time.Millisecond)

// floorHour returns the start of v's UTC hour, v in ms.
func floorHour(v int64) int64 {
	h := v / hourMS * hourMS
	if h > v {
		h -= hourMS
	}
	return h
}

// watermark returns the rollup watermark: raw rows before it have been
// rolled up (0 when nothing has).
func watermark(ctx context.Context, q querier) (int64, error) {
	var v string
	err := q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'rollup_watermark'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

// Summary returns per relay (every relay not retired, plus retired relays
// with results in the window) the figures of [since, until), by name. Raw
// rows serve the recent part of the window and hourly rollups the part
// older than the raw retention.
func (s *Store) Summary(ctx context.Context, since, until time.Time) ([]RelaySummary, error) {
	if !until.After(since) {
		return nil, fmt.Errorf("storage: summary: the window ends (%s) before it starts (%s)", until.Format(time.RFC3339), since.Format(time.RFC3339))
	}
	from, to := ms(since), ms(until)
	firstHour := floorHour(from)
	nHours := int((to-1-firstHour)/hourMS) + 1
	var out []RelaySummary
	err := s.read(ctx, "summarise history", func(tx *sql.Tx) error {
		wm, err := watermark(ctx, tx)
		if err != nil {
			return err
		}
		type relayRow struct {
			id      int64
			name    string
			retired bool
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, name, retired FROM relays ORDER BY name`)
		if err != nil {
			return err
		}
		var relays []relayRow
		for rows.Next() {
			var r relayRow
			if err := rows.Scan(&r.id, &r.name, &r.retired); err != nil {
				rows.Close()
				return err
			}
			relays = append(relays, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rawFrom := max(from, wm)
		for _, r := range relays {
			sum := RelaySummary{Relay: r.name, ByClass: map[string]int{}, Hourly: make([]HourBucket, nHours)}
			for i := range sum.Hourly {
				sum.Hourly[i].Hour = fromMS(firstHour + int64(i)*hourMS)
			}
			hist := map[int64]float64{} // handshake tenths -> weight
			if rawFrom < to {
				if err := s.summariseRaw(ctx, tx, r.id, rawFrom, to, firstHour, &sum, hist); err != nil {
					return fmt.Errorf("relay %q: %w", r.name, err)
				}
			}
			if from < wm {
				if err := summariseRollups(ctx, tx, r.id, firstHour, min(to, wm), firstHour, &sum, hist); err != nil {
					return fmt.Errorf("relay %q: %w", r.name, err)
				}
			}
			sum.MedianHandshakeMS = median(hist) / 10
			if err := lastOutcomes(ctx, tx, r.id, to, &sum); err != nil {
				return fmt.Errorf("relay %q: %w", r.name, err)
			}
			if r.retired && sum.Attempts == 0 {
				continue
			}
			out = append(out, sum)
		}
		return nil
	})
	return out, err
}

func (s *Store) summariseRaw(ctx context.Context, tx *sql.Tx, relayID, from, to, firstHour int64, sum *RelaySummary, hist map[int64]float64) error {
	rows, err := tx.QueryContext(ctx, `SELECT started_at / ? AS h, ok, failure, count(*) FROM results
		WHERE relay_id = ? AND started_at >= ? AND started_at < ? GROUP BY h, ok, failure`,
		hourMS, relayID, from, to)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var h int64
		var ok bool
		var failure sql.NullString
		var n int
		if err := rows.Scan(&h, &ok, &failure, &n); err != nil {
			return err
		}
		i := int((h*hourMS - firstHour) / hourMS)
		sum.Attempts += n
		if i >= 0 && i < len(sum.Hourly) {
			sum.Hourly[i].Attempts += n
		}
		if !ok {
			sum.Failures += n
			sum.ByClass[failure.String] += n
			if i >= 0 && i < len(sum.Hourly) {
				sum.Hourly[i].Failures += n
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, `SELECT t_handshake, count(*) FROM results
		WHERE relay_id = ? AND started_at >= ? AND started_at < ? AND ok = 1 AND t_handshake IS NOT NULL
		GROUP BY t_handshake`, relayID, from, to)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var v int64
		var n float64
		if err := rows.Scan(&v, &n); err != nil {
			return err
		}
		hist[v] += n
	}
	return rows.Err()
}

func summariseRollups(ctx context.Context, tx *sql.Tx, relayID, from, to, firstHour int64, sum *RelaySummary, hist map[int64]float64) error {
	rows, err := tx.QueryContext(ctx, `SELECT hour, attempts, failures, by_class, p50_handshake, successes_timed
		FROM rollups WHERE relay_id = ? AND hour >= ? AND hour < ?`, relayID, from, to)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var h, p50 int64
		var attempts, failures, timed int
		var byClass string
		if err := rows.Scan(&h, &attempts, &failures, &byClass, &p50, &timed); err != nil {
			return err
		}
		i := int((h - firstHour) / hourMS)
		sum.Attempts += attempts
		sum.Failures += failures
		if i >= 0 && i < len(sum.Hourly) {
			sum.Hourly[i].Attempts += attempts
			sum.Hourly[i].Failures += failures
		}
		if failures > 0 {
			var m map[string]int
			if err := json.Unmarshal([]byte(byClass), &m); err != nil {
				return fmt.Errorf("rollup of %s: %w", fromMS(h).Format(time.RFC3339), err)
			}
			for k, v := range m {
				sum.ByClass[k] += v
			}
		}
		if timed > 0 && p50 > 0 {
			hist[p50] += float64(timed)
		}
	}
	return rows.Err()
}

// lastOutcomes fills the latest success and failure before to.
func lastOutcomes(ctx context.Context, tx *sql.Tx, relayID, to int64, sum *RelaySummary) error {
	var at int64
	var class sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT started_at FROM results WHERE relay_id = ? AND started_at < ? AND ok = 1
		ORDER BY started_at DESC LIMIT 1`, relayID, to).Scan(&at)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	sum.LastSuccess = fromMS(at)
	at = 0
	err = tx.QueryRowContext(ctx, `SELECT started_at, failure FROM results WHERE relay_id = ? AND ok = 0 AND started_at < ?
		ORDER BY started_at DESC LIMIT 1`, relayID, to).Scan(&at, &class)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	sum.LastFailure, sum.LastFailureClass = fromMS(at), class.String
	if !sum.LastSuccess.IsZero() && !sum.LastFailure.IsZero() {
		return nil
	}
	var okAt, failAt int64
	var failClass string
	err = tx.QueryRowContext(ctx, `SELECT last_ok_at, last_fail_at, last_fail_class FROM rollup_last WHERE relay_id = ?`, relayID).
		Scan(&okAt, &failAt, &failClass)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if sum.LastSuccess.IsZero() && okAt < to {
		sum.LastSuccess = fromMS(okAt)
	}
	if sum.LastFailure.IsZero() && failAt < to {
		sum.LastFailure, sum.LastFailureClass = fromMS(failAt), failClass
	}
	return nil
}

// median returns the weighted median of a histogram (0 when empty).
func median(hist map[int64]float64) float64 {
	var total float64
	for _, w := range hist {
		total += w
	}
	if total == 0 {
		return 0
	}
	keys := slices.Sorted(maps.Keys(hist))
	half := total / 2
	var acc float64
	for i, k := range keys {
		acc += hist[k]
		if acc > half {
			return float64(k)
		}
		if acc == half && i+1 < len(keys) {
			return float64(k+keys[i+1]) / 2
		}
	}
	return float64(keys[len(keys)-1])
}
