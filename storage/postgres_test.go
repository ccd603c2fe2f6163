package storage

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/probe"
)

func TestRewritePlaceholders(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE x = ? AND y = ?`, `SELECT a FROM t WHERE x = $1 AND y = $2`},
		{`VALUES (?1, ?2) ON CONFLICT DO UPDATE SET a = ?2, b = ?10`, `VALUES ($1, $2) ON CONFLICT DO UPDATE SET a = $2, b = $10`},
		{`SELECT '?', 'it''s ?', "odd?col" FROM t WHERE x = ?`, `SELECT '?', 'it''s ?', "odd?col" FROM t WHERE x = $1`},
		{"-- what's this? \nSELECT ? /* and ? */ , ?", "-- what's this? \nSELECT $1 /* and ? */ , $2"},
		{`SELECT 'unterminated ?`, `SELECT 'unterminated ?`},
	} {
		if got := rewritePlaceholders(c.in); got != c.want {
			t.Errorf("rewrite(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestMigrationsMatch: both engines have the same migrations, by number
// and name, so that a version means the same schema on both.
func TestMigrationsMatch(t *testing.T) {
	lite, pg := migrationsFor(EngineSQLite), migrationsFor(EnginePostgres)
	if len(lite) != len(pg) {
		t.Fatalf("%d SQLite migrations, %d PostgreSQL ones", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].name != pg[i].name {
			t.Errorf("migration %d: %s (SQLite) vs %s (PostgreSQL)", i+1, lite[i].name, pg[i].name)
		}
	}
}

// countingHandler counts the log records whose message is msg.
type countingHandler struct {
	slog.Handler
	msg string
	n   *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}

// TestPostgresConcurrentMigration: two processes starting at once on an
// empty database migrate it once, both opening it.
func TestPostgresConcurrentMigration(t *testing.T) {
	dsn := postgresEngine.fresh(t)
	ctx := context.Background()
	var migrated atomic.Int64
	log := slog.New(countingHandler{Handler: slog.DiscardHandler, msg: "storage: schema migrated", n: &migrated})
	const opens = 4
	stores := make([]*Store, opens)
	errs := make([]error, opens)
	var wg sync.WaitGroup
	for i := range opens {
		wg.Go(func() {
			stores[i], errs[i] = Open(ctx, "", Options{Driver: EnginePostgres, DSN: dsn, Logger: log})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	if got := migrated.Load(); got != int64(SchemaVersion()) {
		t.Errorf("%d migrations applied by %d processes, want %d (each once)", got, opens, SchemaVersion())
	}
	for i, s := range stores {
		if v, err := s.dialect.schemaVersion(ctx, s.db); err != nil || v != SchemaVersion() {
			t.Errorf("store %d: version %d, %v", i, v, err)
		}
	}
}

// holdWrite begins a write transaction on s, runs first in it (nil:
// nothing) and returns once the transaction holds the writer lock; the
// transaction commits when release is called, and done then gets the
// write's outcome.
func holdWrite(ctx context.Context, s *Store, first func(tx *sql.Tx) error) (release func(), done <-chan error) {
	held, rel := make(chan struct{}), make(chan struct{})
	out := make(chan error, 1)
	go func() {
		out <- s.write(ctx, "hold the writer lock", func(tx *sql.Tx) error {
			if first != nil {
				if err := first(tx); err != nil {
					return err
				}
			}
			close(held)
			<-rel
			return nil
		})
	}()
	select {
	case <-held:
	case err := <-out:
		out <- err // the write failed before holding the lock: done reports it
	}
	return sync.OnceFunc(func() { close(rel) }), out
}

// TestPostgresWriterLock: two Stores on one database (two replicas) take
// turns to write: a write of one waits for the other's to commit, and
// both writing the same new relays at once lose nothing.
func TestPostgresWriterLock(t *testing.T) {
	ctx := context.Background()
	dsn := postgresEngine.fresh(t)
	a := postgresEngine.open(t, dsn, nil)
	b := postgresEngine.open(t, dsn, nil)

	release, aDone := holdWrite(ctx, a, nil)
	bDone := make(chan error, 1)
	go func() { bDone <- b.Ping(ctx) }()
	select {
	case err := <-bDone:
		t.Fatalf("the second store wrote while the first held the writer lock (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-bDone:
		if err != nil {
			t.Fatalf("second store's write after the first committed: %v", err)
		}
	case <-time.After(busyTimeout):
		t.Fatal("the second store's write still waits after the first committed")
	}

	// Both replicas record runs of the same new relays at once.
	const runs = 20
	var wg sync.WaitGroup
	for _, s := range []*Store{a, b} {
		wg.Go(func() {
			for i := range runs {
				relay := "relay-" + strconv.Itoa(i%3)
				at := t0.Add(time.Duration(i) * time.Second)
				if _, _, err := s.RecordRun(ctx, Run{Relay: relay, StartedAt: at},
					[]probe.Result{okResult(relay, mx1, "192.0.2.1", "", at), failResult(relay, mx1, "192.0.2.2", "", at, probe.FailTLSReset)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	h, err := a.History(ctx, HistoryQuery{})
	if err != nil || len(h) != 2*2*runs {
		t.Fatalf("history: %d results (%v), want %d", len(h), err, 2*2*runs)
	}
	sum, err := b.Summary(ctx, t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	attempts, failures := 0, 0
	for _, r := range sum {
		attempts, failures = attempts+r.Attempts, failures+r.Failures
	}
	if attempts != 2*2*runs || failures != 2*runs || len(sum) != 3 {
		t.Errorf("summary over both replicas' writes: %d relays, %d attempts, %d failures; want 3, %d, %d", len(sum), attempts, failures, 2*2*runs, 2*runs)
	}
}

// TestPostgresWriterLockTimeout: a write waiting longer than the busy
// timeout for another process's writer lock fails with ErrLocked.
func TestPostgresWriterLockTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the busy timeout")
	}
	ctx := context.Background()
	dsn := postgresEngine.fresh(t)
	a := postgresEngine.open(t, dsn, nil)
	b := postgresEngine.open(t, dsn, nil)
	release, aDone := holdWrite(ctx, a, nil)
	err := b.Ping(ctx)
	release()
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), b.Path()) {
		t.Errorf("write past the busy timeout = %v; want ErrLocked naming %s", err, b.Path())
	}
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
}

// TestPostgresFrozenWriterReleasesTheLock: a replica that stops in the
// middle of a write transaction (frozen, or cut off from PostgreSQL) holds
// the writer lock only until PostgreSQL ends its session for sitting idle
// in a transaction; then the other replica writes again, and the frozen
// one's commit fails instead of landing late.
func TestPostgresFrozenWriterReleasesTheLock(t *testing.T) {
	ctx := context.Background()
	dsn := postgresEngine.fresh(t)
	// The frozen replica's session limit is shortened through its DSN (a
	// DSN naming the setting keeps it); the default is pgIdleInTransaction.
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	frozen := postgresEngine.open(t, dsn+sep+"idle_in_transaction_session_timeout=1500", nil)
	other := postgresEngine.open(t, dsn, nil)
	var limit string
	if err := other.db.QueryRowContext(ctx, "SHOW idle_in_transaction_session_timeout").Scan(&limit); err != nil {
		t.Fatal(err)
	}
	if limit != "8s" {
		t.Errorf("idle_in_transaction_session_timeout = %s, want 8s (pgIdleInTransaction)", limit)
	}
	thaw, frozenDone := holdWrite(ctx, frozen, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('frozen', 'yes')`)
		return err
	})
	start := time.Now()
	var err error
	for time.Since(start) < 15*time.Second {
		if err = other.Ping(ctx); err == nil {
			break
		}
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("the other replica's write: %v, want ErrLocked until the frozen session ends", err)
		}
	}
	if err != nil {
		t.Fatalf("the other replica still cannot write after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
	t.Logf("the other replica wrote again after %s", time.Since(start).Round(time.Millisecond))
	thaw()
	if err := <-frozenDone; err == nil {
		t.Fatal("the frozen replica's transaction committed after PostgreSQL ended its session")
	}
	var n int
	if err := other.db.QueryRowContext(ctx, `SELECT count(*) FROM meta WHERE key = 'frozen'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the frozen replica's write landed (%d rows, %v)", n, err)
	}
	// The frozen store reconnects on its next use.
	if err := frozen.Ping(ctx); err != nil {
		t.Fatalf("the thawed replica cannot write again: %v", err)
	}
}

// TestPostgresModes: ModeExisting and ModeReadOnly refuse a database
// without the schema (and create nothing in it), ModeCreate refuses
// another program's tables, and a read-only store reads but never writes.
func TestPostgresModes(t *testing.T) {
	ctx := context.Background()
	dsn := postgresEngine.fresh(t)
	for _, mode := range []Mode{ModeExisting, ModeReadOnly} {
		_, err := Open(ctx, "", Options{Driver: EnginePostgres, DSN: dsn, Mode: mode})
		if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), "PostgreSQL database holds no gmailtls schema") {
			t.Errorf("mode %d on an empty database: %v; want ErrNoDatabase worded for PostgreSQL", mode, err)
		}
	}
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var tables int
	if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("refused opens left %d tables (%v)", tables, err)
	}

	// An older schema: read-only refuses it, existing migrates it.
	old, err := openAt(ctx, "", Options{Driver: EnginePostgres, DSN: dsn}, 3)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	if _, err := Open(ctx, "", Options{Driver: EnginePostgres, DSN: dsn, Mode: ModeReadOnly}); !errors.Is(err, ErrNeedsMigration) {
		t.Errorf("read-only open of version 3: %v; want ErrNeedsMigration", err)
	}
	s, err := Open(ctx, "", Options{Driver: EnginePostgres, DSN: dsn, Mode: ModeExisting})
	if err != nil {
		t.Fatalf("existing open of version 3: %v", err)
	}
	if err := s.SyncRelays(ctx, []RelaySpec{{Name: "relay-1", Kind: "local"}}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	ro, err := Open(ctx, "", Options{Driver: EnginePostgres, DSN: dsn, Mode: ModeReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if rs, err := ro.Relays(ctx, true); err != nil || len(rs) != 1 {
		t.Errorf("read-only relays: %+v %v", rs, err)
	}
	err = ro.Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("write on a read-only store: %v; want a read-only refusal", err)
	}
	if err := ro.SyncRelays(ctx, []RelaySpec{{Name: "relay-2"}}); err == nil {
		t.Error("read-only store synced relays")
	}

	// Another program's tables: never migrated into.
	foreign := postgresEngine.fresh(t)
	fdb, err := sql.Open("pgx", foreign)
	if err != nil {
		t.Fatal(err)
	}
	defer fdb.Close()
	if _, err := fdb.ExecContext(ctx, `CREATE TABLE accounts (id BIGINT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, "", Options{Driver: EnginePostgres, DSN: foreign}); !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), "another program's") {
		t.Errorf("create over another program's tables: %v; want ErrNoDatabase", err)
	}
}

// TestPostgresNewerSchema: a database migrated by a newer gmailtls is
// refused with ErrTooNew.
func TestPostgresNewerSchema(t *testing.T) {
	ctx := context.Background()
	dsn := postgresEngine.fresh(t)
	s := postgresEngine.open(t, dsn, nil)
	if _, err := s.db.ExecContext(ctx, `UPDATE `+pgSchemaTable+` SET version = 999`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, "", Options{Driver: EnginePostgres, DSN: dsn}); !errors.Is(err, ErrTooNew) {
		t.Errorf("open of version 999: %v; want ErrTooNew", err)
	}
}

// TestPostgresErrorsHideThePassword: failed connections are worded for an
// operator, name the display form of the DSN, and never show the
// password.
func TestPostgresErrorsHideThePassword(t *testing.T) {
	ctx := context.Background()
	const password = "s3cret-Pa55word"
	base, err := url.Parse(postgresEngine.fresh(t))
	if err != nil {
		t.Skip("the lab's DSN is not a URL")
	}
	base.User = url.UserPassword(base.User.Username(), password)

	// Nothing listens on a port just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	refused := *base
	refused.Host = closed
	missing := *base
	missing.Path = "/no_such_database_here"
	for _, c := range []struct {
		name, dsn, want string
	}{
		{"refused", refused.String(), "connection refused"},
		{"no database", missing.String(), "database does not exist"},
		{"not a DSN", "postgres://user:" + password + "@host:notaport/db", "not valid"},
	} {
		_, err := Open(ctx, "", Options{Driver: EnginePostgres, DSN: c.dsn})
		if err == nil {
			t.Errorf("%s: open succeeded", c.name)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, password) {
			t.Errorf("%s: the error shows the password: %s", c.name, msg)
		}
		if !strings.Contains(msg, c.want) {
			t.Errorf("%s: %q does not say %q", c.name, msg, c.want)
		}
	}
	s, err := Open(ctx, "", Options{Driver: EnginePostgres, DSN: base.String()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := "postgres://" + base.User.Username() + "@" + base.Host + base.Path
	if s.Path() != want || s.Engine() != EnginePostgres {
		t.Errorf("Path %q Engine %q; want %q, postgres", s.Path(), s.Engine(), want)
	}
	if _, err := Open(ctx, "", Options{Driver: EnginePostgres, DSN: base.String(), MaxPages: 10}); err == nil || strings.Contains(err.Error(), password) {
		t.Errorf("MaxPages on PostgreSQL: %v", err)
	}
}
