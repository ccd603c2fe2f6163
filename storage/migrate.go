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

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// migration is one forward-only schema step; its version is its position
// in migrations, counted from 1.
type migration struct {
	name string
	sql  string
}

// sqliteMigrations and pgMigrations list each engine's embedded
// migrations in version order: the same numbers and names in
// migrations/sqlite/ and migrations/postgres/, so that both engines are at
// the same schema version. They are built once, at first use rather than
// at the start of every run of the binary, from read-only embedded files
// and never changed.
var (
	sqliteMigrations = sync.OnceValue(func() []migration { return mustLoadMigrations(EngineSQLite) })
	pgMigrations     = sync.OnceValue(func() []migration { return mustLoadMigrations(EnginePostgres) })
)

// migrations returns SQLite's migrations.
func migrations() []migration { return sqliteMigrations() }

// migrationsFor returns the migrations of engine.
func migrationsFor(engine string) []migration {
	if engine == EnginePostgres {
		return pgMigrations()
	}
	return sqliteMigrations()
}

func mustLoadMigrations(engine string) []migration {
	names, err := fs.Glob(migrationFS, "migrations/"+engine+"/*.sql")
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
	cur, err := s.dialect.schemaVersion(ctx, s.db)
	if err != nil {
		return s.opErr("open", err)
	}
	if cur == level {
		return nil
	}
	if cur == 0 && s.mode != ModeCreate {
		// Outside ModeCreate, an empty schema is refused. (Tables
		// without a version may be another process's migration under
		// way: that is decided under the write lock, below.)
		if tables, err := s.noSchema(ctx); err != nil && tables <= 0 {
			return err
		}
	}
	all := migrationsFor(s.dialect.engine())
	for {
		// A write transaction (SQLite: IMMEDIATE; PostgreSQL: under the
		// writer's advisory lock): one process migrates at a time, and
		// the version read here is the one the last migrator left.
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return s.opErr("migrate", err)
		}
		cur, err := s.dialect.schemaVersion(ctx, tx)
		if err != nil {
			_ = tx.Rollback()
			return s.opErr("migrate", err)
		}
		if cur > len(all) {
			_ = tx.Rollback()
			return fmt.Errorf("storage: open %s: %w (%s at version %d, this binary knows %d); upgrade gmailtls or restore a backup", s.path, ErrTooNew, s.dialect.noun(), cur, len(all))
		}
		if cur >= level {
			return s.opErr("migrate", tx.Rollback())
		}
		if cur == 0 {
			// A fresh database is created with no tables. One at
			// version 0 with tables is not ours (or lost its version):
			// never migrate it afresh. Outside ModeCreate, an empty
			// schema is refused too.
			tables, err := s.dialect.tables(ctx, tx)
			if err != nil {
				_ = tx.Rollback()
				return s.opErr("open", err)
			}
			if tables != 0 || s.mode != ModeCreate {
				_ = tx.Rollback()
				return s.dialect.noSchema(s.path, tables)
			}
		}
		m := all[cur]
		if err := s.applyMigration(ctx, tx, m, cur+1); err != nil {
			_ = tx.Rollback()
			return s.opErr("migrate", fmt.Errorf("migration %s: %w", m.name, err))
		}
		if err := tx.Commit(); err != nil {
			return s.opErr("migrate", fmt.Errorf("migration %s: %w", m.name, err))
		}
		s.log.Info("storage: schema migrated", s.dialect.noun(), s.path, "migration", m.name, "version", cur+1)
	}
}

func (s *Store) applyMigration(ctx context.Context, tx *sql.Tx, m migration, version int) error {
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	return s.dialect.setSchemaVersion(ctx, tx, version)
}
