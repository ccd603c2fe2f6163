package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/gmailtls/gmailtls/chart"
)

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
	// Hourly has the figures of every hour of the window, oldest first,
	// each with the start of its UTC hour. The type is chart's input (see
	// package chart), so reports draw it as it comes.
	Hourly []chart.HourFigures
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
// with results in the window) the figures of [since, until), by name.
// Whole hours come from the hourly counts kept on every insert; the
// partial hours at the window's edges from raw results (or, once those
// are rolled up, from their whole hour). The median handshake is exact
// over raw edges and weighted from hourly medians elsewhere.
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
		// Split the window into raw edges and whole hours.
		type span struct {
			from, to int64
			raw      bool
		}
		var spans []span
		add := func(a, b int64) { // a partial span inside one or two hours
			if a >= b {
				return
			}
			if a >= wm {
				spans = append(spans, span{a, b, true})
			} else {
				spans = append(spans, span{floorHour(a), b, false})
			}
		}
		fullStart, fullEnd := floorHour(from), floorHour(to)
		if fullStart < from {
			fullStart += hourMS
		}
		if fullStart >= fullEnd {
			add(from, to)
		} else {
			add(from, fullStart)
			spans = append(spans, span{fullStart, fullEnd, false})
			add(fullEnd, to)
		}
		// Every span is read for all relays at once (a few queries, not
		// a few per relay: each is a round trip on PostgreSQL), a chunk
		// of relays at a time.
		sums := make([]RelaySummary, len(relays))
		hists := make([]map[int64]float64, len(relays)) // handshake tenths -> weight
		index := make(map[int64]int, len(relays))
		for i, r := range relays {
			sum := RelaySummary{Relay: r.name, ByClass: map[string]int{}, Hourly: make([]chart.HourFigures, nHours)}
			for j := range sum.Hourly {
				sum.Hourly[j].Hour = fromMS(firstHour + int64(j)*hourMS)
			}
			sums[i], hists[i], index[r.id] = sum, map[int64]float64{}, i
		}
		for chunk := range slices.Chunk(relays, maxParams/2) {
			ids := make([]any, len(chunk))
			for i, r := range chunk {
				ids[i] = r.id
			}
			for _, sp := range spans {
				var err error
				if sp.raw {
					err = summariseRaw(ctx, tx, ids, sp.from, sp.to, firstHour, index, sums, hists)
				} else {
					err = summariseHourly(ctx, tx, ids, sp.from, sp.to, firstHour, index, sums, hists)
				}
				if err != nil {
					return err
				}
			}
		}
		if err := lastOutcomes(ctx, tx, s.dialect.lastFailureHint(), to, index, sums); err != nil {
			return err
		}
		for i, r := range relays {
			sum := &sums[i]
			sum.MedianHandshakeMS = median(hists[i]) / 10
			if r.retired && sum.Attempts == 0 {
				continue
			}
			out = append(out, *sum)
		}
		return nil
	})
	return out, err
}

// count adds n outcomes at hour h (ms) to sum.
func (sum *RelaySummary) count(h, firstHour int64, ok bool, failure string, n int) {
	i := int((h - firstHour) / hourMS)
	sum.Attempts += n
	if i >= 0 && i < len(sum.Hourly) {
		sum.Hourly[i].Attempts += n
	}
	if !ok {
		sum.Failures += n
		sum.ByClass[failure] += n
		if i >= 0 && i < len(sum.Hourly) {
			sum.Hourly[i].Failures += n
		}
	}
}

// summariseRaw counts the raw results of relays ids in [from, to) into
// their sums (index maps a relay id to its place in sums and hists).
func summariseRaw(ctx context.Context, tx *sql.Tx, ids []any, from, to, firstHour int64, index map[int64]int,
	sums []RelaySummary, hists []map[int64]float64) error {
	rows, err := tx.QueryContext(ctx, `SELECT relay_id, started_at, ok, failure, t_handshake FROM results
		WHERE relay_id IN (`+placeholders(len(ids))+`) AND started_at >= ? AND started_at < ?`, append(ids, from, to)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var relayID, at int64
		var ok bool
		var failure sql.NullString
		var hs sql.NullInt64
		if err := rows.Scan(&relayID, &at, &ok, &failure, &hs); err != nil {
			return err
		}
		i := index[relayID]
		sums[i].count(floorHour(at), firstHour, ok, failure.String, 1)
		if ok && hs.Int64 > 0 {
			hists[i][hs.Int64]++
		}
	}
	return rows.Err()
}

// summariseHourly counts the hourly figures of relays ids in [from, to)
// into their sums, as summariseRaw does.
func summariseHourly(ctx context.Context, tx *sql.Tx, ids []any, from, to, firstHour int64, index map[int64]int,
	sums []RelaySummary, hists []map[int64]float64) error {
	rows, err := tx.QueryContext(ctx, `SELECT relay_id, hour, ok, failure, n, p50_handshake, timed FROM hourly
		WHERE relay_id IN (`+placeholders(len(ids))+`) AND hour >= ? AND hour < ?`, append(ids, from, to)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var relayID, h, p50, timed int64
		var ok bool
		var failure string
		var n int
		if err := rows.Scan(&relayID, &h, &ok, &failure, &n, &p50, &timed); err != nil {
			return err
		}
		i := index[relayID]
		sums[i].count(h, firstHour, ok, failure, n)
		if ok && timed > 0 && p50 > 0 {
			hists[i][p50] += float64(timed)
		}
	}
	return rows.Err()
}

// lastOutcomes fills every relay's latest success and failure before to,
// from the raw results or else from what retention kept of the rolled-up
// ones, in one query (index as for summariseRaw). hint is the dialect's
// index hint for the latest failure.
func lastOutcomes(ctx context.Context, tx *sql.Tx, hint string, to int64, index map[int64]int, sums []RelaySummary) error {
	rows, err := tx.QueryContext(ctx, `SELECT x.id, x.ok_at, f.started_at, f.failure,
			u.last_ok_at, u.last_fail_at, u.last_fail_class
		FROM (SELECT r.id,
				(SELECT started_at FROM results WHERE relay_id = r.id AND started_at < ?1 AND ok = 1
				 ORDER BY started_at DESC LIMIT 1) AS ok_at,
				(SELECT id FROM results `+hint+` WHERE relay_id = r.id AND ok = 0 AND started_at < ?1
				 ORDER BY started_at DESC LIMIT 1) AS fail_id
			FROM relays r) AS x
		LEFT JOIN results f ON f.id = x.fail_id
		LEFT JOIN rollup_last u ON u.relay_id = x.id`, to)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var relayID int64
		var okAt, failAt, rolledOK, rolledFail sql.NullInt64
		var class, rolledClass sql.NullString
		if err := rows.Scan(&relayID, &okAt, &failAt, &class, &rolledOK, &rolledFail, &rolledClass); err != nil {
			return err
		}
		i, ok := index[relayID]
		if !ok {
			continue
		}
		sum := &sums[i]
		sum.LastSuccess = fromMS(okAt.Int64)
		sum.LastFailure, sum.LastFailureClass = fromMS(failAt.Int64), class.String
		if !rolledOK.Valid {
			continue
		}
		if sum.LastSuccess.IsZero() && rolledOK.Int64 < to {
			sum.LastSuccess = fromMS(rolledOK.Int64)
		}
		if sum.LastFailure.IsZero() && rolledFail.Int64 < to {
			sum.LastFailure, sum.LastFailureClass = fromMS(rolledFail.Int64), rolledClass.String
		}
	}
	return rows.Err()
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
