package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
)

// seedSQL puts data into a database at each schema level, with the SQL
// of that level, so that migrating up must carry it.
var seedSQL = map[int][]string{
	1: {
		`INSERT INTO relays (id, name, kind, created_at, updated_at) VALUES (1, 'relay-1', 'local', 1, 1)`,
		`INSERT INTO mx_hosts (id, name) VALUES (1, 'gmail-smtp-in.l.google.com')`,
		`INSERT INTO paths (id, relay_id, mx_id, preference, ip, port, source_ip, servername) VALUES (1, 1, 1, 5, '192.0.2.1', 25, '', '')`,
		`INSERT INTO runs (id, relay_id, trigger, started_at) VALUES (1, 1, 'schedule', 1772445600000)`,
		`INSERT INTO results (run_id, relay_id, path_id, started_at, ok, t_handshake) VALUES (1, 1, 1, 1772445600000, 1, 456)`,
		`INSERT INTO results (run_id, relay_id, path_id, started_at, ok, failure, stage) VALUES (1, 1, 1, 1772445600001, 0, 'tls_reset', 'handshake')`,
		// Incidents opened at watch: 1 and 4 rose to investigate (outbox
		// updates of level 3), 2 too but was resolved, 3 did not rise.
		`INSERT INTO incidents (id, relay_id, level, scope, opened_at, muted_until) VALUES (1, 1, 'watch', 'one_event', 1772445600000, 1772449200000)`,
		`INSERT INTO incidents (id, relay_id, level, scope, opened_at, resolved_at) VALUES (2, 1, 'watch', 'one_event', 1772445600000, 1772445900000)`,
		`INSERT INTO incidents (id, relay_id, level, scope, opened_at) VALUES (3, 1, 'watch', 'one_event', 1772445600000)`,
		`INSERT INTO incidents (id, relay_id, level, scope, opened_at) VALUES (4, 1, 'watch', 'one_event', 1772445600000)`,
	},
	2: {
		`INSERT INTO rollups (hour, relay_id, mx_id, attempts, failures, by_class, p50_handshake, p95_handshake, successes_timed)
		 VALUES (1772438400000, 1, 1, 12, 2, '{"tls_reset":1,"connect_timeout":1}', 400, 600, 10)`,
	},
	3: {
		`INSERT INTO outbox (key, kind, channel, payload, next_attempt, created_at) VALUES ('k-old', 'alert', 'C1', x'7b7d', 0, 1)`,
		`INSERT INTO outbox (key, kind, channel, update_key, payload, next_attempt, created_at) VALUES ('alert:1:level:investigate', 'update', 'C1', 'alert:1',
		 CAST('{"title":"relay-1 at investigate","meta":{"IncidentID":1,"Level":"investigate","Scope":"mixed_mx"}}' AS BLOB), 0, 2)`,
		`INSERT INTO outbox (key, kind, channel, update_key, payload, next_attempt, created_at) VALUES ('alert:2:level:investigate', 'update', 'C1', 'alert:2',
		 CAST('{"meta":{"Level":"investigate","Scope":"one_host"}}' AS BLOB), 0, 3)`,
		`INSERT INTO outbox (key, kind, channel, update_key, payload, next_attempt, created_at) VALUES ('alert:4:level:investigate', 'update', 'C1', 'alert:4',
		 x'7b', 0, 4)`,
	},
}

// TestMigrateFromEveryLevel builds a database at every earlier schema
// level, seeds it with that level's SQL, and opens it with the full
// migration list.
func TestMigrateFromEveryLevel(t *testing.T) {
	ctx := context.Background()
	for level := 0; level < len(migrations()); level++ {
		path := filepath.Join(t.TempDir(), "old.db")
		// Raw seed SQL bypasses the hourly counts that level 4 keeps on
		// insert, so data is seeded at level 3 at most and the database
		// then migrated up to the level under test by the real migrations.
		seedLevel := min(level, 3)
		s, err := openAt(ctx, path, Options{}, seedLevel)
		if err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		for l := 1; l <= seedLevel; l++ {
			for _, q := range seedSQL[l] {
				if _, err := s.db.ExecContext(ctx, q); err != nil {
					t.Fatalf("level %d seed: %v", level, err)
				}
			}
		}
		if level > seedLevel {
			s.Close()
			if s, err = openAt(ctx, path, Options{}, level); err != nil {
				t.Fatalf("level %d: %v", level, err)
			}
		}
		var v int
		if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil || v != level {
			t.Fatalf("level %d: user_version %d, %v", level, v, err)
		}
		s.Close()

		s, err = Open(ctx, path, Options{})
		if err != nil {
			t.Fatalf("from level %d: %v", level, err)
		}
		if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil || v != len(migrations()) {
			t.Fatalf("from level %d: user_version %d, %v", level, v, err)
		}
		if err := s.IntegrityCheck(ctx); err != nil {
			t.Fatal(err)
		}
		if level >= 1 {
			if _, res, err := s.LastRun(ctx, "relay-1"); err != nil || len(res) != 2 {
				t.Fatalf("from level %d: data lost: %v %v", level, res, err)
			}
			// The hourly counts were backfilled from raw rows and rollups.
			sums, err := s.Summary(ctx, t0.Add(-3*time.Hour), t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			want := 2
			if level >= 2 {
				want += 12
			}
			if len(sums) != 1 || sums[0].Attempts != want || sums[0].ByClass["tls_reset"] < 1 {
				t.Fatalf("from level %d: summary %+v", level, sums)
			}
		}
		if level >= 3 {
			if _, ok, err := s.MessageByKey(ctx, "k-old"); !ok || err != nil {
				t.Fatalf("from level %d: outbox message lost: %v", level, err)
			}
		}
		if level >= 1 {
			// Open incidents that rose take the level of their outbox
			// update (and its scope when readable); none is muted by anyone.
			want := map[int64]string{1: "watch one_event", 2: "watch one_event", 3: "watch one_event", 4: "watch one_event"}
			if level >= 3 {
				want[1], want[4] = "investigate mixed_mx", "investigate one_event"
			}
			for id, w := range want {
				inc, err := s.IncidentByID(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if got := string(inc.Level) + " " + string(inc.Scope); got != w || inc.MutedBy != "" {
					t.Errorf("from level %d: incident %d at %q muted by %q, want %q", level, id, got, inc.MutedBy, w)
				}
			}
			if inc, _ := s.IncidentByID(ctx, 1); !inc.MutedUntil.Equal(time.UnixMilli(1772449200000)) {
				t.Errorf("from level %d: muted until %v", level, inc.MutedUntil)
			}
			// The alert models kept in the outbox payloads' meta moved to
			// alert_models: readable ones only, resolved incidents too.
			want = map[int64]string{}
			if level >= 3 {
				want[1] = `{"IncidentID":1,"Level":"investigate","Scope":"mixed_mx"}`
				want[2] = `{"Level":"investigate","Scope":"one_host"}`
			}
			for id := int64(1); id <= 4; id++ {
				m, found, err := s.AlertModel(ctx, id)
				if err != nil || found != (want[id] != "") || string(m) != want[id] {
					t.Errorf("from level %d: alert model of incident %d = %s (found %v, %v), want %s", level, id, m, found, err, want[id])
				}
			}
		}
		// Every table of the latest schema is usable.
		if _, _, err := s.RecordRun(ctx, Run{Relay: "relay-1", Trigger: message.SourceSchedule},
			[]probe.Result{okResult("relay-1", "mx", "192.0.2.1", "", t0)}); err != nil {
			t.Fatalf("from level %d: %v", level, err)
		}
		if _, _, err := s.Enqueue(ctx, OutboxMessage{Key: "k", Kind: KindReport, Channel: "C1"}); err != nil {
			t.Fatalf("from level %d: %v", level, err)
		}
		if p, err := s.PendingMessages(ctx, 0, 0); err != nil || len(p) == 0 || p[len(p)-1].Key != "k" {
			t.Fatalf("from level %d: pending messages %+v %v", level, p, err)
		}
		if id, err := s.OpenIncident(ctx, Incident{Relay: "relay-1", Level: "watch"}); err != nil {
			t.Fatalf("from level %d: %v", level, err)
		} else if err := errors.Join(s.MuteIncident(ctx, id, t0, "U1"), s.SetIncidentLevel(ctx, id, "investigate", "one_host"),
			s.SetAlertModel(ctx, id, []byte(`{"Level":"investigate"}`))); err != nil {
			t.Fatalf("from level %d: %v", level, err)
		}
		if _, err := s.Rollup(ctx, t0, t0.AddDate(-1, 0, 0)); err != nil {
			t.Fatalf("from level %d: %v", level, err)
		}
		s.Close()
	}
}

func TestOpenNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "new.db")
	s := openTest(t, path, nil)
	if _, err := s.db.ExecContext(ctx, "PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(ctx, path, Options{})
	if !errors.Is(err, ErrTooNew) {
		t.Fatalf("got %v, want ErrTooNew", err)
	}
}

func TestOpenErrorsAreWorded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("this is not a database\n", 200)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, notDB, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "storage: open "+notDB) {
		t.Errorf("not a database: %v", err)
	}
	missing := filepath.Join(dir, "no-such-dir", "gmailtls.db")
	_, err = Open(ctx, missing, Options{})
	if err == nil || !strings.Contains(err.Error(), "does its folder exist") {
		t.Errorf("missing folder: %v", err)
	}
	if _, err := Open(ctx, "", Options{}); err == nil {
		t.Error("empty path accepted")
	}
}

func TestPathWithURICharacters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "odd?name#1%20.db")
	s := openTest(t, path, nil)
	if err := s.SyncRelays(ctx, []RelaySpec{{Name: "r"}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the literal path: %v", err)
	}
}
