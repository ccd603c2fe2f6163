package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Outbox message states.
const (
	OutboxPending = "pending"
	OutboxSent    = "sent"
	OutboxFailed  = "failed"
)

// Outbox message kinds.
const (
	KindAlert      = "alert"
	KindResolution = "resolution"
	KindReport     = "report"
	KindReminder   = "reminder"
	KindUpdate     = "update"
)

// OutboxMessage is one Slack message waiting for (or done with) delivery.
// Key is its idempotency key: enqueuing the same key twice keeps one row,
// so a message is delivered once however often it is produced.
type OutboxMessage struct {
	ID      int64
	Key     string
	Kind    string // alert, resolution, report, reminder, update
	Channel string
	// ThreadKey is the key of the message whose ts is this one's thread
	// parent; UpdateKey the key of a message to chat.update instead of
	// posting. Both optional.
	ThreadKey string
	UpdateKey string
	// Payload is opaque to storage (JSON built by the bot).
	Payload     []byte
	Attempts    int
	NextAttempt time.Time
	State       string // pending, sent, failed
	LastError   string
	// TS is the Slack ts once sent. A pending message that Slack gets as
	// several messages (a main message and replies in its thread) has it
	// as soon as its main message went out (MarkPartSent).
	TS        string
	CreatedAt time.Time
	SentAt    time.Time
}

// Enqueue adds a pending message unless one with the same Key exists; it
// returns the id of the row holding the key and whether it was created.
// NextAttempt defaults to now.
func (s *Store) Enqueue(ctx context.Context, m OutboxMessage) (id int64, created bool, err error) {
	if m.Key == "" {
		return 0, false, errors.New("storage: enqueue message: no idempotency key")
	}
	now := s.now()
	if m.NextAttempt.IsZero() {
		m.NextAttempt = now
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	err = s.write(ctx, "enqueue message", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO outbox (key, kind, channel, thread_key, update_key, payload,
			next_attempt, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)
			ON CONFLICT (key) DO NOTHING RETURNING id`,
			m.Key, m.Kind, m.Channel, m.ThreadKey, m.UpdateKey, m.Payload, ms(m.NextAttempt), ms(now)).Scan(&id)
		if err == nil {
			created = true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT id FROM outbox WHERE key = ?`, m.Key).Scan(&id)
	})
	return id, created, err
}

const outboxCols = `SELECT id, key, kind, channel, thread_key, update_key, payload, attempts, next_attempt,
	state, last_error, ts, created_at, sent_at FROM outbox `

func scanOutbox(rows *sql.Rows) ([]OutboxMessage, error) {
	defer rows.Close()
	var out []OutboxMessage
	for rows.Next() {
		var m OutboxMessage
		var next, created, sent int64
		if err := rows.Scan(&m.ID, &m.Key, &m.Kind, &m.Channel, &m.ThreadKey, &m.UpdateKey, &m.Payload, &m.Attempts,
			&next, &m.State, &m.LastError, &m.TS, &created, &sent); err != nil {
			return nil, err
		}
		m.NextAttempt, m.CreatedAt, m.SentAt = fromMS(next), fromMS(created), fromMS(sent)
		out = append(out, m)
	}
	return out, rows.Err()
}

// DueMessages returns pending messages whose next attempt is at or before
// now, in the order they were enqueued; limit <= 0 means 100.
func (s *Store) DueMessages(ctx context.Context, now time.Time, limit int) ([]OutboxMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []OutboxMessage
	err := s.read(ctx, "read due messages", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, outboxCols+`WHERE state = 'pending' AND next_attempt <= ? ORDER BY id LIMIT ?`,
			ms(now), limit)
		if err != nil {
			return err
		}
		out, err = scanOutbox(rows)
		return err
	})
	return out, err
}

// PendingMessages returns the pending messages whose id is above afterID,
// whatever their next attempt, in the order they were enqueued; limit <= 0
// means 100. The outbox worker reads them so, a page at a time (afterID
// the last id of the previous page, 0 for the first): a message in backoff
// holds back the later ones of its channel.
func (s *Store) PendingMessages(ctx context.Context, afterID int64, limit int) ([]OutboxMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []OutboxMessage
	err := s.read(ctx, "read pending messages", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, outboxCols+`WHERE state = 'pending' AND id > ? ORDER BY id LIMIT ?`, afterID, limit)
		if err != nil {
			return err
		}
		out, err = scanOutbox(rows)
		return err
	})
	return out, err
}

// MessageByKey returns the message with an idempotency key; false when
// there is none.
func (s *Store) MessageByKey(ctx context.Context, key string) (OutboxMessage, bool, error) {
	var out []OutboxMessage
	err := s.read(ctx, "read message", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, outboxCols+`WHERE key = ?`, key)
		if err != nil {
			return err
		}
		out, err = scanOutbox(rows)
		return err
	})
	if err != nil || len(out) == 0 {
		return OutboxMessage{}, false, err
	}
	return out[0], true, nil
}

// FailedMessages returns the messages given up on, newest first; limit <= 0
// means 100. `gmailtls status` shows them.
func (s *Store) FailedMessages(ctx context.Context, limit int) ([]OutboxMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []OutboxMessage
	err := s.read(ctx, "read failed messages", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, outboxCols+`WHERE state = 'failed' ORDER BY id DESC LIMIT ?`, limit)
		if err != nil {
			return err
		}
		out, err = scanOutbox(rows)
		return err
	})
	return out, err
}

func (s *Store) updateMessage(ctx context.Context, op string, id int64, set string, args ...any) error {
	return s.write(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET `+set+` WHERE id = ?`, append(args, id)...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: outbox message %d", ErrNotFound, id)
		}
		return nil
	})
}

// MarkSent records a delivered message and its Slack ts.
func (s *Store) MarkSent(ctx context.Context, id int64, ts string) error {
	return s.updateMessage(ctx, "mark message sent", id,
		`state = 'sent', ts = ?, attempts = attempts + 1, last_error = '', sent_at = ?`, ts, ms(s.now()))
}

// MarkRetry records a failed attempt and when to try again.
func (s *Store) MarkRetry(ctx context.Context, id int64, next time.Time, errText string) error {
	return s.updateMessage(ctx, "mark message for retry", id,
		`attempts = attempts + 1, next_attempt = ?, last_error = ?`, ms(next), errText)
}

// MarkFailed gives up on a message (e.g. channel_not_found).
func (s *Store) MarkFailed(ctx context.Context, id int64, errText string) error {
	return s.updateMessage(ctx, "mark message failed", id,
		`state = 'failed', attempts = attempts + 1, last_error = ?`, errText)
}

// ReplyKey is the key of the record of thread reply n (from 1) of the
// message with key, kept once the reply went out (MarkPartSent).
func ReplyKey(key string, n int) string { return fmt.Sprintf("%s:reply:%d", key, n) }

// MarkPartSent records that one Slack message of a pending message that
// Slack gets as several went out, so that a retry, after an error or a
// restart, resumes after it: part 0, the main message, keeps its ts on the
// message, which stays pending; thread reply n (part n >= 1) is kept as a
// message of its own, already sent, under ReplyKey (its thread_key the
// message's key). Recording a reply twice keeps the first record.
func (s *Store) MarkPartSent(ctx context.Context, id int64, part int, ts string) error {
	if part == 0 {
		return s.updateMessage(ctx, "mark message part sent", id, `ts = ?`, ts)
	}
	now := ms(s.now())
	return s.write(ctx, "mark message part sent", func(tx *sql.Tx) error {
		var key, kind, channel string
		err := tx.QueryRowContext(ctx, `SELECT key, kind, channel FROM outbox WHERE id = ?`, id).Scan(&key, &kind, &channel)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: outbox message %d", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO outbox (key, kind, channel, thread_key, payload, attempts,
			next_attempt, state, ts, created_at, sent_at) VALUES (?, ?, ?, ?, ?, 1, ?, 'sent', ?, ?, ?)
			ON CONFLICT (key) DO NOTHING`,
			ReplyKey(key, part), kind, channel, key, []byte{}, now, ts, now, now)
		return err
	})
}

// RepliesSent returns how many thread replies of the message with key went
// out (MarkPartSent).
func (s *Store) RepliesSent(ctx context.Context, key string) (int, error) {
	var n int
	err := s.read(ctx, "count sent replies", func(tx *sql.Tx) error {
		prefix := key + ":reply:"
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE thread_key = ? AND state = 'sent'
			AND substr(key, 1, length(CAST(? AS TEXT))) = ?`, key, prefix, prefix).Scan(&n)
	})
	return n, err
}

// OutboxStats summarises the outbox at now: messages pending, the age of
// the oldest pending one, and messages failed.
func (s *Store) OutboxStats(ctx context.Context, now time.Time) (pending int, oldest time.Duration, failed int, err error) {
	err = s.read(ctx, "read outbox figures", func(tx *sql.Tx) error {
		var first sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT count(*), min(created_at) FROM outbox WHERE state = 'pending'`).
			Scan(&pending, &first); err != nil {
			return err
		}
		if first.Valid && pending > 0 {
			oldest = max(0, now.Sub(fromMS(first.Int64)))
		}
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE state = 'failed'`).Scan(&failed)
	})
	return pending, oldest, failed, err
}
