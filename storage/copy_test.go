package storage

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/pglab"
	"github.com/gmailtls/gmailtls/message"
)

// copyEnd is the end of the history the copy tests generate.
var copyEnd = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// copyOpenSQLite opens (creating) an SQLite store at path, closed at t's
// cleanup.
func copyOpenSQLite(t *testing.T, path string, mode Mode) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{Mode: mode, Now: func() time.Time { return copyEnd }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// copyOpenPostgres opens (creating) the PostgreSQL store of dsn, closed at
// t's cleanup.
func copyOpenPostgres(t *testing.T, dsn string, mode Mode) *Store {
	t.Helper()
	s, err := Open(context.Background(), "", Options{Driver: EnginePostgres, DSN: dsn, Mode: mode, Now: func() time.Time { return copyEnd }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fillHistory writes a little of everything: two days of generated
// probing (raw results and rollups), events, incidents (acknowledged,
// muted, resolved) with alert models, audit, outbox messages in every
// state, queue and log samples, Slack replay keys.
func fillHistory(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Generate(ctx, GenerateOptions{Relays: 3, MX: 2, IPs: 2, Every: 30 * time.Minute, Days: 3, RawDays: 1,
		End: copyEnd, FailureRate: 0.05, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rollup(ctx, copyEnd.Add(-12*time.Hour), copyEnd.AddDate(0, 0, -400)); err != nil {
		t.Fatal(err)
	}
	for i, r := range []string{"relay-01", "relay-02", ""} {
		at := copyEnd.Add(-time.Duration(i+1) * time.Hour)
		if _, err := s.AddEvent(ctx, Event{Relay: r, From: escalation.LevelOK, To: escalation.LevelInvestigate,
			Scope: escalation.ScopeOneHost, Advice: "look", Evidence: []int64{1, 2}, At: at}); err != nil {
			t.Fatal(err)
		}
		id, err := s.OpenIncident(ctx, Incident{Relay: r, Level: escalation.LevelInvestigate, Scope: escalation.ScopeOneHost, OpenedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetAlertModel(ctx, id, []byte(fmt.Sprintf(`{"incident":%d}`, id))); err != nil {
			t.Fatal(err)
		}
		if err := s.SetIncidentMessage(ctx, id, "C123", fmt.Sprintf("1700000000.%06d", id)); err != nil {
			t.Fatal(err)
		}
		switch i {
		case 0:
			if err := s.AckIncident(ctx, id, "U1", at.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := s.MuteIncident(ctx, id, copyEnd.Add(time.Hour), "U2"); err != nil {
				t.Fatal(err)
			}
		case 2:
			if err := s.ResolveIncident(ctx, id, at.Add(30*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 3 {
		if err := s.Audit(ctx, AuditEntry{UserID: "U1", UserName: "ana", ChannelID: "C1", Text: fmt.Sprintf("check relay-0%d", i+1),
			Source: message.SourceSlash, At: copyEnd.Add(-time.Duration(i) * time.Minute), Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []int64
	for i := range 4 {
		id, _, err := s.Enqueue(ctx, OutboxMessage{Key: fmt.Sprintf("alert:%d", i), Kind: "alert", Channel: "C123",
			Payload: []byte(fmt.Sprintf(`{"text":"alert %d","bytes":"\u00e9\u0000"}`, i)), NextAttempt: copyEnd})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := s.MarkSent(ctx, ids[0], "1700000000.000100"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(ctx, ids[1], "channel_not_found"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRetry(ctx, ids[2], copyEnd.Add(time.Minute), "ratelimited"); err != nil {
		t.Fatal(err)
	}
	lease, err := s.AcquireLease(ctx, "serve", "replica-a", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimMessage(ctx, ids[3], lease.Fence()); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseLease(ctx, lease.Fence()); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordQueueSample(ctx, QueueSample{Relay: "relay-01", At: copyEnd, Deferred: 3, OldestAge: time.Hour, Recipients: 4, TopReason: "TLS is required"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordLogSample(ctx, LogSample{Relay: "relay-02", At: copyEnd, Window: time.Hour, TLSFailures: 2, Delivered: 10, Stuck: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RememberSlackRequest(ctx, copyEnd, SeenKey{Digest: []byte{0, 1, 2, 0xff}, Expires: copyEnd.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// dumpTables returns every row of every table to copy, rendered and
// sorted: equal dumps are equal databases, whatever the engine.
func dumpTables(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	err := s.read(ctx, "dump", func(tx *sql.Tx) error {
		tables, err := copySourceTables(ctx, s, tx)
		if err != nil {
			return err
		}
		for _, table := range tables {
			rows, err := tx.QueryContext(ctx, `SELECT * FROM `+table)
			if err != nil {
				return err
			}
			cols, _ := rows.Columns()
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			lines := []string{}
			for rows.Next() {
				if err := rows.Scan(ptrs...); err != nil {
					rows.Close()
					return err
				}
				var parts []string
				for i, c := range cols {
					v := vals[i]
					if b, ok := v.([]byte); ok {
						v = "x'" + hex.EncodeToString(b) + "'"
					}
					parts = append(parts, fmt.Sprintf("%s=%v", c, v))
				}
				slices.Sort(parts)
				lines = append(lines, strings.Join(parts, " "))
			}
			rows.Close()
			slices.Sort(lines)
			out[table] = lines
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// answers are what the queries of the bot and the CLI say of a store.
type answers struct {
	History   []StoredResult
	Summary   []RelaySummary
	Rollups   []Rollup
	Pending   []OutboxMessage
	Failed    []OutboxMessage
	Incidents []Incident
	Resolved  Incident
	Events    []Event
	Audit     []AuditEntry
	Queue     []QueueSample
	Model     string
}

func queryAnswers(t *testing.T, s *Store) answers {
	t.Helper()
	ctx := context.Background()
	var a answers
	var err error
	check := func(e error) {
		t.Helper()
		if e != nil {
			t.Fatal(e)
		}
	}
	a.History, err = s.History(ctx, HistoryQuery{WithTranscript: true})
	check(err)
	a.Summary, err = s.Summary(ctx, copyEnd.AddDate(0, 0, -3), copyEnd)
	check(err)
	a.Rollups, err = s.Rollups(ctx, copyEnd.AddDate(0, 0, -3), copyEnd)
	check(err)
	a.Pending, err = s.PendingMessages(ctx, 0, 100)
	check(err)
	a.Failed, err = s.FailedMessages(ctx, 100)
	check(err)
	a.Incidents, err = s.OpenIncidents(ctx)
	check(err)
	a.Resolved, err = s.IncidentByID(ctx, 3)
	check(err)
	a.Events, err = s.Events(ctx, "", 100)
	check(err)
	a.Audit, err = s.AuditLog(ctx, 100)
	check(err)
	a.Queue, err = s.QueueSamples(ctx, "", time.Time{}, 100)
	check(err)
	m, _, err := s.AlertModel(ctx, 1)
	check(err)
	a.Model = string(m)
	return a
}

// checkCopy copies src into dst and checks that dst holds what src holds,
// table by table and query by query, and that new rows get new ids.
func checkCopy(t *testing.T, dst, src *Store) {
	t.Helper()
	ctx := context.Background()
	counts, err := Copy(ctx, dst, src)
	if err != nil {
		t.Fatalf("Copy %s to %s: %v", src.Engine(), dst.Engine(), err)
	}
	var names []string
	var total int64
	for _, c := range counts {
		names = append(names, c.Table)
		if c.Source != c.Copied {
			t.Errorf("%s: %d rows in the source, %d copied", c.Table, c.Source, c.Copied)
		}
		total += c.Copied
	}
	for _, want := range []string{"relays", "results", "runs", "rollups", "hourly", "events", "incidents", "outbox", "audit", "meta", "alert_models", "slack_requests", "leases", "outbox_claims"} {
		i := slices.Index(names, want)
		if i < 0 {
			t.Errorf("no count for %s in %v", want, names)
		} else if counts[i].Copied == 0 {
			t.Errorf("%s: nothing copied; the test history should fill every table", want)
		}
	}
	if total < 1000 {
		t.Errorf("copied %d rows in all; the generated history has more", total)
	}
	if got, want := dumpTables(t, dst), dumpTables(t, src); !reflect.DeepEqual(got, want) {
		for table := range want {
			if !reflect.DeepEqual(got[table], want[table]) {
				t.Errorf("table %s differs after the copy:\n got %d rows, first %.300q\nwant %d rows, first %.300q", table, len(got[table]), first(got[table]), len(want[table]), first(want[table]))
			}
		}
	}
	got, want := reflect.ValueOf(queryAnswers(t, dst)), reflect.ValueOf(queryAnswers(t, src))
	for i := range want.NumField() {
		if g, w := got.Field(i).Interface(), want.Field(i).Interface(); !reflect.DeepEqual(g, w) {
			t.Errorf("the copy answers %s differently:\n got %.500v\nwant %.500v", want.Type().Field(i).Name, g, w)
		}
	}
	// The id sequences continue after the copied ids.
	before, err := dst.Events(ctx, "", 1)
	if err != nil || len(before) == 0 {
		t.Fatalf("events: %v %v", before, err)
	}
	id, err := dst.AddEvent(ctx, Event{Relay: "relay-03", From: escalation.LevelOK, To: escalation.LevelWatch, At: copyEnd})
	if err != nil {
		t.Fatalf("adding an event after the copy: %v", err)
	}
	if id <= before[0].ID {
		t.Errorf("new event id %d, not after the copied ones (newest %d)", id, before[0].ID)
	}
	if _, _, err := dst.Enqueue(ctx, OutboxMessage{Key: "after-copy", Kind: "alert", Channel: "C1", Payload: []byte("{}"), NextAttempt: copyEnd}); err != nil {
		t.Errorf("enqueueing after the copy: %v", err)
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// TestCopySQLite: a history copied from one SQLite file into a new one
// reads the same, table by table and query by query.
func TestCopySQLite(t *testing.T) {
	dir := t.TempDir()
	src := copyOpenSQLite(t, filepath.Join(dir, "src.db"), ModeCreate)
	fillHistory(t, src)
	src.Close()
	ro := copyOpenSQLite(t, filepath.Join(dir, "src.db"), ModeReadOnly)
	dst := copyOpenSQLite(t, filepath.Join(dir, "dst.db"), ModeCreate)
	checkCopy(t, dst, ro)
}

// TestCopyRoundTripPostgres: SQLite → PostgreSQL → SQLite keeps every row
// and every answer.
func TestCopyRoundTripPostgres(t *testing.T) {
	dir := t.TempDir()
	src := copyOpenSQLite(t, filepath.Join(dir, "src.db"), ModeCreate)
	fillHistory(t, src)
	pg := copyOpenPostgres(t, pglab.NewDatabase(t), ModeCreate)
	checkCopy(t, pg, src)

	back := copyOpenSQLite(t, filepath.Join(dir, "back.db"), ModeCreate)
	checkCopy(t, back, pg)
}

// TestCopyRefusals: a destination with history, the source itself and a
// read-only destination are refused, and nothing is written; a
// destination that was only set up (storage init) is accepted.
func TestCopyRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := copyOpenSQLite(t, filepath.Join(dir, "src.db"), ModeCreate)
	if err := src.SyncRelays(ctx, []RelaySpec{{Name: "relay-01", Kind: "local"}}); err != nil {
		t.Fatal(err)
	}
	if err := src.Audit(ctx, AuditEntry{UserID: "U1", Text: "status", At: copyEnd}); err != nil {
		t.Fatal(err)
	}

	if _, err := Copy(ctx, src, src); !errors.Is(err, ErrSameDatabase) {
		t.Errorf("copy onto itself: %v, want ErrSameDatabase", err)
	}
	again := copyOpenSQLite(t, filepath.Join(dir, ".", "src.db"), ModeReadOnly)
	if _, err := Copy(ctx, src, again); !errors.Is(err, ErrSameDatabase) {
		t.Errorf("copy onto itself opened twice: %v, want ErrSameDatabase", err)
	}

	full := copyOpenSQLite(t, filepath.Join(dir, "full.db"), ModeCreate)
	if err := full.Audit(ctx, AuditEntry{UserID: "U9", Text: "history", At: copyEnd}); err != nil {
		t.Fatal(err)
	}
	_, err := Copy(ctx, full, src)
	if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "1 rows in audit") {
		t.Errorf("copy into a database with history: %v, want ErrNotEmpty naming the audit row", err)
	}
	if log, err := full.AuditLog(ctx, 10); err != nil || len(log) != 1 || log[0].UserID != "U9" {
		t.Errorf("the refused destination changed: %+v %v", log, err)
	}

	ro := copyOpenSQLite(t, filepath.Join(dir, "full.db"), ModeReadOnly)
	if _, err := Copy(ctx, ro, src); err == nil {
		t.Error("copy into a read-only destination succeeded")
	}

	// Set up with other relays (ids 1 and 2 taken by other names): those
	// rows are replaced by the source's.
	setup := copyOpenSQLite(t, filepath.Join(dir, "setup.db"), ModeCreate)
	if err := setup.SyncRelays(ctx, []RelaySpec{{Name: "other-1", Kind: "local"}, {Name: "relay-01", Kind: "local"}}); err != nil {
		t.Fatal(err)
	}
	if err := setup.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	lease, err := setup.AcquireLease(ctx, "serve", "replica-b", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Copy(ctx, setup, src); err == nil || !strings.Contains(err.Error(), "holds the destination's leader lease") {
		t.Errorf("copy into a database a serve leads: %v", err)
	}
	if err := setup.ReleaseLease(ctx, lease.Fence()); err != nil {
		t.Fatal(err)
	}
	if _, err := Copy(ctx, setup, src); err != nil {
		t.Fatalf("copy into a database that storage init set up: %v", err)
	}
	relays, err := setup.Relays(ctx, true)
	if err != nil || len(relays) != 1 || relays[0].Name != "relay-01" {
		t.Errorf("relays after the copy = %+v, %v; want the source's relay-01 only", relays, err)
	}
	if log, err := setup.AuditLog(ctx, 10); err != nil || len(log) != 1 || log[0].Text != "status" {
		t.Errorf("audit after the copy = %+v, %v", log, err)
	}
}

// TestCopyTablesCoverSchema: every table of the schema is copied, on both
// engines: a table added by a migration must be added to copyTables.
func TestCopyTablesCoverSchema(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, s *Store) {
		err := s.read(ctx, "tables", func(tx *sql.Tx) error {
			have, err := s.dialect.tableNames(ctx, tx)
			if err != nil {
				return err
			}
			if len(have) < 20 {
				t.Errorf("only %d tables listed: %v", len(have), have)
			}
			_, err = copySourceTables(ctx, s, tx)
			return err
		})
		if err != nil {
			t.Error(err)
		}
	}
	t.Run("sqlite", func(t *testing.T) { check(t, copyOpenSQLite(t, filepath.Join(t.TempDir(), "s.db"), ModeCreate)) })
	t.Run("postgres", func(t *testing.T) { check(t, copyOpenPostgres(t, pglab.NewDatabase(t), ModeCreate)) })
}
