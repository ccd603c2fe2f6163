package storage

import (
	"context"
	"database/sql"
	"time"
)

// QueueSample is one reading of a relay's Gmail-bound mail queue, as an
// agent reports it from `postqueue -j`.
type QueueSample struct {
	Relay      string
	At         time.Time
	Deferred   int           // deferred messages with a Gmail recipient
	OldestAge  time.Duration // age of the oldest of them
	Recipients int           // their Gmail recipients
	TopReason  string        // the most common deferral reason, normalised
}

// RecordQueueSample stores one queue reading of a configured relay.
func (s *Store) RecordQueueSample(ctx context.Context, q QueueSample) error {
	if q.At.IsZero() {
		q.At = s.now()
	}
	return s.write(ctx, "record queue sample", func(tx *sql.Tx) error {
		id, err := s.relayID(ctx, tx, q.Relay)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO queue_samples (relay_id, at, deferred, oldest_age_s, recipients, top_reason)
			VALUES (?, ?, ?, ?, ?, ?)`, id, ms(q.At), q.Deferred, int64(q.OldestAge/time.Second), q.Recipients, q.TopReason)
		return err
	})
}

// QueueSamples returns the queue readings taken at or after since, oldest
// first: of one relay, or of every relay when relay is "". At most
// perRelayLimit readings per relay are returned, the newest ones
// (perRelayLimit <= 0 means 100).
func (s *Store) QueueSamples(ctx context.Context, relay string, since time.Time, perRelayLimit int) ([]QueueSample, error) {
	if perRelayLimit <= 0 {
		perRelayLimit = 100
	}
	var out []QueueSample
	err := s.readOne(ctx, "read queue samples", func(tx querier) error {
		rows, err := tx.QueryContext(ctx, `SELECT name, at, deferred, oldest_age_s, recipients, top_reason FROM (
				SELECT r.name, q.at, q.deferred, q.oldest_age_s, q.recipients, q.top_reason, q.id,
					ROW_NUMBER() OVER (PARTITION BY q.relay_id ORDER BY q.at DESC, q.id DESC) AS n
				FROM queue_samples q JOIN relays r ON r.id = q.relay_id
				WHERE q.at >= ? AND (? = '' OR r.name = ?))
			AS ranked WHERE n <= ? ORDER BY at, id`, ms(since), relay, relay, perRelayLimit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var q QueueSample
			var at, age int64
			if err := rows.Scan(&q.Relay, &at, &q.Deferred, &age, &q.Recipients, &q.TopReason); err != nil {
				return err
			}
			q.At, q.OldestAge = fromMS(at), time.Duration(age)*time.Second
			out = append(out, q)
		}
		return rows.Err()
	})
	return out, err
}
