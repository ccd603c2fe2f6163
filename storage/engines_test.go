package storage

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/internal/pglab"
)

// engine is one database engine the storage tests run on. A database is
// named by its location: a file path for SQLite, a connection string for
// PostgreSQL.
type engine struct {
	name string
	// fresh returns the location of a new, empty database for t.
	fresh func(t testing.TB) string
}

var (
	sqliteEngine = engine{name: EngineSQLite, fresh: func(t testing.TB) string {
		return filepath.Join(t.TempDir(), "gmailtls.db")
	}}
	postgresEngine = engine{name: EnginePostgres, fresh: func(t testing.TB) string {
		return pglab.NewDatabase(t)
	}}
	engines = []engine{sqliteEngine, postgresEngine}
)

// forEachEngine runs f as a subtest per engine: "sqlite" and "postgres".
// Without PostgreSQL the postgres subtests skip, except under CI=true,
// where they fail.
func forEachEngine(t *testing.T, f func(t *testing.T, e engine)) {
	t.Helper()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { f(t, e) })
	}
}

// options returns the path and options that open the database at loc.
func (e engine) options(loc string, opts Options) (string, Options) {
	if e.name == EnginePostgres {
		opts.Driver, opts.DSN = EnginePostgres, loc
		return "", opts
	}
	return loc, opts
}

// openErr opens the database at loc with opts (Driver and DSN set from e).
func (e engine) openErr(ctx context.Context, loc string, opts Options) (*Store, error) {
	path, opts := e.options(loc, opts)
	return Open(ctx, path, opts)
}

// open opens the database at loc ("": a fresh one) with clock c (nil: the
// real clock) and closes it at t's cleanup.
func (e engine) open(t testing.TB, loc string, c *manualclock.Clock) *Store {
	t.Helper()
	if loc == "" {
		loc = e.fresh(t)
	}
	opts := Options{}
	if c != nil {
		opts.Now = c.Now
	}
	s, err := e.openErr(context.Background(), loc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestExecAllIsAllOrNothing: the statements of execAll (one pipeline on
// PostgreSQL) all apply, in order; one that fails fails the write, and
// the transaction leaves nothing behind.
func TestExecAllIsAllOrNothing(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		s := e.open(t, "", nil)
		ok := []stmt{
			{`INSERT INTO meta (key, value) VALUES (?, ?)`, []any{"a", "1"}},
			{`UPDATE meta SET value = ? WHERE key = ?`, []any{"2", "a"}},
			{`INSERT INTO meta (key, value) VALUES (?, ?)`, []any{"b", "x"}},
		}
		if err := s.write(ctx, "pipeline", func(tx *sql.Tx) error { return s.dialect.execAll(ctx, tx, ok) }); err != nil {
			t.Fatal(err)
		}
		var a string
		if err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'a'`).Scan(&a); err != nil || a != "2" {
			t.Fatalf("meta a = %q (%v), want 2: the statements ran out of order or not at all", a, err)
		}
		bad := []stmt{
			{`INSERT INTO meta (key, value) VALUES (?, ?)`, []any{"c", "1"}},
			{`INSERT INTO meta (key, value) VALUES (?, ?)`, []any{"b", "again"}}, // the key exists
			{`INSERT INTO meta (key, value) VALUES (?, ?)`, []any{"d", "1"}},
		}
		if err := s.write(ctx, "pipeline", func(tx *sql.Tx) error { return s.dialect.execAll(ctx, tx, bad) }); err == nil {
			t.Fatal("a pipeline with a failing statement succeeded")
		}
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM meta WHERE key IN ('c', 'd')`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d rows of the failed pipeline stayed (%v)", n, err)
		}
		// The connection is usable again.
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
