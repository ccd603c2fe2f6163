package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConsoleDemoKeepsItsDatabaseApart: the README's "Run it" (the console
// on config.toml.example) creates the demo's database under demo/ beside
// the example, not gmailtls.db; a deployment made by copying the example
// to config.toml does not inherit it (its commands find no database until
// it sets its own path and initialises it).
func TestConsoleDemoKeepsItsDatabaseApart(t *testing.T) {
	example, err := os.ReadFile("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	demoCfg := filepath.Join(dir, "config.toml.example")
	if err := os.WriteFile(demoCfg, example, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := svcTestRun(t, "status\nquit\n", "console", "--config", demoCfg)
	if code != exitOK {
		t.Fatalf("console on the example: exit %d\n%s\n%s", code, out, errOut)
	}
	demoDB := filepath.Join(dir, "demo", "gmailtls-demo.db")
	if _, err := os.Stat(demoDB); err != nil {
		t.Fatalf("the demo's database is not under demo/: %v\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "database "+demoDB) {
		t.Errorf("the console does not name the demo database: %s", errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "gmailtls.db")); err == nil {
		t.Error("the demo wrote gmailtls.db beside the example")
	}

	// cp config.toml.example config.toml, with the path set as the README
	// says: the demo's history is not there.
	deploy := filepath.Join(dir, "config.toml")
	text := strings.Replace(string(example), `path = "demo/gmailtls-demo.db"`, `path = "gmailtls.db"`, 1)
	if err := os.WriteFile(deploy, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := svcTestRun(t, "", "status", "--config", deploy); code != exitUsage || !strings.Contains(errOut, "does not exist") {
		t.Errorf("status on a fresh deployment: exit %d %s; want the missing database reported", code, errOut)
	}
	// On a deployment's configuration the console creates nothing either.
	if code, _, errOut := svcTestRun(t, "quit\n", "console", "--config", deploy); code != exitUsage || !strings.Contains(errOut, "storage init") {
		t.Errorf("console on a deployment without a database: exit %d %s", code, errOut)
	}
}
