package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected errors in testdata/bad/*.err")

// goldenEnv is the environment every bad config is loaded with. Its secret
// values must never appear in an error.
var goldenEnv = map[string]string{
	"RELAY_SECRET":          "relay-secret-value-1234-0123456789abcdef",
	"RELAY7_SECRET":         "relay7-secret-value-1234-0123456789abcdef",
	"GMAILTLS_AGENT_SECRET": "agent-secret-value-1234-0123456789abcdef",
	"SLACK_BOT_TOKEN":       "xoxb-bot-token-value-1234",
	"SHORT_SECRET":          "short-secret-value",
	"BAD_DSN":               "hunter2 not a connection string",
}

// TestBadConfigs loads each testdata/bad/NAME.toml (with LoadAgent when
// NAME starts with "agentfile_") and compares the error with NAME.err, like
// blackbox_exporter's config tests. Run with -update to rewrite them.
func TestBadConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	abs, err := filepath.Abs("testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".toml")
		t.Run(name, func(t *testing.T) {
			load := Load
			if strings.HasPrefix(name, "agentfile_") {
				load = LoadAgent
			}
			cfg, err := load(file, fakeenv(goldenEnv))
			if err == nil {
				t.Fatalf("loaded without error: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("returned a Config along with the error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			for _, p := range Problems(err) {
				if !errors.Is(p, ErrInvalid) {
					t.Errorf("problem does not wrap ErrInvalid: %v", p)
				}
			}
			got := strings.ReplaceAll(err.Error(), abs, "$DIR") + "\n"
			for _, v := range goldenEnv {
				if strings.Contains(got, v) {
					t.Errorf("error reveals a secret value: %s", got)
				}
			}
			if strings.Contains(got, "hunter2") {
				t.Errorf("error reveals a URL password: %s", got)
			}
			golden := strings.TrimSuffix(file, ".toml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("error text differs from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}
