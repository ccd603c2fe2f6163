package storage

import (
	"context"
	"database/sql"
	"time"
)

// LogSample is what a relay's own mail log said toward the target over a
// window ending At, as the monitor sums it beside a probe.
type LogSample struct {
	Relay  string
	At     time.Time
	Window time.Duration // stored in whole seconds
	// TLSFailures, ConnectFailures and Delivered are toward the target's
	// MX addresses.
	TLSFailures, ConnectFailures, Delivered int
	// Stuck counts Gmail-bound queue IDs deferred and not delivered;
	// DeliveredLater those delivered after a failure.
	Stuck, DeliveredLater int
}

// RecordLogSample stores one mail log sample of a configured relay.
func (s *Store) RecordLogSample(ctx context.Context, l LogSample) error {
	if l.At.IsZero() {
		l.At = s.now()
	}
	return s.write(ctx, "record mail log sample", func(tx *sql.Tx) error {
		id, err := s.relayID(ctx, tx, l.Relay)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO log_samples (relay_id, at, window_s, tls_failures, connect_failures,
				delivered, stuck, delivered_later) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			id, ms(l.At), int64(l.Window/time.Second), l.TLSFailures, l.ConnectFailures, l.Delivered, l.Stuck, l.DeliveredLater)
		return err
	})
}

// LogSamples returns the mail log samples taken at or after since, oldest
// first: of one relay, or of every relay when relay is "". At most
// perRelayLimit samples per relay are returned, the newest ones
// (perRelayLimit <= 0 means 100).
func (s *Store) LogSamples(ctx context.Context, relay string, since time.Time, perRelayLimit int) ([]LogSample, error) {
	if perRelayLimit <= 0 {
		perRelayLimit = 100
	}
	var out []LogSample
	err := s.readOne(ctx, "read mail log samples", func(tx querier) error {
		rows, err := tx.QueryContext(ctx, `SELECT name, at, window_s, tls_failures, connect_failures, delivered, stuck, delivered_later FROM (
				SELECT r.name, l.at, l.window_s, l.tls_failures, l.connect_failures, l.delivered, l.stuck, l.delivered_later, l.id,
					ROW_NUMBER() OVER (PARTITION BY l.relay_id ORDER BY l.at DESC, l.id DESC) AS n
				FROM log_samples l JOIN relays r ON r.id = l.relay_id
				WHERE l.at >= ? AND (? = '' OR r.name = ?))
			AS ranked WHERE n <= ? ORDER BY at, id`, ms(since), relay, relay, perRelayLimit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var l LogSample
			var at, win int64
			if err := rows.Scan(&l.Relay, &at, &win, &l.TLSFailures, &l.ConnectFailures, &l.Delivered, &l.Stuck, &l.DeliveredLater); err != nil {
				return err
			}
			l.At, l.Window = fromMS(at), time.Duration(win)*time.Second
			out = append(out, l)
		}
		return rows.Err()
	})
	return out, err
}
