package storage

import (
	"context"
	"database/sql"
)

// Engine names, as [Options.Driver] takes them and [Store.Engine] returns
// them.
const (
	EngineSQLite   = "sqlite"
	EnginePostgres = "postgres"
)

// dialect is what differs between the two engines. The SQL of the rest of
// the package is shared: it is written with ? and ?N placeholders and in
// the common subset of SQLite and PostgreSQL (ON CONFLICT ... DO UPDATE,
// RETURNING, CASE instead of the scalar max and min, CAST AS BIGINT);
// PostgreSQL's connections rewrite the placeholders (dialect_postgres.go).
// Every SQL text that must differ lives in dialect_sqlite.go or
// dialect_postgres.go.
type dialect interface {
	// engine is EngineSQLite or EnginePostgres.
	engine() string
	// noun names the database in messages: "file" or "database".
	noun() string
	// readTx is the options of a read transaction: a consistent,
	// read-only snapshot.
	readTx() *sql.TxOptions
	// afterOpen checks a freshly opened, writable pool (SQLite: the
	// switch to WAL).
	afterOpen(ctx context.Context, s *Store) error
	// schemaVersion reads the schema version; 0 for a database without
	// one.
	schemaVersion(ctx context.Context, q querier) (int, error)
	// setSchemaVersion records v inside a migration's transaction.
	setSchemaVersion(ctx context.Context, tx *sql.Tx, v int) error
	// tables counts the tables of the database, ours or not.
	tables(ctx context.Context, q querier) (int, error)
	// noSchema words the refusal of a database without a schema version
	// holding tables tables (0: an empty one).
	noSchema(display string, tables int) error
	// mapErr words an engine error for an operator, or returns nil when
	// it does not recognise err.
	mapErr(op, display string, err error) error
	// integrity lists what the engine finds damaged (empty: nothing).
	integrity(ctx context.Context, tx *sql.Tx) ([]string, error)
	// backup writes a consistent copy of the database to dst.
	backup(ctx context.Context, s *Store, dst string) error
	// afterBulkLoad runs after a bulk load (the history generator): what
	// the engine needs to plan queries over the new rows well.
	afterBulkLoad(ctx context.Context, s *Store) error
	// lastFailureHint is inserted after "FROM results" in the query of a
	// relay's latest failure: an index hint, or nothing.
	lastFailureHint() string
	// execAll runs stmts, in order, in tx: statements whose results
	// nothing reads. PostgreSQL sends them as one pipeline (one round
	// trip); SQLite runs them one by one.
	execAll(ctx context.Context, tx *sql.Tx, stmts []stmt) error

	// For Copy (copy.go):
	// tableNames lists the database's tables, without the engine's own
	// and the schema-version table.
	tableNames(ctx context.Context, q querier) ([]string, error)
	// resetIDs makes the next row inserted into table without an id get
	// one past the largest id, after a copy wrote explicit ids.
	resetIDs(ctx context.Context, tx *sql.Tx, table string) error
}

// stmt is one statement of execAll: SQL with ? placeholders and its
// arguments.
type stmt struct {
	query string
	args  []any
}
