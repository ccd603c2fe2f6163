package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// copyTables are the tables [Copy] copies, parents before the children
// whose foreign keys name them. A table the source holds that is not
// listed here (nor the engine's schema-version table) stops the copy: a
// new table must be added here, or its history would be lost. A listed
// table the source does not hold is skipped (leases, before the schema
// that adds it).
var copyTables = []string{
	"relays", "mx_hosts", "paths", "tls_params", "cert_chains",
	"runs", "results", "newest_success", "control_failures",
	"events", "incidents", "alert_models", "audit",
	"rollups", "rollup_last", "hourly", "meta",
	"outbox", "outbox_claims", "health", "queue_samples", "log_samples",
	"slack_requests", "leases",
}

// setupTables may hold rows in a destination that holds no history yet:
// what "gmailtls storage init" and a serve start write before anything is
// probed (the relays, the health row, the leader lease, Slack's replay
// cache). Copy replaces them with the source's.
var setupTables = map[string]bool{"relays": true, "health": true, "leases": true, "slack_requests": true}

// copyBatchParams bounds the bound parameters of one INSERT of a copy
// (SQLite accepts 32766, PostgreSQL 65535).
const copyBatchParams = 8000

// Errors of [Copy].
var (
	// ErrNotEmpty means the destination already holds history: a copy
	// goes into a fresh database only, never merges two histories.
	ErrNotEmpty = errors.New("the destination already holds history")
	// ErrSameDatabase means source and destination are one database.
	ErrSameDatabase = errors.New("source and destination are the same database")
)

// TableCount is one table of a copy: the rows the source held and the rows
// the destination holds after the copy (always equal when Copy returns no
// error).
type TableCount struct {
	Table          string
	Source, Copied int64
}

// Copy copies the whole history of src into dst, keeping every id: each
// table of copyTables in one write transaction of dst, read from one
// consistent snapshot of src (which may be opened read-only). dst must
// hold no history (a freshly created database, or one that "gmailtls
// storage init" or a serve start has only set up); src and dst may be of
// either engine. After the commit the rows of every table are counted in
// dst again and compared with src's; the counts are returned in
// copyTables' order. PostgreSQL's identity sequences are moved past the
// copied ids, so that new rows get new ids.
func Copy(ctx context.Context, dst, src *Store) ([]TableCount, error) {
	if sameDatabase(dst, src) {
		return nil, fmt.Errorf("storage: copy %s to %s: %w", src.path, dst.path, ErrSameDatabase)
	}
	if dst.mode == ModeReadOnly {
		return nil, fmt.Errorf("storage: copy to %s: the destination is opened read-only", dst.path)
	}
	stx, err := src.db.BeginTx(ctx, src.dialect.readTx())
	if err != nil {
		return nil, src.opErr("copy from", err)
	}
	defer stx.Rollback() //nolint:errcheck // read-only
	tables, err := copySourceTables(ctx, src, stx)
	if err != nil {
		return nil, src.opErr("copy from", err)
	}
	counts := make([]TableCount, len(tables))
	for i, t := range tables {
		counts[i].Table = t
		if counts[i].Source, err = countRows(ctx, stx, t); err != nil {
			return nil, src.opErr("copy from", fmt.Errorf("counting %s: %w", t, err))
		}
	}
	err = dst.write(ctx, "copy to", func(dtx *sql.Tx) error {
		if err := copyPrepare(ctx, dst, dtx, tables); err != nil {
			return err
		}
		for i, t := range tables {
			n, hasID, err := copyTable(ctx, stx, dtx, t)
			if err != nil {
				return err
			}
			if n != counts[i].Source {
				return fmt.Errorf("%s: read %d rows from the source, which counts %d", t, n, counts[i].Source)
			}
			if hasID {
				if err := dst.dialect.resetIDs(ctx, dtx, t); err != nil {
					return fmt.Errorf("moving the id sequence of %s past the copied ids: %w", t, err)
				}
			}
		}
		// What the cache remembers of the destination's setup rows is
		// gone with them.
		dst.cache.addPending(dst.cache.init)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var bad []string
	err = dst.read(ctx, "copy to", func(tx *sql.Tx) error {
		for i := range counts {
			n, err := countRows(ctx, tx, counts[i].Table)
			if err != nil {
				return fmt.Errorf("counting %s: %w", counts[i].Table, err)
			}
			counts[i].Copied = n
			if n != counts[i].Source {
				bad = append(bad, fmt.Sprintf("%s: %d rows in the source, %d in the destination", counts[i].Table, counts[i].Source, n))
			}
		}
		return nil
	})
	if err != nil {
		return counts, err
	}
	if len(bad) > 0 {
		return counts, fmt.Errorf("storage: copy to %s: the counts differ after the copy: %s", dst.path, strings.Join(bad, "; "))
	}
	return counts, nil
}

// sameDatabase reports whether a and b are one database: the same file,
// or the same PostgreSQL database (as far as the display forms tell).
func sameDatabase(a, b *Store) bool {
	if a.Engine() != b.Engine() {
		return false
	}
	if a.path == b.path {
		return true
	}
	if a.Engine() != EngineSQLite {
		return false
	}
	fa, errA := os.Stat(a.path)
	fb, errB := os.Stat(b.path)
	if errA == nil && errB == nil {
		return os.SameFile(fa, fb)
	}
	pa, errA := filepath.Abs(a.path)
	pb, errB := filepath.Abs(b.path)
	return errA == nil && errB == nil && pa == pb
}

// copySourceTables lists the tables of copyTables src holds, in order, and
// refuses a table it does not know.
func copySourceTables(ctx context.Context, s *Store, tx *sql.Tx) ([]string, error) {
	have, err := s.dialect.tableNames(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("listing the tables: %w", err)
	}
	for _, t := range have {
		if !slices.Contains(copyTables, t) {
			return nil, fmt.Errorf("the database holds a table this gmailtls does not know how to copy: %s (is the source written by a newer gmailtls?)", t)
		}
	}
	var out []string
	for _, t := range copyTables {
		if slices.Contains(have, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// copyPrepare checks that the destination holds every table to copy and
// no history, that no serve holds its leader lease, and empties its setup
// tables.
func copyPrepare(ctx context.Context, dst *Store, tx *sql.Tx, tables []string) error {
	have, err := dst.dialect.tableNames(ctx, tx)
	if err != nil {
		return fmt.Errorf("listing the tables: %w", err)
	}
	var held []string
	for _, t := range tables {
		if !slices.Contains(have, t) {
			return fmt.Errorf("the destination has no table %s: its schema differs from the source's", t)
		}
		n, err := countRows(ctx, tx, t)
		if err != nil {
			return fmt.Errorf("counting %s: %w", t, err)
		}
		if n > 0 && !setupTables[t] {
			held = append(held, fmt.Sprintf("%d rows in %s", n, t))
		}
	}
	if len(held) > 0 {
		return fmt.Errorf("%w (%s): copy into a fresh, empty database", ErrNotEmpty, strings.Join(held, ", "))
	}
	if slices.Contains(have, "leases") {
		var live int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM leases WHERE expires_at > ?`, ms(dst.now())).Scan(&live); err != nil {
			return fmt.Errorf("reading the leader lease: %w", err)
		}
		if live > 0 {
			return errors.New("a gmailtls serve holds the destination's leader lease: stop every serve on the destination before copying into it")
		}
	}
	for _, t := range slices.Backward(tables) {
		if setupTables[t] {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+t); err != nil {
				return fmt.Errorf("emptying %s: %w", t, err)
			}
		}
	}
	return nil
}

// countRows counts the rows of table.
func countRows(ctx context.Context, q querier, table string) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n)
	return n, err
}

// copyTable copies every row of table from the source transaction to the
// destination's, in batched INSERTs naming the columns, and returns the
// rows copied and whether the table has an id column. Values are converted to what the destination's column
// keeps (text or bytes) where the engines' drivers differ.
func copyTable(ctx context.Context, stx, dtx *sql.Tx, table string) (total int64, hasID bool, err error) {
	kinds, err := columnKinds(ctx, dtx, table)
	if err != nil {
		return 0, false, fmt.Errorf("reading the columns of %s in the destination: %w", table, err)
	}
	_, hasID = kinds["id"]
	rows, err := stx.QueryContext(ctx, `SELECT * FROM `+table)
	if err != nil {
		return 0, false, fmt.Errorf("reading %s from the source: %w", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, false, fmt.Errorf("reading %s from the source: %w", table, err)
	}
	if len(cols) != len(kinds) {
		return 0, false, fmt.Errorf("%s has %d columns in the source and %d in the destination: the schemas differ", table, len(cols), len(kinds))
	}
	colKinds := make([]columnKind, len(cols))
	for i, c := range cols {
		k, ok := kinds[c]
		if !ok {
			return 0, false, fmt.Errorf("%s has a column %s in the source only: the schemas differ", table, c)
		}
		colKinds[i] = k
	}
	perBatch := max(1, copyBatchParams/len(cols))
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	head := `INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `) VALUES `
	flush := func(args []any) error {
		n := len(args) / len(cols)
		if n == 0 {
			return nil
		}
		q := head + strings.TrimSuffix(strings.Repeat(row+",", n), ",")
		if _, err := dtx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("writing %s: %w", table, err)
		}
		return nil
	}
	args := make([]any, 0, perBatch*len(cols))
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return total, false, fmt.Errorf("reading %s from the source: %w", table, err)
		}
		for i, v := range vals {
			args = append(args, colKinds[i].convert(v))
		}
		total++
		if len(args) == perBatch*len(cols) {
			if err := flush(args); err != nil {
				return total, false, err
			}
			args = args[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return total, false, fmt.Errorf("reading %s from the source: %w", table, err)
	}
	return total, hasID, flush(args)
}

// columnKind is what a destination column keeps, as far as the copy must
// convert values for it.
type columnKind int

const (
	columnOther columnKind = iota
	columnText
	columnBytes
)

// columnKinds reads the columns of table in tx, by name.
func columnKinds(ctx context.Context, tx *sql.Tx, table string) (map[string]columnKind, error) {
	rows, err := tx.QueryContext(ctx, `SELECT * FROM `+table+` WHERE 1 = 0`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	out := make(map[string]columnKind, len(types))
	for _, ct := range types {
		t := strings.ToUpper(ct.DatabaseTypeName())
		switch {
		case strings.Contains(t, "BYTEA") || strings.Contains(t, "BLOB"):
			out[ct.Name()] = columnBytes
		case strings.Contains(t, "TEXT") || strings.Contains(t, "CHAR"):
			out[ct.Name()] = columnText
		default:
			out[ct.Name()] = columnOther
		}
	}
	return out, rows.Err()
}

// convert gives v the Go type the destination column takes: SQLite's
// driver may hand text as bytes and bytes as text.
func (k columnKind) convert(v any) any {
	switch k {
	case columnText:
		if b, ok := v.([]byte); ok {
			return string(b)
		}
	case columnBytes:
		if s, ok := v.(string); ok {
			return []byte(s)
		}
	}
	return v
}

// queryNames runs a query of one text column: the dialects' tableNames.
func queryNames(ctx context.Context, q querier, query string) ([]string, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
