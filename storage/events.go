package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
)

// Event is one change of escalation level, for a relay or across relays
// (Relay == ""), with the ids of the results that caused it. Levels and
// scope are escalation's own types; they become strings only in SQL.
type Event struct {
	ID       int64
	Relay    string // "" = global
	From, To escalation.Level
	Scope    escalation.Scope
	Advice   string
	Evidence []int64
	At       time.Time
}

// Incident is an alert's life: opened, acknowledged, muted, resolved.
// Relay == "" is a global incident.
type Incident struct {
	ID    int64
	Relay string
	// Level and Scope are the incident's current level: the one it was
	// opened at, or the highest it rose to (SetIncidentLevel).
	Level      escalation.Level
	Scope      escalation.Scope
	OpenedAt   time.Time
	AckedAt    time.Time
	AckedBy    string
	ResolvedAt time.Time
	// MutedUntil and MutedBy: until when, and by whom, the incident was
	// last muted (zero and "" when never).
	MutedUntil   time.Time
	MutedBy      string
	LastReminder time.Time
	// AlertChannel and AlertTS locate the Slack message of the alert.
	AlertChannel string
	AlertTS      string
}

// AuditEntry is one command received, from Slack or a terminal.
type AuditEntry struct {
	UserID    string
	UserName  string
	ChannelID string
	Text      string
	Source    message.Source
	At        time.Time
	Outcome   string
}

// optRelay returns the relay id for name inside a write, NULL for "".
func optRelay(in *interner, name string) (any, error) {
	if name == "" {
		return nil, nil
	}
	return in.relay(name)
}

// AddEvent stores an escalation event and returns its id.
func (s *Store) AddEvent(ctx context.Context, e Event) (int64, error) {
	id, _, err := s.addEvent(ctx, e, -1)
	return id, err
}

// AddEventAfter stores an escalation event only if the newest event of its
// relay (relay "" = the global one) is still the event latest (0: the
// relay has none), in the same write transaction: the compare-and-append
// that keeps replicas evaluating at once from announcing one change twice.
// A change computed against an older newest event is not stored and
// stored is false: another replica announced a change meanwhile.
func (s *Store) AddEventAfter(ctx context.Context, e Event, latest int64) (id int64, stored bool, err error) {
	if latest < 0 {
		return 0, false, fmt.Errorf("storage: add escalation event: invalid newest event id %d", latest)
	}
	return s.addEvent(ctx, e, latest)
}

// addEvent stores e; with latest >= 0, only if the newest event of e's
// relay is latest (0: none).
func (s *Store) addEvent(ctx context.Context, e Event, latest int64) (int64, bool, error) {
	ev := e.Evidence
	if ev == nil {
		ev = []int64{}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return 0, false, err
	}
	at := e.At
	if at.IsZero() {
		at = s.now()
	}
	var id int64
	stored := true
	err = s.write(ctx, "add escalation event", func(tx *sql.Tx) error {
		relay, err := optRelay(newInterner(ctx, tx, &s.cache, ms(s.now())), e.Relay)
		if err != nil {
			return err
		}
		if latest >= 0 {
			var newest sql.NullInt64
			if relay == nil {
				err = tx.QueryRowContext(ctx, `SELECT MAX(id) FROM events WHERE relay_id IS NULL`).Scan(&newest)
			} else {
				err = tx.QueryRowContext(ctx, `SELECT MAX(id) FROM events WHERE relay_id = ?`, relay).Scan(&newest)
			}
			if err != nil {
				return err
			}
			if newest.Int64 != latest {
				stored = false
				return nil
			}
		}
		return tx.QueryRowContext(ctx, `INSERT INTO events (relay_id, from_level, to_level, scope, advice, evidence, at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, relay, string(e.From), string(e.To), string(e.Scope), e.Advice, string(b), ms(at)).Scan(&id)
	})
	if err != nil {
		return 0, false, err
	}
	return id, stored, nil
}

const eventCols = `SELECT e.id, COALESCE(r.name, ''), e.from_level, e.to_level, e.scope, e.advice, e.evidence, e.at
	FROM events e LEFT JOIN relays r ON r.id = e.relay_id `

func scanEvents(rows *sql.Rows) ([]Event, error) {
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var from, to, scope, ev string
		var at int64
		if err := rows.Scan(&e.ID, &e.Relay, &from, &to, &scope, &e.Advice, &ev, &at); err != nil {
			return nil, err
		}
		e.From, e.To, e.Scope = escalation.Level(from), escalation.Level(to), escalation.Scope(scope)
		if err := json.Unmarshal([]byte(ev), &e.Evidence); err != nil {
			return nil, fmt.Errorf("event %d: evidence: %w", e.ID, err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Events returns a relay's events (relay "" = the global ones), newest
// first; limit <= 0 means 100.
func (s *Store) Events(ctx context.Context, relay string, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []Event
	err := s.read(ctx, "read escalation events", func(tx *sql.Tx) error {
		var rows *sql.Rows
		var err error
		if relay == "" {
			rows, err = tx.QueryContext(ctx, eventCols+`WHERE e.relay_id IS NULL ORDER BY e.id DESC LIMIT ?`, limit)
		} else {
			var id int64
			id, err = s.relayID(ctx, tx, relay)
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			rows, err = tx.QueryContext(ctx, eventCols+`WHERE e.relay_id = ? ORDER BY e.id DESC LIMIT ?`, id, limit)
		}
		if err != nil {
			return err
		}
		out, err = scanEvents(rows)
		return err
	})
	return out, err
}

// LastEvent returns a relay's (or, for "", the global) latest event; false
// when there is none. The escalation engine derives its state from it, so
// that a restart never emits the same change twice.
func (s *Store) LastEvent(ctx context.Context, relay string) (Event, bool, error) {
	ev, err := s.Events(ctx, relay, 1)
	if err != nil || len(ev) == 0 {
		return Event{}, false, err
	}
	return ev[0], true, nil
}

// LastEvents returns the latest event of every relay that has one, and
// under "" the latest global event, in one query: the levels already
// announced, read at every evaluation.
func (s *Store) LastEvents(ctx context.Context) (map[string]Event, error) {
	out := map[string]Event{}
	err := s.readOne(ctx, "read escalation events", func(tx querier) error {
		rows, err := tx.QueryContext(ctx, eventCols+`WHERE e.id IN (SELECT MAX(id) FROM events GROUP BY relay_id)`)
		if err != nil {
			return err
		}
		evs, err := scanEvents(rows)
		for _, e := range evs {
			out[e.Relay] = e
		}
		return err
	})
	return out, err
}

// OpenIncident stores a new incident and returns its id. OpenedAt
// defaults to now.
func (s *Store) OpenIncident(ctx context.Context, i Incident) (int64, error) {
	if i.OpenedAt.IsZero() {
		i.OpenedAt = s.now()
	}
	var id int64
	err := s.write(ctx, "open incident", func(tx *sql.Tx) error {
		relay, err := optRelay(newInterner(ctx, tx, &s.cache, ms(s.now())), i.Relay)
		if err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO incidents (relay_id, level, scope, opened_at, acked_at, acked_by,
			resolved_at, muted_until, muted_by, last_reminder, alert_channel, alert_ts)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			relay, string(i.Level), string(i.Scope), ms(i.OpenedAt), ms(i.AckedAt), i.AckedBy, ms(i.ResolvedAt),
			ms(i.MutedUntil), i.MutedBy, ms(i.LastReminder), i.AlertChannel, i.AlertTS).Scan(&id)
	})
	return id, err
}

// updateIncident runs one UPDATE on incident id, or returns ErrNotFound.
func (s *Store) updateIncident(ctx context.Context, op string, id int64, set string, args ...any) error {
	return s.write(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE incidents SET `+set+` WHERE id = ?`, append(args, id)...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: incident %d", ErrNotFound, id)
		}
		return nil
	})
}

// AckIncident records who acknowledged an incident and when; reminders
// stop. A second acknowledgement keeps the first one's name and time.
func (s *Store) AckIncident(ctx context.Context, id int64, by string, at time.Time) error {
	return s.updateIncident(ctx, "acknowledge incident", id,
		`acked_by = CASE WHEN acked_at = 0 THEN ? ELSE acked_by END, acked_at = CASE WHEN acked_at = 0 THEN ? ELSE acked_at END`,
		by, ms(at))
}

// MuteIncident silences an incident's alerts and reminders until the
// given time and records who muted it. A later mute replaces both.
func (s *Store) MuteIncident(ctx context.Context, id int64, until time.Time, by string) error {
	return s.updateIncident(ctx, "mute incident", id, `muted_until = ?, muted_by = ?`, ms(until), by)
}

// SetIncidentLevel records an open incident's current level and scope,
// e.g. after it rose from investigate to incident.
func (s *Store) SetIncidentLevel(ctx context.Context, id int64, level escalation.Level, scope escalation.Scope) error {
	return s.updateIncident(ctx, "record incident level", id, `level = ?, scope = ?`, string(level), string(scope))
}

// ResolveIncident closes an incident; resolving it again keeps the first
// time.
func (s *Store) ResolveIncident(ctx context.Context, id int64, at time.Time) error {
	return s.updateIncident(ctx, "resolve incident", id,
		`resolved_at = CASE WHEN resolved_at = 0 THEN ? ELSE resolved_at END`, ms(at))
}

// SetIncidentMessage records the Slack message (channel and ts) of an
// incident's alert.
func (s *Store) SetIncidentMessage(ctx context.Context, id int64, channel, ts string) error {
	return s.updateIncident(ctx, "record incident message", id, `alert_channel = ?, alert_ts = ?`, channel, ts)
}

// TouchReminder records when the last reminder of an incident was sent.
func (s *Store) TouchReminder(ctx context.Context, id int64, at time.Time) error {
	return s.updateIncident(ctx, "record incident reminder", id, `last_reminder = ?`, ms(at))
}

const incidentCols = `SELECT i.id, COALESCE(r.name, ''), i.level, i.scope, i.opened_at, i.acked_at, i.acked_by,
	i.resolved_at, i.muted_until, i.muted_by, i.last_reminder, i.alert_channel, i.alert_ts
	FROM incidents i LEFT JOIN relays r ON r.id = i.relay_id `

func (s *Store) queryIncidents(ctx context.Context, op, where string, args ...any) ([]Incident, error) {
	var out []Incident
	err := s.read(ctx, op, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, incidentCols+where, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var i Incident
			var level, scope string
			var opened, acked, resolved, muted, reminded int64
			if err := rows.Scan(&i.ID, &i.Relay, &level, &scope, &opened, &acked, &i.AckedBy, &resolved,
				&muted, &i.MutedBy, &reminded, &i.AlertChannel, &i.AlertTS); err != nil {
				return err
			}
			i.Level, i.Scope = escalation.Level(level), escalation.Scope(scope)
			i.OpenedAt, i.AckedAt, i.ResolvedAt = fromMS(opened), fromMS(acked), fromMS(resolved)
			i.MutedUntil, i.LastReminder = fromMS(muted), fromMS(reminded)
			out = append(out, i)
		}
		return rows.Err()
	})
	return out, err
}

// OpenIncidents returns the incidents not resolved, oldest first.
func (s *Store) OpenIncidents(ctx context.Context) ([]Incident, error) {
	return s.queryIncidents(ctx, "read open incidents", `WHERE i.resolved_at = 0 ORDER BY i.id`)
}

// IncidentByID returns one incident, or ErrNotFound.
func (s *Store) IncidentByID(ctx context.Context, id int64) (Incident, error) {
	out, err := s.queryIncidents(ctx, "read incident", `WHERE i.id = ?`, id)
	if err != nil {
		return Incident{}, err
	}
	if len(out) == 0 {
		return Incident{}, fmt.Errorf("storage: incident %d: %w", id, ErrNotFound)
	}
	return out[0], nil
}

// Audit records one command. At defaults to now.
func (s *Store) Audit(ctx context.Context, a AuditEntry) error {
	if a.At.IsZero() {
		a.At = s.now()
	}
	return s.write(ctx, "write audit log", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO audit (at, user_id, user_name, channel_id, source, text, outcome)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, ms(a.At), a.UserID, a.UserName, a.ChannelID, string(a.Source), a.Text, a.Outcome)
		return err
	})
}

// AuditLog returns the newest audit entries first; limit <= 0 means 100.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]AuditEntry, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []AuditEntry
	err := s.readOne(ctx, "read audit log", func(tx querier) error {
		rows, err := tx.QueryContext(ctx, `SELECT at, user_id, user_name, channel_id, source, text, outcome
			FROM audit ORDER BY id DESC LIMIT ?`, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a AuditEntry
			var source string
			var at int64
			if err := rows.Scan(&at, &a.UserID, &a.UserName, &a.ChannelID, &source, &a.Text, &a.Outcome); err != nil {
				return err
			}
			a.Source = message.Source(source)
			a.At = fromMS(at)
			out = append(out, a)
		}
		return rows.Err()
	})
	return out, err
}
