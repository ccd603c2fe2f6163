// Package storage keeps gmailtls's history: the relays synced from the
// configuration, every probe run and result, the escalation events and
// incidents derived from them (with the model of each incident's alert),
// the audit log of commands and the outbox of Slack messages. All SQL of
// the project lives here.
//
// Two engines, with the same behaviour: SQLite (the default, one file) and
// PostgreSQL (Options.Driver "postgres", for replicas sharing one
// database). The SQL is shared, written with ? and ?N placeholders in the
// subset both accept; what must differ lives in dialect_sqlite.go and
// dialect_postgres.go (docs/architecture.md, "Storage engines").
//
// SQLite runs in WAL mode with a busy timeout, foreign keys and
// synchronous=NORMAL on every pooled connection, its schema versioned with
// PRAGMA user_version. On PostgreSQL the version is kept in a table, and
// every write transaction first takes a transaction-level advisory lock.
// Either way writes go through a single writer (a mutex in front of BEGIN
// IMMEDIATE transactions, or of the advisory lock, which serialises every
// process writing to the database) and reads run in parallel on the same
// pool, each in one consistent snapshot. The schema is migrated forward
// at Open from the SQL files embedded from migrations/sqlite/ or
// migrations/postgres/ (the same numbers and names).
//
// Raw results are kept compact (interned paths, TLS parameters and
// certificate chains, integer timings in tenths of a millisecond, a
// transcript only for failures and for the newest success per relay × MX)
// and, past the raw retention, rolled up into hourly aggregates per
// relay × MX by [Store.Rollup].
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Errors returned by the store. They are wrapped with the details; test
// them with errors.Is.
var (
	// ErrNotFound means the relay, result, incident or message asked for
	// does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrLocked means another process holds the database's write lock for
	// longer than the busy timeout.
	ErrLocked = errors.New("database is locked by another process")
	// ErrCorrupt means SQLite found the file damaged or not a database.
	ErrCorrupt = errors.New("database file is damaged or is not a gmailtls database")
	// ErrTooNew means the file was written by a newer gmailtls whose schema
	// this binary does not know.
	ErrTooNew = errors.New("database schema is newer than this gmailtls")
	// ErrNoDatabase means the file is missing, empty or holds no gmailtls
	// schema, and the caller did not ask to create one: only serve and
	// "gmailtls storage init" create a database.
	ErrNoDatabase = errors.New("no gmailtls database")
	// ErrNeedsMigration means a read-only open found a schema older than
	// this binary's; a read-only open never migrates.
	ErrNeedsMigration = errors.New("database schema is older than this gmailtls")
)

// Options tune a Store. The zero value is usable.
type Options struct {
	// Logger receives operational messages (migrations, retention). Nil
	// discards them.
	Logger *slog.Logger
	// Now is the clock used for creation times; nil means time.Now.
	Now func() time.Time
	// MaxReaders bounds the pooled connections (default 4).
	MaxReaders int
	// MaxPages caps a SQLite database at this many pages (PRAGMA
	// max_page_count on every connection); 0 keeps SQLite's limit. A
	// write that would grow the file past it fails as a full disk does
	// (SQLITE_FULL), which is how tests exercise that path. PostgreSQL
	// has no such limit: Open refuses a MaxPages with driver postgres.
	MaxPages int
	// Mode says whether the database may be created, migrated or
	// written. The zero value, [ModeCreate], is serve's: create the
	// database if needed and migrate it.
	Mode Mode
	// Driver is the engine: "" or "sqlite" (the default, a file at the
	// path given to Open) or "postgres" (the database of DSN).
	Driver string
	// DSN is PostgreSQL's connection string, for driver postgres. It is
	// never logged nor shown in an error: [Store.Path] is its display
	// form, without the password.
	DSN string
}

// Mode is how [Open] treats the file.
type Mode int

const (
	// ModeCreate creates a missing or empty file (on PostgreSQL: the
	// schema in a database that has none) and migrates its schema: for
	// serve and "gmailtls storage init" only.
	ModeCreate Mode = iota
	// ModeExisting opens a file that already holds a gmailtls database,
	// for reading and writing, and migrates it forward; a missing or empty
	// file, or one without a schema (on PostgreSQL: a database without
	// gmailtls's tables), is refused with [ErrNoDatabase].
	ModeExisting
	// ModeReadOnly opens an existing database with SQLite's mode=ro (on
	// PostgreSQL: sessions with default_transaction_read_only): no WAL
	// switch, no migration, no write. A database older than this binary
	// is refused with [ErrNeedsMigration].
	ModeReadOnly
)

// Store is an open gmailtls database. It is safe for concurrent use.
type Store struct {
	db      *sql.DB
	path    string // the display form: no password
	dialect dialect
	log     *slog.Logger
	now     func() time.Time
	writer  chan struct{} // a one-slot semaphore: the single writer
	mode    Mode

	cache   internCache
	flaters sync.Pool // *flate.Writer for transcripts
}

// poolSize is the number of pooled connections: the readers and the
// writer.
func poolSize(opts Options) int {
	readers := opts.MaxReaders
	if readers <= 0 {
		readers = 4
	}
	return readers + 1
}

// Open opens the database opts.Driver names, as opts.Mode says: by default
// creating it if needed and migrating its schema to the latest version.
// For SQLite, path is the file; for PostgreSQL path is ignored and
// opts.DSN is the connection string.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	return openAt(ctx, path, opts, SchemaVersion())
}

// openAt opens the database and migrates it up to level (a test hook:
// production always migrates to SchemaVersion()).
func openAt(ctx context.Context, path string, opts Options, level int) (*Store, error) {
	var (
		db      *sql.DB
		d       dialect
		display string
		err     error
	)
	switch opts.Driver {
	case "", EngineSQLite:
		db, err = openSQLite(path, opts)
		d, display = sqliteDialect{}, path
	case EnginePostgres:
		var pd pgDialect
		db, display, pd, err = openPostgres(opts)
		d = pd
	default:
		return nil, fmt.Errorf("storage: unknown driver %q ([storage] driver): use %q or %q", opts.Driver, EngineSQLite, EnginePostgres)
	}
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: display, dialect: d, log: opts.Logger, now: opts.Now, writer: make(chan struct{}, 1), mode: opts.Mode}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.cache.init()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, s.opErr("open", err)
	}
	if opts.Mode == ModeReadOnly {
		if err := s.checkReadOnly(ctx); err != nil {
			db.Close()
			return nil, err
		}
		return s, nil
	}
	if err := d.afterOpen(ctx, s); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.migrate(ctx, level); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the database. Pending writes have been committed already.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return s.opErr("close", err)
	}
	return nil
}

// Path names the database in messages and logs: the file name the store
// was opened with, or for PostgreSQL postgres://user@host:port/dbname
// (never the password).
func (s *Store) Path() string { return s.path }

// Engine returns the database engine: EngineSQLite or EnginePostgres.
func (s *Store) Engine() string { return s.dialect.engine() }

// opErr words a database error for an operator:
// "storage: open /var/lib/gmailtls/gmailtls.db: database is locked by another process".
func (s *Store) opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("storage: %s %s: %w", op, s.path, err)
	}
	if e := s.dialect.mapErr(op, s.path, err); e != nil {
		return e
	}
	return fmt.Errorf("storage: %s %s: %w", op, s.path, err)
}

// write runs fn in one write transaction, serialised with every other
// writer of this Store.
func (s *Store) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return s.opErr(op, ctx.Err())
	}
	defer func() { <-s.writer }()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.opErr(op, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		s.cache.discardPending()
		return s.opErr(op, err)
	}
	if err := tx.Commit(); err != nil {
		s.cache.discardPending()
		return s.opErr(op, err)
	}
	s.cache.commitPending()
	return nil
}

// read runs fn in one read-only transaction: a consistent snapshot.
func (s *Store) read(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, s.dialect.readTx())
	if err != nil {
		return s.opErr(op, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	if err := fn(tx); err != nil {
		return s.opErr(op, err)
	}
	return nil
}

// readOne runs fn, a read of exactly one statement, outside any
// transaction: one statement sees one consistent snapshot on both engines,
// and on PostgreSQL it saves the two round trips of BEGIN and ROLLBACK.
// Lookups of interned rows (a relay's name, a path) may follow the
// statement: those rows never change once written. A read of several
// statements that must agree uses read.
func (s *Store) readOne(ctx context.Context, op string, fn func(q querier) error) error {
	if err := fn(s.db); err != nil {
		return s.opErr(op, err)
	}
	return nil
}

// ms converts a time to the stored form: milliseconds since the epoch, 0
// for the zero time.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS is the inverse of ms; times come back in UTC.
func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// tenths converts milliseconds to the stored tenths of a millisecond.
func tenths(msv float64) int64 {
	if msv <= 0 {
		return 0
	}
	return int64(msv*10 + 0.5)
}

// fromTenths is the inverse of tenths.
func fromTenths(v sql.NullInt64) float64 {
	if !v.Valid {
		return 0
	}
	return float64(v.Int64) / 10
}
