package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgDialect is PostgreSQL's side of the engine layer. Its connections
// (pgConn) rewrite the shared SQL's placeholders, send booleans as the
// integers 0 and 1 the schema keeps, and begin every write transaction by
// taking the writer lock: a transaction-level advisory lock on
// pgWriterLock, PostgreSQL's equivalent of SQLite's BEGIN IMMEDIATE, held
// until commit or rollback, across every process writing to the database.
type pgDialect struct {
	// password is the DSN's password, kept only to make sure no message
	// ever shows it.
	password string
}

// pgWriterLock is the advisory lock key of the single writer: "gmailtls"
// in ASCII.
const pgWriterLock int64 = 0x676d61696c746c73

// pgSchemaTable holds PostgreSQL's schema version (SQLite's is PRAGMA
// user_version), one row written by every migration.
const pgSchemaTable = "gmailtls_schema"

// pgIdleInTransaction is how long PostgreSQL lets a session sit idle in
// a transaction before it ends the session (and its locks): longer than
// the busy timeout, so that a writer waiting for the lock fails first,
// and shorter than the leader lease (10 s), so that the writer lock of a
// frozen leader is free again before a follower may take the lease. No
// transaction of gmailtls waits on its client for more than a few
// milliseconds between statements.
const pgIdleInTransaction = 8 * time.Second

// pgSessionLimits are the session settings that bound how long a vanished
// client can hold locks (see openPostgres).
var pgSessionLimits = map[string]string{
	"idle_in_transaction_session_timeout": strconv.FormatInt(pgIdleInTransaction.Milliseconds(), 10),
	"tcp_keepalives_idle":                 "5",
	"tcp_keepalives_interval":             "2",
	"tcp_keepalives_count":                "3",
	"tcp_user_timeout":                    "10000",
}

// pgMaxIdle is how long an idle pooled connection is kept: after a
// failover of PostgreSQL, dead connections are replaced at the latest this
// long after their last use (a failed use replaces them at once).
const pgMaxIdle = time.Minute

// pgKeepAlive is the idle time before TCP keepalive probes on PostgreSQL
// connections; three unanswered probes a third of it apart close one.
const pgKeepAlive = 15 * time.Second

// openPostgres opens the pool of opts.DSN and returns it with the display
// form of the DSN (no password).
func openPostgres(opts Options) (*sql.DB, string, pgDialect, error) {
	if opts.DSN == "" {
		return nil, "", pgDialect{}, errors.New("storage: driver postgres needs a connection string ([storage] dsn_env or dsn_file)")
	}
	cfg, err := pgx.ParseConfig(opts.DSN)
	if err != nil {
		// pgx redacts the password of a DSN it cannot parse; its
		// message still quotes the rest, which is the operator's.
		return nil, "", pgDialect{}, fmt.Errorf("storage: the PostgreSQL connection string is not valid: %w", err)
	}
	d := pgDialect{password: cfg.Password}
	display := pgDisplay(cfg)
	if opts.MaxPages > 0 {
		return nil, display, d, fmt.Errorf("storage: open %s: Options.MaxPages is a SQLite limit; PostgreSQL has none", display)
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	// A writer waits for the writer lock as long as SQLite's busy
	// timeout, then fails with lock_not_available (ErrLocked).
	cfg.RuntimeParams["lock_timeout"] = strconv.FormatInt(busyTimeout.Milliseconds(), 10)
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "gmailtls"
	}
	// A replica that stops between two statements of a transaction (a
	// frozen process or VM, a network cut) would hold the writer lock,
	// and with it every replica's writes and the leader lease, until its
	// session ended: PostgreSQL ends a session idle in a transaction
	// after pgIdleInTransaction, and notices a dead peer within seconds
	// through TCP keepalives and tcp_user_timeout instead of the kernel's
	// two hours. A DSN naming its own settings keeps them.
	for k, v := range pgSessionLimits {
		if cfg.RuntimeParams[k] == "" {
			cfg.RuntimeParams[k] = v
		}
	}
	// pgx prepares every statement once per connection; after five runs
	// PostgreSQL may switch a prepared statement to a generic plan, made
	// without the parameters' values. Read transactions plan every
	// statement for its values (pgBeginRead); the one-statement reads
	// outside them (readOne) and writes keep PostgreSQL's default.
	// PostgreSQL's default random_page_cost (4) models spinning disks and
	// makes it prefer hashing a whole table of runs to a hundred lookups
	// by primary key; gmailtls's working set is small and cached (and
	// servers have SSDs), for which 1.1 is the usual setting. A DSN
	// naming its own keeps it.
	if cfg.RuntimeParams["random_page_cost"] == "" {
		cfg.RuntimeParams["random_page_cost"] = "1.1"
	}
	if opts.Mode == ModeReadOnly {
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	// TCP keepalives every few seconds: a connection whose server went
	// away without a word (a failover, a network cut) fails within about
	// pgKeepAlive × 3 instead of the system's default hours, and the pool
	// replaces it.
	cfg.DialFunc = (&net.Dialer{
		Timeout:         cfg.ConnectTimeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: pgKeepAlive, Interval: pgKeepAlive / 3, Count: 3},
	}).DialContext
	db := sql.OpenDB(&pgConnector{inner: stdlib.GetConnector(*cfg)})
	n := poolSize(opts)
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(pgMaxIdle)
	return db, display, d, nil
}

// pgDisplay is the DSN as messages show it:
// postgres://user@host:port/dbname, without the password.
func pgDisplay(cfg *pgx.ConnConfig) string {
	host := cfg.Host
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "/") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, host, cfg.Port, cfg.Database)
}

func (pgDialect) engine() string { return EnginePostgres }

func (pgDialect) noun() string { return "database" }

// readTx is a REPEATABLE READ, READ ONLY transaction: one snapshot for
// every query of a read, as SQLite's read transactions have.
func (pgDialect) readTx() *sql.TxOptions {
	return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
}

func (pgDialect) afterOpen(context.Context, *Store) error { return nil }

func (pgDialect) schemaVersion(ctx context.Context, q querier) (int, error) {
	// pg_class is read, not to_regclass: a backend that waited on the
	// writer lock while another migrated has not yet processed the
	// catalog invalidations (an advisory lock does not), and its cached
	// "no such table" would hide the version just written.
	var exists bool
	if err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relname = '`+pgSchemaTable+`' AND n.nspname = current_schema())`).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT max(version) FROM `+pgSchemaTable).Scan(&v)
	return int(v.Int64), err
}

func (pgDialect) setSchemaVersion(ctx context.Context, tx *sql.Tx, v int) error {
	// No bound parameters: several statements in one simple query; v is
	// an int we control.
	_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+pgSchemaTable+` (version BIGINT NOT NULL);
		DELETE FROM `+pgSchemaTable+`;
		INSERT INTO `+pgSchemaTable+` (version) VALUES (`+strconv.Itoa(v)+`)`)
	return err
}

func (pgDialect) tables(ctx context.Context, q querier) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema()`).Scan(&n)
	return n, err
}

func (pgDialect) noSchema(display string, tables int) error {
	if tables > 0 {
		return fmt.Errorf("storage: open %s: %w: the database's schema holds %d tables but no gmailtls schema version (no %s table); it is another program's database; give gmailtls a database of its own rather than letting it write into this one", display, ErrNoDatabase, tables, pgSchemaTable)
	}
	return fmt.Errorf("storage: open %s: %w: the PostgreSQL database holds no gmailtls schema; gmailtls serve or \"gmailtls storage init\" creates it", display, ErrNoDatabase)
}

// mapErr words PostgreSQL's errors for an operator. Every PostgreSQL
// error is worded here (nil only for errors of other origins), with the
// password, should a message ever quote it, blanked.
func (d pgDialect) mapErr(op, display string, err error) error {
	err = d.redact(err)
	prefix := fmt.Sprintf("storage: %s %s", op, display)
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "55P03": // serialization_failure, deadlock_detected, lock_not_available
			return fmt.Errorf("%s: %w (%w)", prefix, ErrLocked, err)
		case "53100": // disk_full
			return fmt.Errorf("%s: the disk is full on the PostgreSQL server: %w", prefix, err)
		case "25006": // read_only_sql_transaction
			return fmt.Errorf("%s: the database is read-only (a read-only command, or a standby server: does the connection string name the primary?): %w", prefix, err)
		case "28P01", "28000": // invalid_password, invalid_authorization_specification
			return fmt.Errorf("%s: PostgreSQL refused the credentials (check the user and password of the connection string in [storage] dsn_env or dsn_file): %w", prefix, err)
		case "3D000": // invalid_catalog_name
			return fmt.Errorf("%s: the database does not exist on the PostgreSQL server; create it (createdb) first: %w", prefix, err)
		case "42501": // insufficient_privilege
			return fmt.Errorf("%s: the PostgreSQL user lacks a permission (docs/operations.md lists them): %w", prefix, err)
		case "53300", "57P03": // too_many_connections, cannot_connect_now
			return fmt.Errorf("%s: PostgreSQL does not accept connections now (too many, or starting up): %w", prefix, err)
		case "57P01", "57P02": // admin_shutdown, crash_shutdown
			return fmt.Errorf("%s: the PostgreSQL server shut down (a restart or a failover?): %w", prefix, err)
		case "XX001", "XX002": // data_corrupted, index_corrupted
			return fmt.Errorf("%s: %w (%w)", prefix, ErrCorrupt, err)
		}
		return fmt.Errorf("%s: %w", prefix, err)
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%s: cannot connect to PostgreSQL: connection refused (is the server running and listening on that host and port?): %w", prefix, err)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%s: PostgreSQL did not answer in time (is the host reachable?): %w", prefix, err)
	case errors.As(err, &ce):
		return fmt.Errorf("%s: cannot connect to PostgreSQL: %w", prefix, err)
	case errors.Is(err, driver.ErrBadConn) || pgconn.Timeout(err) || isConnLost(err):
		return fmt.Errorf("%s: the connection to PostgreSQL was lost (a restart or a failover?): %w", prefix, err)
	}
	return nil
}

// isConnLost reports whether err is a connection dropped under a query.
func isConnLost(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// redact returns err with the password blanked from its message.
func (d pgDialect) redact(err error) error {
	if d.password == "" || !strings.Contains(err.Error(), d.password) {
		return err
	}
	return redacted{err: err, password: d.password}
}

// redacted is an error whose message hides a password; errors.Is and As
// still see the original.
type redacted struct {
	err      error
	password string
}

func (r redacted) Error() string { return strings.ReplaceAll(r.err.Error(), r.password, "xxxxx") }

func (r redacted) Unwrap() error { return r.err }

// integrity has nothing to check that PostgreSQL does not check itself: it
// enforces the foreign keys on every write, and damaged pages surface as
// errors of the queries reading them (data_corrupted, mapped to
// ErrCorrupt). It proves the tables are readable.
func (pgDialect) integrity(ctx context.Context, tx *sql.Tx) ([]string, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM relays`).Scan(&n)
	return nil, err
}

// ErrBackupPostgres is the refusal of [Store.Backup] on PostgreSQL,
// worded to be shown as it is.
var ErrBackupPostgres = errors.New("gmailtls backup copies SQLite files only; back up a PostgreSQL database with pg_dump (docs/operations.md)")

func (pgDialect) backup(_ context.Context, s *Store, _ string) error {
	return fmt.Errorf("storage: backup %s: %w", s.path, ErrBackupPostgres)
}

// afterBulkLoad vacuums and analyses the database: until autovacuum gets to
// them, freshly loaded tables have no statistics (the planner then guesses,
// and guesses hash joins over whole tables) and no visibility map (index-only
// scans then read the table too).
func (pgDialect) afterBulkLoad(ctx context.Context, s *Store) error {
	if _, err := s.db.ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
		return s.opErr("analyse", err)
	}
	return nil
}

// lastFailureHint: PostgreSQL's planner picks the partial index itself.
func (pgDialect) lastFailureHint() string { return "" }

// pgPipelineQuery is the query text of an execAll: the one argument of
// the Exec is the pgPipeline, which pgConn.ExecContext sends as one batch.
const pgPipelineQuery = "-- gmailtls pipeline"

// pgPipeline is the statements of one execAll.
type pgPipeline []stmt

// execAll sends the statements as one pipeline, one round trip, through
// database/sql's Exec of tx (so that they run on tx's connection, inside
// it): a failing statement fails the batch, and the transaction with it.
func (pgDialect) execAll(ctx context.Context, tx *sql.Tx, stmts []stmt) error {
	switch len(stmts) {
	case 0:
		return nil
	case 1:
		_, err := tx.ExecContext(ctx, stmts[0].query, stmts[0].args...)
		return err
	}
	_, err := tx.ExecContext(ctx, pgPipelineQuery, pgPipeline(stmts))
	return err
}

// pgConnector makes the pool's connections: pgx's database/sql
// connections, wrapped in pgConn.
type pgConnector struct {
	inner driver.Connector
}

func (c *pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &pgConn{Conn: conn.(*stdlib.Conn)}, nil
}

func (c *pgConnector) Driver() driver.Driver { return c.inner.Driver() }

// pgConn is one pooled connection: pgx's, with the shared SQL's
// placeholders rewritten, booleans sent as 0 and 1, and the writer lock
// taken at the start of every write transaction.
type pgConn struct {
	*stdlib.Conn
}

var (
	_ driver.ConnBeginTx        = (*pgConn)(nil)
	_ driver.ConnPrepareContext = (*pgConn)(nil)
	_ driver.ExecerContext      = (*pgConn)(nil)
	_ driver.QueryerContext     = (*pgConn)(nil)
	_ driver.NamedValueChecker  = (*pgConn)(nil)
	_ driver.SessionResetter    = (*pgConn)(nil)
	_ driver.Pinger             = (*pgConn)(nil)
)

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.Prepare(pgRewrite(query))
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, pgRewrite(query))
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if query == pgPipelineQuery && len(args) == 1 {
		if p, ok := args[0].Value.(pgPipeline); ok {
			return c.execPipeline(ctx, p)
		}
	}
	return c.Conn.ExecContext(ctx, pgRewrite(query), args)
}

// execPipeline sends p as one pgx batch and reads every statement's
// result; the rows affected are summed.
func (c *pgConn) execPipeline(ctx context.Context, p pgPipeline) (driver.Result, error) {
	b := &pgx.Batch{}
	for _, st := range p {
		args := make([]any, len(st.args))
		for i, a := range st.args {
			args[i] = pgValue(a)
		}
		b.Queue(pgRewrite(st.query), args...)
	}
	br := c.Conn.Conn().SendBatch(ctx, b)
	var n int64
	for range p {
		tag, err := br.Exec()
		if err != nil {
			_ = br.Close()
			return nil, err
		}
		n += tag.RowsAffected()
	}
	if err := br.Close(); err != nil {
		return nil, err
	}
	return driver.RowsAffected(n), nil
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, pgRewrite(query), args)
}

// CheckNamedValue sends booleans as the integers the schema keeps them
// as (SQLite's driver does the same); everything else goes to pgx as is.
func (c *pgConn) CheckNamedValue(nv *driver.NamedValue) error {
	nv.Value = pgValue(nv.Value)
	return nil
}

// pgValue is v as PostgreSQL's connections send it: a boolean as the
// integer 0 or 1 the schema keeps, anything else as it is.
func pgValue(v any) any {
	if b, ok := v.(bool); ok {
		if b {
			return int64(1)
		}
		return int64(0)
	}
	return v
}

func (c *pgConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// pgBeginWrite starts a write transaction and takes the writer lock, in
// one round trip. Writes plan with the session's setting, PostgreSQL's
// default (a generic plan once five custom ones cost no less): their
// statements touch a relay-hour or a few rows by key, where one plan fits
// every value and planning each time would cost more than running them.
var pgBeginWrite = `BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock(` +
	strconv.FormatInt(pgWriterLock, 10) + `)`

// pgBeginRead starts a read transaction (readTx: one REPEATABLE READ,
// READ ONLY snapshot) whose statements are planned for their values, in
// one round trip: the package's time windows range from a minute to a
// year, and one generic plan cannot serve both; planning is cheap next to
// a misplanned scan.
const pgBeginRead = `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL plan_cache_mode = force_custom_plan`

// BeginTx begins read transactions planned for their values, and write
// transactions with the writer lock: every write of every process is
// serialised, and each statement of a write sees everything committed
// before it.
func (c *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	begin := pgBeginWrite
	if opts.ReadOnly {
		begin = pgBeginRead
	}
	pc := c.Conn.Conn()
	if _, err := pc.Exec(ctx, begin); err != nil {
		if pc.PgConn().TxStatus() != 'I' && !pc.IsClosed() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = pc.Exec(ctx, "ROLLBACK")
		}
		return nil, err
	}
	return &pgTx{ctx: ctx, conn: pc}, nil
}

// pgTx is a transaction begun by pgConn.BeginTx (a write, or a read
// planned for its values). Its commit runs under the transaction's
// context, as pgx's own transactions do.
type pgTx struct {
	ctx  context.Context
	conn *pgx.Conn
}

func (t *pgTx) Commit() error {
	tag, err := t.conn.Exec(t.ctx, "COMMIT")
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		// COMMIT of a failed transaction rolls it back.
		return pgx.ErrTxCommitRollback
	}
	return nil
}

func (t *pgTx) Rollback() error {
	if t.conn.IsClosed() {
		return driver.ErrBadConn
	}
	_, err := t.conn.Exec(context.Background(), "ROLLBACK")
	return err
}

// pgRewritten caches rewritten statements: the package's SQL is a fixed
// set of texts (plus a few built from fixed parts).
var pgRewritten sync.Map // string -> string

// pgRewrite turns the shared SQL's placeholders into PostgreSQL's: ? is
// the next $N, ?N is $N. Quoted strings, quoted identifiers and comments
// are left as they are.
func pgRewrite(query string) string {
	if v, ok := pgRewritten.Load(query); ok {
		return v.(string)
	}
	out := rewritePlaceholders(query)
	pgRewritten.Store(query, out)
	return out
}

func rewritePlaceholders(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	next := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(q) {
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			b.WriteString(q[i:min(j+1, len(q))])
			i = j
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i - 1
			}
			b.WriteString(q[i : i+j+1])
			i += j
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j := strings.Index(q[i+2:], "*/")
			end := len(q)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			b.WriteString(q[i:end])
			i = end - 1
		case c == '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			b.WriteByte('$')
			if j > i+1 {
				b.WriteString(q[i+1 : j])
			} else {
				next++
				b.WriteString(strconv.Itoa(next))
			}
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ---- storage copy (copy.go) ----

// tableNames lists the tables of the connection's schema but the
// schema-version table.
func (pgDialect) tableNames(ctx context.Context, q querier) ([]string, error) {
	return queryNames(ctx, q, `SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()
		AND tablename <> '`+pgSchemaTable+`' ORDER BY tablename`)
}

// resetIDs moves the identity sequence of table's id column past the
// largest id (GENERATED BY DEFAULT AS IDENTITY does not follow explicit
// ids); pg_get_serial_sequence is NULL, and setval a no-op, for an id that
// is not an identity (health).
func (pgDialect) resetIDs(ctx context.Context, tx *sql.Tx, table string) error {
	_, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence(?, 'id'), COALESCE((SELECT max(id) FROM `+table+`), 0) + 1, false)`, table)
	return err
}
