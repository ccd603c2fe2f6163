package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadCommandsRefuseMissingOrEmptyDatabase: a zero-byte database (a
// truncated file) or a missing one (a typo in the path) is an error naming
// the path, exit 2, for every command but serve and storage init; none of
// them creates or fills the file.
func TestReadCommandsRefuseMissingOrEmptyDatabase(t *testing.T) {
	cfgPath, _ := svcTestSetup(t)
	db := filepath.Join(filepath.Dir(cfgPath), "history.db")
	cmds := [][]string{
		{"status"}, {"history"}, {"relays"}, {"backup", "--to", filepath.Join(t.TempDir(), "copy.db")},
		{"check", "relay-1"}, {"pause", "relay-1", "1h"}, {"console"}, {"probe", "--relay", "relay-1", "--record", "--no-retry"},
	}
	for _, state := range []string{"zero-byte", "missing"} {
		if err := os.Remove(db); err != nil {
			t.Fatal(err)
		}
		os.Remove(db + "-wal")
		os.Remove(db + "-shm")
		if state == "zero-byte" {
			if err := os.WriteFile(db, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range cmds {
			args := append([]string{c[0], "--config", cfgPath}, c[1:]...)
			code, out, errOut := svcTestRun(t, "check relay-1\n", args...)
			want := "the file is empty (0 bytes)"
			if state == "missing" {
				want = "the file does not exist"
			}
			if code != exitUsage || !strings.Contains(errOut, db) || !strings.Contains(errOut, want) || strings.Contains(out, " ok") {
				t.Errorf("%s database, %v: exit %d, want 2 naming %s (%q)\nstdout: %s\nstderr: %s", state, c, code, db, want, out, errOut)
			}
			fi, err := os.Stat(db)
			switch {
			case state == "missing" && err == nil:
				t.Fatalf("%v created the missing database", c)
			case state == "zero-byte" && (err != nil || fi.Size() != 0):
				t.Fatalf("%v wrote into the zero-byte database (%v)", c, err)
			}
		}
	}
}

// TestReadCommandsOnReadOnlyDatabaseWithoutSecrets: status, history,
// relays and backup read a database file that is read-only (and in a
// read-only folder) with no secret in the environment, although the
// configuration has an agent relay; the file is not written (same bytes,
// same mtime: file modes do not stop root, so this checks that the open
// itself is read-only).
func TestReadCommandsOnReadOnlyDatabaseWithoutSecrets(t *testing.T) {
	cfgPath, _ := svcTestSetup(t)
	svcTestConsole(t, cfgPath, "check relay-1")
	dir := filepath.Dir(cfgPath)
	text, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	text = append(text, []byte("\n[[relay]]\nname = \"relay-9\"\nkind = \"agent\"\nurl = \"https://relay-9.test:9426\"\nsecret_env = \"RELAY9_SECRET\"\n")...)
	if err := os.WriteFile(cfgPath, text, 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "history.db")
	// Fold the WAL into the file, as a copied-off database would be.
	if code, _, errOut := svcTestRun(t, "", "backup", "--config", cfgPath, "--to", filepath.Join(dir, "ro.db")); code != exitOK {
		t.Fatalf("backup: %s", errOut)
	}
	roDir := t.TempDir()
	ro := filepath.Join(roDir, "history.db")
	if err := os.Rename(filepath.Join(dir, "ro.db"), ro); err != nil {
		t.Fatal(err)
	}
	roCfg := filepath.Join(dir, "ro.toml")
	if err := os.WriteFile(roCfg, bytes.Replace(text, []byte(`path = "history.db"`), []byte("path = "+`"`+ro+`"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = db
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(ro, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ro, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(roDir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(roDir, 0o755) })
	before, err := os.ReadFile(ro)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range [][]string{{"status"}, {"history"}, {"relays"}, {"backup", "--to", filepath.Join(t.TempDir(), "copy.db")}} {
		args := append([]string{c[0], "--config", roCfg}, c[1:]...)
		code, out, errOut := svcTestRun(t, "", args...) // no environment at all
		if code != exitOK {
			t.Errorf("%v on a read-only database without secrets: exit %d\n%s\n%s", c, code, out, errOut)
		}
	}
	if _, _, errOut := svcTestRun(t, "", "status", "--config", roCfg); strings.Contains(errOut, "RELAY9_SECRET") {
		t.Errorf("status asked for an agent secret: %s", errOut)
	}
	// What talks to the agent still needs its secret.
	code, _, errOut := svcTestRun(t, "quit\n", "console", "--config", roCfg)
	if code != exitUsage || !strings.Contains(errOut, "RELAY9_SECRET is empty or not set") {
		t.Errorf("console without the agent secret: exit %d %s", code, errOut)
	}

	after, err := os.ReadFile(ro)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(ro)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) || !fi.ModTime().Equal(old) {
		t.Errorf("a read-only command wrote the database (bytes equal %t, mtime %s, was %s)", bytes.Equal(before, after), fi.ModTime(), old)
	}
}
