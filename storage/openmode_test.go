package storage

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenExistingRefusesMissingAndEmpty: outside ModeCreate, a missing,
// zero-byte or schema-less file is refused with ErrNoDatabase naming the
// path, and nothing is created.
func TestOpenExistingRefusesMissingAndEmpty(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := filepath.Join(dir, "typo.db")
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []Mode{ModeExisting, ModeReadOnly} {
		for _, path := range []string{missing, empty} {
			s, err := Open(ctx, path, Options{Mode: mode})
			if err == nil {
				s.Close()
				t.Fatalf("mode %d: Open(%s) succeeded", mode, path)
			}
			if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), path) {
				t.Errorf("mode %d: Open(%s) = %v; want ErrNoDatabase naming the path", mode, path, err)
			}
		}
		if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("mode %d: the missing file was created (%v)", mode, err)
		}
		if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
			t.Errorf("mode %d: the empty file changed: %v %v", mode, fi, err)
		}
	}
	// A file SQLite initialised (a header, no tables) is no database either.
	blank := filepath.Join(dir, "blank.db")
	db, err := sql.Open("sqlite", "file:"+blank)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA journal_mode=WAL"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(ctx, blank, Options{Mode: ModeExisting}); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("Open(blank, ModeExisting) = %v; want ErrNoDatabase", err)
	}
	// ModeCreate (serve, storage init) still creates a missing file.
	s, err := Open(ctx, missing, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, missing, Options{Mode: ModeExisting})
	if err != nil {
		t.Fatalf("reopening the created file: %v", err)
	}
	s.Close()
}

// TestOpenRefusesForeignSchema: a file at user_version 0 that holds tables
// is never migrated afresh, not even by serve's ModeCreate.
func TestOpenRefusesForeignSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gmailtls.db")
	s := openTest(t, path, nil)
	s.Close()
	// The schema version is lost (a tool rewrote the file, a bad restore).
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 0"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, mode := range []Mode{ModeCreate, ModeExisting, ModeReadOnly} {
		s, err := Open(ctx, path, Options{Mode: mode})
		if err == nil {
			s.Close()
			t.Fatalf("mode %d: a file with tables at user_version 0 was opened", mode)
		}
		if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), "no gmailtls schema version") {
			t.Errorf("mode %d: %v", mode, err)
		}
	}
}

// TestOpenReadOnlyWritesNothing: a read-only open neither switches the
// journal mode nor migrates nor writes: the file's bytes and mtime stay
// as they were, even for root (whom file modes do not stop).
func TestOpenReadOnlyWritesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "gmailtls.db")
	s := openTest(t, path, nil)
	if err := s.SyncRelays(ctx, []RelaySpec{{Name: "relay-1", Kind: "local"}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	ro, err := Open(ctx, path, Options{Mode: ModeReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	if rs, err := ro.Relays(ctx, true); err != nil || len(rs) != 1 {
		t.Errorf("reading a read-only store: %v %v", rs, err)
	}
	if err := ro.SyncRelays(ctx, []RelaySpec{{Name: "relay-2", Kind: "local"}}); err == nil {
		t.Error("a write through a read-only store succeeded")
	}
	if err := ro.Backup(ctx, filepath.Join(t.TempDir(), "copy.db")); err != nil {
		t.Errorf("backup from a read-only store: %v", err)
	}
	ro.Close()

	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) || !fi.ModTime().Equal(old) {
		t.Errorf("the read-only open changed the file (bytes equal %t, mtime %s, was %s)", bytes.Equal(before, after), fi.ModTime(), old)
	}
}

// TestOpenReadOnlyRefusesOldSchema: a read-only open of a file older than
// this binary says so instead of migrating it.
func TestOpenReadOnlyRefusesOldSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gmailtls.db")
	s, err := openAt(ctx, path, Options{}, SchemaVersion()-1)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, path, Options{Mode: ModeReadOnly})
	if !errors.Is(err, ErrNeedsMigration) || !strings.Contains(err.Error(), "never migrates") {
		t.Fatalf("Open(old file, ModeReadOnly) = %v; want ErrNeedsMigration", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("the refused read-only open changed the file")
	}
}
