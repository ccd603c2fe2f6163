package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: no input makes Parse panic, and every error wraps ErrInvalid.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(exampleFile); err == nil {
		f.Add(data)
	}
	files, _ := filepath.Glob("testdata/bad/*.toml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("[[relay]]\nname = \"a\"\n[relay.x]\ny = { z = [1, {w = 2}] }\n"))
	f.Add([]byte("[probing]\nschedule = \"CRON_TZ=UTC\"\n"))
	f.Add([]byte("a = '''\n[x]\n'''\n\"b\".c = 1\n"))
	dir := f.TempDir()
	env := fakeenv(map[string]string{"GMAILTLS_AGENT_SECRET": "s"})
	f.Fuzz(func(t *testing.T, data []byte) {
		if ix, err := indexKeys(data); err == nil { // panics surface here
			_ = ix.lineOf("relay[0].name")
		}
		c, err := Parse(data, "fuzz.toml", dir, env)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			for _, p := range Problems(err) {
				if !errors.Is(p, ErrInvalid) {
					t.Fatalf("problem does not wrap ErrInvalid: %v", p)
				}
				// Parse turns panics into this message; here they are bugs.
				if strings.Contains(p.Error(), "decoder failure") {
					t.Fatalf("Parse panicked: %v", p)
				}
			}
			if c != nil {
				t.Fatal("a Config came with the error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate rejects: %v", err)
		}
	})
}
