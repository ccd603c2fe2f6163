package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"

	"modernc.org/sqlite"
)

// sqliteDialect is SQLite's side of the engine layer: one file in WAL
// mode, the schema version in PRAGMA user_version.
type sqliteDialect struct{}

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

// openSQLite opens the pool of the file at path.
func openSQLite(path string, opts Options) (*sql.DB, error) {
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
	n := poolSize(opts)
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

func (sqliteDialect) engine() string { return EngineSQLite }

func (sqliteDialect) noun() string { return "file" }

func (sqliteDialect) readTx() *sql.TxOptions { return &sql.TxOptions{ReadOnly: true} }

func (sqliteDialect) afterOpen(ctx context.Context, s *Store) error {
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return s.opErr("open", err)
	}
	if mode != "wal" {
		return fmt.Errorf("storage: open %s: cannot switch to WAL journal mode (got %q); is the file on a network filesystem?", s.path, mode)
	}
	return nil
}

func (sqliteDialect) schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

func (sqliteDialect) setSchemaVersion(ctx context.Context, tx *sql.Tx, v int) error {
	// PRAGMA takes no bound parameters; v is an int we control.
	_, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(v))
	return err
}

func (sqliteDialect) tables(ctx context.Context, q querier) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table'").Scan(&n)
	return n, err
}

func (sqliteDialect) noSchema(display string, tables int) error {
	if tables > 0 {
		return fmt.Errorf("storage: open %s: %w: the file holds %d tables but no gmailtls schema version (user_version 0); it is another program's database, or its schema version was lost; restore a backup (docs/operations.md) rather than letting gmailtls write into it", display, ErrNoDatabase, tables)
	}
	return fmt.Errorf("storage: open %s: %w: the file holds no tables; gmailtls serve or \"gmailtls storage init\" creates the schema", display, ErrNoDatabase)
}

func (sqliteDialect) mapErr(op, display string, err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code() & 0xff {
	case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
		return fmt.Errorf("storage: %s %s: %w (%w)", op, display, ErrLocked, err)
	case 11, 26: // SQLITE_CORRUPT, SQLITE_NOTADB
		return fmt.Errorf("storage: %s %s: %w (%w)", op, display, ErrCorrupt, err)
	case 13: // SQLITE_FULL
		return fmt.Errorf("storage: %s %s: the disk is full: %w", op, display, err)
	case 14: // SQLITE_CANTOPEN
		return fmt.Errorf("storage: %s %s: cannot open the file (does its folder exist and is it writable?): %w", op, display, err)
	case 8: // SQLITE_READONLY
		return fmt.Errorf("storage: %s %s: the file is read-only for this user: %w", op, display, err)
	case 10: // SQLITE_IOERR
		return fmt.Errorf("storage: %s %s: disk I/O error: %w", op, display, err)
	}
	return nil
}

// integrity runs PRAGMA integrity_check and foreign_key_check.
func (sqliteDialect) integrity(ctx context.Context, tx *sql.Tx) ([]string, error) {
	var problems []string
	rows, err := tx.QueryContext(ctx, `PRAGMA integrity_check(20)`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return nil, err
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var table, parent string
		var rowid, fkid sql.NullInt64
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			return nil, err
		}
		problems = append(problems, fmt.Sprintf("%s row %d refers to a missing %s row", table, rowid.Int64, parent))
		if len(problems) >= 20 {
			break
		}
	}
	return problems, rows.Err()
}

// backup copies the file with VACUUM INTO, while readers and writers
// carry on.
func (sqliteDialect) backup(ctx context.Context, s *Store, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("storage: backup %s to %s: the file exists; choose a new name", s.path, dst)
	}
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return s.opErr("backup to "+dst+" from", err)
	}
	return nil
}

// lastFailureHint makes SQLite read a relay's latest failure from the
// partial index of failures rather than scanning its successes.
func (sqliteDialect) lastFailureHint() string { return "INDEXED BY results_failures" }

// execAll runs the statements one by one: they are function calls.
func (sqliteDialect) execAll(ctx context.Context, tx *sql.Tx, stmts []stmt) error {
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st.query, st.args...); err != nil {
			return err
		}
	}
	return nil
}

// afterBulkLoad: SQLite plans from its indexes alone (no ANALYZE has ever
// run on gmailtls's files), so there is nothing to refresh.
func (sqliteDialect) afterBulkLoad(context.Context, *Store) error { return nil }

// ---- storage copy (copy.go) ----

// tableNames lists the tables but SQLite's own (sqlite_sequence,
// sqlite_stat1); the schema version is a pragma, not a table.
func (sqliteDialect) tableNames(ctx context.Context, q querier) ([]string, error) {
	return queryNames(ctx, q, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
}

// resetIDs has nothing to do: a row inserted without an id into an INTEGER
// PRIMARY KEY gets the largest id + 1 by itself.
func (sqliteDialect) resetIDs(context.Context, *sql.Tx, string) error { return nil }
