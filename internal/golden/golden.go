// Package golden compares test output with a golden file, or rewrites the
// file when the test runs with its package's update flag. Test helpers
// only: it imports testing.
package golden

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Check compares got with the file at path. With update it writes got to
// path (creating its folder) instead and passes. flag names the update
// flag in the failure message (e.g. "-update").
func Check(t testing.TB, path string, got []byte, update bool, flag string) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with %s to create it)", err, flag)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (rerun with %s if the change is intended):\n--- got\n%s\n--- want\n%s", path, flag, got, want)
	}
}
