package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/probe"
)

// TestMigrateFromEveryLevel builds a database at every earlier schema level,
// puts data in it where the level allows, and opens it with the full
// migration list.
func TestMigrateFromEveryLevel(t *testing.T) {
	ctx := context.Background()
	for level := 0; level < len(migrations); level++ {
		path := filepath.Join(t.TempDir(), "old.db")
		s, err := openAt(ctx, path, Options{}, level)
		if err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		var v int
		if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil || v != level {
			t.Fatalf("level %d: user_version %d, %v", level, v, err)
		}
		if level >= 1 {
			if err := s.SyncRelays(ctx, []RelaySpec{{Name: "relay-1", Kind: "local"}}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.RecordRun(ctx, Run{Relay: "relay-1", Trigger: TriggerSchedule},
				[]probe.Result{okResult("relay-1", "mx", "192.0.2.1", "", t0)}); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()

		s, err = Open(ctx, path, Options{})
		if err != nil {
			t.Fatalf("from level %d: %v", level, err)
		}
		if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil || v != len(migrations) {
			t.Fatalf("from level %d: user_version %d, %v", level, v, err)
		}
		if err := s.IntegrityCheck(ctx); err != nil {
			t.Fatal(err)
		}
		if level >= 1 {
			if _, res, err := s.LastRun(ctx, "relay-1"); err != nil || len(res) != 1 {
				t.Fatalf("from level %d: data lost: %v %v", level, res, err)
			}
		}
		// Every table of the latest schema is usable.
		if _, _, err := s.Enqueue(ctx, OutboxMessage{Key: "k", Kind: KindReport, Channel: "C1"}); err != nil {
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
