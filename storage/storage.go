// Package storage keeps gmailtls's history in one SQLite file: the relays
// synced from the configuration, every probe run and result, the escalation
// events and incidents derived from them (with the model of each
// incident's alert), the audit log of commands and the outbox of Slack
// messages. All SQL of the project lives here.
//
// The database runs in WAL mode with a busy timeout, foreign keys and
// synchronous=NORMAL on every pooled connection. Writes go through a single
// writer (a mutex in front of BEGIN IMMEDIATE transactions); reads run in
// parallel on the same pool. The schema is versioned with PRAGMA
// user_version and migrated forward at Open from the SQL files embedded
// from migrations/sqlite/.
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
	"net/url"
	"sync"
	"time"

	"modernc.org/sqlite"
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
	// MaxPages caps the database at this many pages (PRAGMA
	// max_page_count on every connection); 0 keeps SQLite's limit. A
	// write that would grow the file past it fails as a full disk does
	// (SQLITE_FULL), which is how tests exercise that path.
	MaxPages int
	// Mode says whether the file may be created, migrated or written. The
	// zero value, [ModeCreate], is serve's: create the file if needed and
	// migrate it.
	Mode Mode
}

// Mode is how [Open] treats the file.
type Mode int

const (
	// ModeCreate creates a missing or empty file and migrates its schema:
	// for serve and "gmailtls storage init" only.
	ModeCreate Mode = iota
	// ModeExisting opens a file that already holds a gmailtls database,
	// for reading and writing, and migrates it forward; a missing or empty
	// file, or one without a schema, is refused with [ErrNoDatabase].
	ModeExisting
	// ModeReadOnly opens an existing database with SQLite's mode=ro: no
	// WAL switch, no migration, no write. A file older than this binary
	// is refused with [ErrNeedsMigration].
	ModeReadOnly
)

// Store is an open gmailtls database. It is safe for concurrent use.
type Store struct {
	db     *sql.DB
	path   string
	log    *slog.Logger
	now    func() time.Time
	writer chan struct{} // a one-slot semaphore: the single writer
	mode   Mode

	cache   internCache
	flaters sync.Pool // *flate.Writer for transcripts
}

// busyTimeout is how long a connection waits for another process's lock.
const busyTimeout = 5 * time.Second

// dsn builds the modernc DSN for path: every pooled connection gets the
// pragmas, and write transactions begin IMMEDIATE so that they take the
// write lock up front instead of failing on upgrade.
func dsn(path string, mode Mode, maxPages int) string {
	u := url.URL{Path: path}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	if mode == ModeReadOnly {
		q.Set("mode", "ro")
		if readOnlyPlace(path) {
			// Nobody can write here, so nobody is writing: SQLite need
			// not (and could not) create the -shm file of a WAL reader.
			q.Set("immutable", "1")
		}
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	q.Add("_pragma", "foreign_keys(1)")
	if maxPages > 0 {
		q.Add("_pragma", fmt.Sprintf("max_page_count(%d)", maxPages))
	}
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	return "file:" + u.EscapedPath() + "?" + q.Encode()
}

// Open opens the database at path as opts.Mode says: by default creating it
// if needed and migrating its schema to the latest version.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	return openAt(ctx, path, opts, len(migrations()))
}

// openAt opens path and migrates it up to level (a test hook: production
// always migrates to len(migrations())).
func openAt(ctx context.Context, path string, opts Options, level int) (*Store, error) {
	if path == "" {
		return nil, errors.New("storage: no database path configured ([storage] path)")
	}
	if opts.Mode != ModeCreate {
		if err := checkExists(path); err != nil {
			return nil, err
		}
	}
	db, err := sql.Open("sqlite", dsn(path, opts.Mode, opts.MaxPages))
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	readers := opts.MaxReaders
	if readers <= 0 {
		readers = 4
	}
	db.SetMaxOpenConns(readers + 1)
	db.SetMaxIdleConns(readers + 1)
	db.SetConnMaxIdleTime(0)
	s := &Store{db: db, path: path, log: opts.Logger, now: opts.Now, writer: make(chan struct{}, 1), mode: opts.Mode}
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
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, s.opErr("open", err)
	}
	if mode != "wal" {
		db.Close()
		return nil, fmt.Errorf("storage: open %s: cannot switch to WAL journal mode (got %q); is the file on a network filesystem?", path, mode)
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

// Path returns the file name the store was opened with.
func (s *Store) Path() string { return s.path }

// opErr words a database error for an operator:
// "storage: open /var/lib/gmailtls/gmailtls.db: database is locked by another process".
func (s *Store) opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("storage: %s %s: %w", op, s.path, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return fmt.Errorf("storage: %s %s: %w (%w)", op, s.path, ErrLocked, err)
		case 11, 26: // SQLITE_CORRUPT, SQLITE_NOTADB
			return fmt.Errorf("storage: %s %s: %w (%w)", op, s.path, ErrCorrupt, err)
		case 13: // SQLITE_FULL
			return fmt.Errorf("storage: %s %s: the disk is full: %w", op, s.path, err)
		case 14: // SQLITE_CANTOPEN
			return fmt.Errorf("storage: %s %s: cannot open the file (does its folder exist and is it writable?): %w", op, s.path, err)
		case 8: // SQLITE_READONLY
			return fmt.Errorf("storage: %s %s: the file is read-only for this user: %w", op, s.path, err)
		case 10: // SQLITE_IOERR
			return fmt.Errorf("storage: %s %s: disk I/O error: %w", op, s.path, err)
		}
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
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s.opErr(op, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	if err := fn(tx); err != nil {
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
