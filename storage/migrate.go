package storage

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
)

//go:embed migrations/sqlite/*.sql
var migrationFS embed.FS

// migration is one forward-only schema step; its version is its position
// in migrations, counted from 1.
type migration struct {
	name string
	sql  string
}

// migrations lists the embedded migrations in version order. It is built
// once, at first use rather than at the start of every run of the binary,
// from read-only embedded files and never changed.
var migrations = sync.OnceValue(mustLoadMigrations)

func mustLoadMigrations() []migration {
	names, err := fs.Glob(migrationFS, "migrations/sqlite/*.sql")
	if err != nil {
		panic(err)
	}
	sort.Strings(names)
	var out []migration
	for i, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != i+1 {
			panic(fmt.Sprintf("storage: migration %s is out of sequence (want %04d_*.sql)", base, i+1))
		}
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			panic(err)
		}
		out = append(out, migration{name: base, sql: string(b)})
	}
	return out
}

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() int { return len(migrations()) }

// migrate brings the schema up to level, one transaction per migration.
func (s *Store) migrate(ctx context.Context, level int) error {
	s.writer <- struct{}{}
	defer func() { <-s.writer }()
	// Most opens find the schema current: check without the write lock,
	// so that `gmailtls status` never waits for a busy writer.
	var cur int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
		return s.opErr("open", err)
	}
	if cur == level {
		return nil
	}
	if cur == 0 {
		// A fresh file is created with no tables. A file at version 0
		// with tables is not ours (or lost its version): never migrate
		// it afresh. Outside ModeCreate, an empty schema is refused too.
		tables, err := s.noSchema(ctx)
		if err != nil && (tables != 0 || s.mode != ModeCreate) {
			return err
		}
	}
	for {
		tx, err := s.db.BeginTx(ctx, nil) // IMMEDIATE: one process migrates at a time
		if err != nil {
			return s.opErr("migrate", err)
		}
		var cur int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
			_ = tx.Rollback()
			return s.opErr("migrate", err)
		}
		if cur > len(migrations()) {
			_ = tx.Rollback()
			return fmt.Errorf("storage: open %s: %w (file at version %d, this binary knows %d); upgrade gmailtls or restore a backup", s.path, ErrTooNew, cur, len(migrations()))
		}
		if cur >= level {
			return s.opErr("migrate", tx.Rollback())
		}
		m := migrations()[cur]
		if err := applyMigration(ctx, tx, m, cur+1); err != nil {
			_ = tx.Rollback()
			return s.opErr("migrate", fmt.Errorf("migration %s: %w", m.name, err))
		}
		if err := tx.Commit(); err != nil {
			return s.opErr("migrate", fmt.Errorf("migration %s: %w", m.name, err))
		}
		s.log.Info("storage: schema migrated", "file", s.path, "migration", m.name, "version", cur+1)
	}
}

func applyMigration(ctx context.Context, tx *sql.Tx, m migration, version int) error {
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	// PRAGMA takes no bound parameters; version is an int we control.
	_, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(version))
	return err
}
