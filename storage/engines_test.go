package storage

import (
	"context"
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
