package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
)

// releaseDB is a database written by the release before migration 0008
// through its own code (alerts, outbox, storage), at schema version 7;
// testdata/release7/main.go made it and says how.
const releaseDB = "testdata/release7.db"

// copyRelease copies the release database to a temporary file, so that
// the test never writes testdata.
func copyRelease(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(releaseDB)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gmailtls.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// dumpDB returns every row of every table (sorted, in a printable form)
// and the SQL of every table and index, by name.
func dumpDB(t *testing.T, db *sql.DB) (rows map[string][]string, schema map[string]string) {
	t.Helper()
	ctx := context.Background()
	rows, schema = map[string][]string{}, map[string]string{}
	list, err := db.QueryContext(ctx, `SELECT type, name, COALESCE(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for list.Next() {
		var typ, name, text string
		if err := list.Scan(&typ, &name, &text); err != nil {
			t.Fatal(err)
		}
		schema[name] = text
		if typ == "table" {
			tables = append(tables, name)
		}
	}
	if err := errors.Join(list.Err(), list.Close()); err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		r, err := db.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := r.Columns()
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for r.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := r.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%#v", vals))
		}
		if err := errors.Join(r.Err(), r.Close()); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		rows[table] = out
	}
	return rows, schema
}

// TestReleaseDatabaseMigrates opens a database made by the release before
// migration 0008 with this code: every row of every table it had is still
// there, unchanged, and so is its schema; the alert model of every
// incident, which that release kept only in the meta of the outbox payload
// of its alert or latest level update, is readable from alert_models; and
// the store reads the old rows with the typed values of this code.
func TestReleaseDatabaseMigrates(t *testing.T) {
	ctx := context.Background()
	path := copyRelease(t)
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var version int
	if err := raw.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil || version != 7 {
		t.Fatalf("release database at version %d (%v), want 7", version, err)
	}
	before, beforeSchema := dumpDB(t, raw)
	raw.Close()
	for table, min := range map[string]int{"relays": 5, "runs": 40, "results": 90, "rollups": 1, "hourly": 1, "events": 16,
		"incidents": 4, "audit": 3, "outbox": 17, "queue_samples": 10, "meta": 1} {
		if len(before[table]) < min {
			t.Fatalf("release database has %d rows in %s, want at least %d: not the scenario it should be", len(before[table]), table, min)
		}
	}

	s := openTest(t, path, nil)
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil || version != SchemaVersion() {
		t.Fatalf("migrated to version %d (%v), want %d", version, err, SchemaVersion())
	}
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	after, afterSchema := dumpDB(t, s.db)
	for table, rows := range before {
		if !slices.Equal(after[table], rows) {
			t.Errorf("table %s changed in the migration:\nbefore %v\n after %v", table, rows, after[table])
		}
	}
	for name, text := range beforeSchema {
		if afterSchema[name] != text {
			t.Errorf("schema of %s changed:\nbefore %s\n after %s", name, text, afterSchema[name])
		}
	}

	// The alert models: the meta of the newest message that had one, as
	// the release's alerts package looked for it.
	payloads := map[string][]byte{}
	if err := s.read(ctx, "test", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT key, payload FROM outbox`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			var p []byte
			if err := rows.Scan(&k, &p); err != nil {
				return err
			}
			payloads[k] = p
		}
		return rows.Err()
	}); err != nil {
		t.Fatal(err)
	}
	wantLevel := map[int64]escalation.Level{1: "investigate", 2: "investigate", 3: "investigate", 4: "incident"}
	for id, level := range wantLevel {
		var want json.RawMessage
		for _, k := range []string{":level:incident", ":level:investigate", ":level:watch", ""} {
			var p struct{ Meta json.RawMessage }
			if b, ok := payloads[fmt.Sprintf("alert:%d%s", id, k)]; ok && json.Unmarshal(b, &p) == nil && len(p.Meta) > 0 {
				want = p.Meta
				break
			}
		}
		model, found, err := s.AlertModel(ctx, id)
		if err != nil || !found {
			t.Fatalf("incident %d: no alert model after the migration (%v)", id, err)
		}
		var got, exp map[string]any
		if err := errors.Join(json.Unmarshal(model, &got), json.Unmarshal(want, &exp)); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, exp) {
			t.Errorf("incident %d: alert model\n got %s\nwant %s", id, model, want)
		}
		// The relays' alerts hold their re-probe; the global one says it
		// was confirmed by them.
		again, _ := got["Again"].([]any)
		if got["Level"] != string(level) || got["IncidentID"] != float64(id) || (id != 4) != (len(again) > 0) || got["ConfirmNote"] == nil && id == 4 {
			t.Errorf("incident %d: alert model %s, want level %s with its confirmation", id, model, level)
		}
	}

	// The old rows read with this code's types.
	open, err := s.OpenIncidents(ctx)
	if err != nil || len(open) != 3 {
		t.Fatalf("open incidents %+v %v", open, err)
	}
	if g := open[2]; g.Relay != "" || g.Level != escalation.LevelIncident || g.Scope != escalation.ScopeAllGmail || g.LastReminder.IsZero() {
		t.Errorf("global incident %+v", g)
	}
	if inc, _ := s.IncidentByID(ctx, 2); inc.AckedBy != "U0OPS" || inc.Level != escalation.LevelInvestigate || inc.AlertTS == "" {
		t.Errorf("acknowledged incident %+v", inc)
	}
	if inc, _ := s.IncidentByID(ctx, 3); inc.MutedBy != "U0NIGHT" || inc.MutedUntil.IsZero() {
		t.Errorf("muted incident %+v", inc)
	}
	last, err := s.LastEvents(ctx)
	if err != nil || last[""].To != escalation.LevelIncident || last["relay-1"].To != escalation.LevelInvestigate || last["relay-3"].To != escalation.LevelOK {
		t.Errorf("last events %+v %v", last, err)
	}
	audit, err := s.AuditLog(ctx, 0)
	if err != nil || len(audit) != 3 || audit[0].Source != message.SourceButton || audit[2].Source != message.SourceSlash {
		t.Errorf("audit log %+v %v", audit, err)
	}
	run, res, err := s.LastRun(ctx, "relay-1")
	if err != nil || run.Trigger != message.SourceSchedule || run.RequestedBy != "schedule" || len(res) != 2 || res[0].OK {
		t.Errorf("last run of relay-1 %+v %+v %v", run, res, err)
	}
	at := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	hist, err := s.History(ctx, HistoryQuery{Relay: "relay-1", Since: at.Add(-3 * time.Hour), Until: at, FailuresOnly: true})
	triggers := map[message.Source]int{}
	for _, r := range hist {
		triggers[r.Trigger]++
	}
	if err != nil || triggers[message.SourceSchedule] != 6 || triggers[message.SourceConfirm] != 2 {
		t.Errorf("failures of relay-1 by trigger %v (%v), want 6 scheduled and 2 confirming", triggers, err)
	}
	sums, err := s.Summary(ctx, at.Add(-3*time.Hour), at)
	if err != nil || len(sums) != 5 || sums[0].Relay != "relay-1" || sums[0].Failures != 8 || len(sums[0].Hourly) != 3 ||
		sums[0].Hourly[1].Failures != 8 || !sums[0].Hourly[1].Hour.Equal(at.Add(-2*time.Hour)) {
		t.Errorf("summary %+v %v", sums, err)
	}
	if q, err := s.QueueSamples(ctx, "relay-4", at.Add(-3*time.Hour), 0); err != nil || len(q) == 0 {
		t.Errorf("queue samples %+v %v", q, err)
	}
	if p, err := s.PendingMessages(ctx, 0, 0); err != nil || len(p) != 14 {
		t.Errorf("%d pending messages, want 14 (%v)", len(p), err)
	}
}
