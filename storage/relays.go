package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// RelaySpec is a relay as declared in the configuration.
type RelaySpec struct {
	Name      string
	Kind      string // "local" or "agent"
	URL       string // agents only
	SourceIPs []string
}

// Relay is a relay as stored: its configuration and its state.
type Relay struct {
	ID        int64
	Name      string
	Kind      string
	URL       string
	SourceIPs []string
	// Retired relays were removed from the configuration; their history
	// is kept.
	Retired bool
	// PausedUntil is the end of a pause (zero: not paused); PausedBy who
	// last paused or resumed the relay.
	PausedUntil time.Time
	PausedBy    string
	CreatedAt   time.Time
}

// Paused reports whether the relay is paused at now.
func (r Relay) Paused(now time.Time) bool { return now.Before(r.PausedUntil) }

// SyncRelays makes the relays table match the configuration: relays in
// specs are inserted or updated (and un-retired if they come back); every
// other relay is marked retired, its history kept.
func (s *Store) SyncRelays(ctx context.Context, specs []RelaySpec) error {
	seen := map[string]bool{}
	for _, r := range specs {
		if r.Name == "" {
			return fmt.Errorf("storage: sync relays: a relay has no name")
		}
		if seen[r.Name] {
			return fmt.Errorf("storage: sync relays: relay %q is declared twice", r.Name)
		}
		seen[r.Name] = true
	}
	now := ms(s.now())
	return s.write(ctx, "sync relays", func(tx *sql.Tx) error {
		for _, r := range specs {
			ips := r.SourceIPs
			if ips == nil {
				ips = []string{}
			}
			b, err := json.Marshal(ips)
			if err != nil {
				return err
			}
			var id int64
			err = tx.QueryRowContext(ctx, `
				INSERT INTO relays (name, kind, url, source_ips, retired, created_at, updated_at)
				VALUES (?, ?, ?, ?, 0, ?, ?)
				ON CONFLICT (name) DO UPDATE SET
					kind = excluded.kind, url = excluded.url, source_ips = excluded.source_ips,
					retired = 0, updated_at = excluded.updated_at
				RETURNING id`,
				r.Name, r.Kind, r.URL, string(b), now, now).Scan(&id)
			if err != nil {
				return fmt.Errorf("relay %q: %w", r.Name, err)
			}
			name := r.Name
			s.cache.addPending(func() { s.cache.relays[name] = id; s.cache.relayBy[id] = name })
		}
		rows, err := tx.QueryContext(ctx, `SELECT name FROM relays WHERE retired = 0`)
		if err != nil {
			return err
		}
		var gone []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			if !seen[n] {
				gone = append(gone, n)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, n := range gone {
			if _, err := tx.ExecContext(ctx, `UPDATE relays SET retired = 1, updated_at = ? WHERE name = ?`, now, n); err != nil {
				return fmt.Errorf("retire relay %q: %w", n, err)
			}
			s.log.Info("storage: relay retired (no longer in the configuration; history kept)", "relay", n)
		}
		return nil
	})
}

// Relays returns the relays by name; retired ones only when asked.
func (s *Store) Relays(ctx context.Context, includeRetired bool) ([]Relay, error) {
	var out []Relay
	err := s.read(ctx, "list relays", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT id, name, kind, url, source_ips, retired, paused_until, paused_by, created_at
			FROM relays WHERE retired = 0 OR ? <> 0 ORDER BY name`, includeRetired)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r Relay
			var ips string
			var paused, created int64
			if err := rows.Scan(&r.ID, &r.Name, &r.Kind, &r.URL, &ips, &r.Retired, &paused, &r.PausedBy, &created); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(ips), &r.SourceIPs); err != nil {
				return fmt.Errorf("relay %q: source IPs: %w", r.Name, err)
			}
			if len(r.SourceIPs) == 0 {
				r.SourceIPs = nil
			}
			r.PausedUntil = fromMS(paused)
			r.CreatedAt = fromMS(created)
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}

// Relay returns one relay by name (retired or not), or ErrNotFound.
func (s *Store) Relay(ctx context.Context, name string) (Relay, error) {
	all, err := s.Relays(ctx, true)
	if err != nil {
		return Relay{}, err
	}
	i := slices.IndexFunc(all, func(r Relay) bool { return r.Name == name })
	if i < 0 {
		return Relay{}, fmt.Errorf("storage: relay %q: %w", name, ErrNotFound)
	}
	return all[i], nil
}

// PauseRelay stops scheduled probing of a relay until the given time.
func (s *Store) PauseRelay(ctx context.Context, name string, until time.Time, by string) error {
	return s.setPause(ctx, "pause relay", name, ms(until), by)
}

// ResumeRelay ends a pause at once.
func (s *Store) ResumeRelay(ctx context.Context, name, by string) error {
	return s.setPause(ctx, "resume relay", name, 0, by)
}

func (s *Store) setPause(ctx context.Context, op, name string, until int64, by string) error {
	return s.write(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE relays SET paused_until = ?, paused_by = ?, updated_at = ? WHERE name = ?`,
			until, by, ms(s.now()), name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: relay %q (is it in the configuration?)", ErrNotFound, name)
		}
		return nil
	})
}
