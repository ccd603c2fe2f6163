package golden

import (
	"os"
	"path/filepath"
	"testing"
)

// recorder captures failures instead of failing the real test.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }
func (r *recorder) Helper()               {}

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.golden")
	r := &recorder{TB: t}
	Check(r, path, []byte("one"), false, "-update")
	if !r.failed {
		t.Error("a missing golden file passed")
	}
	Check(t, path, []byte("one"), true, "-update")
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Fatalf("update wrote %q", b)
	}
	Check(t, path, []byte("one"), false, "-update")
	r = &recorder{TB: t}
	Check(r, path, []byte("two"), false, "-update")
	if !r.failed {
		t.Error("different output passed")
	}
}
