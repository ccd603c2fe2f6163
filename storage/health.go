package storage

import (
	"context"
	"database/sql"
)

// Ping proves the database is reachable and writable: it rewrites one row
// of the health table in a write transaction. /healthz calls it.
func (s *Store) Ping(ctx context.Context) error {
	return s.write(ctx, "health check", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO health (id, checked_at) VALUES (1, ?)
			 ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at`,
			s.now().UnixMilli())
		return err
	})
}
