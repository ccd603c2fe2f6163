package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPrepareDemo: only a *.example file is the demo, and for it the
// database's folder is created.
func TestPrepareDemo(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "demo", "sub", "gmailtls.db")
	body := []byte("[storage]\npath = \"" + filepath.ToSlash(db) + "\"\n")
	for _, name := range []string{"config.toml", "config.toml.example"} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	getenv := func(string) string { return "" }
	demo, err := PrepareDemo(filepath.Join(dir, "config.toml"), getenv)
	if demo || err != nil {
		t.Fatalf("config.toml: demo %v, err %v; want not the demo", demo, err)
	}
	if _, err := os.Stat(filepath.Dir(db)); !os.IsNotExist(err) {
		t.Fatalf("a non-demo configuration created the database's folder: %v", err)
	}
	demo, err = PrepareDemo(filepath.Join(dir, "config.toml.example"), getenv)
	if !demo || err != nil {
		t.Fatalf("config.toml.example: demo %v, err %v; want the demo", demo, err)
	}
	if fi, err := os.Stat(filepath.Dir(db)); err != nil || !fi.IsDir() {
		t.Fatalf("the demo's database folder was not created: %v", err)
	}
}
