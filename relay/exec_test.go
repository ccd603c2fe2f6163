package relay

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestToolsGetAMinimalEnvironment: the tools the agent runs (here a fake
// openssl that prints its environment, found through PATH like the real
// one) see PATH, the locale, the time zone, MAIL_CONFIG and OpenSSL's
// variables, and none of the process's secrets.
func TestToolsGetAMinimalEnvironment(t *testing.T) {
	bin := t.TempDir()
	script := "#!/bin/sh\necho \"argv0=$0\"\nenv\n"
	if err := os.WriteFile(filepath.Join(bin, "openssl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"SLACK_BOT_TOKEN":         "xoxb-leak-1",
		"SLACK_SIGNING_SECRET":    "leak-signing-2",
		"SLACK_APP_TOKEN":         "xapp-leak-3",
		"GMAILTLS_AGENT_SECRET":   "leak-agent-secret-4",
		"GMAILTLS_RELAY2_SECRET":  "leak-relay-secret-5",
		"GMAILTLS_POSTGRES_DSN":   "postgres://leak:6@db/x",
		"AWS_SECRET_ACCESS_KEY":   "leak-7",
		"GMAILTLS_AGENT_PREVIOUS": "leak-8",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	kept := map[string]string{
		"MAIL_CONFIG":   "/etc/postfix-out",
		"TZ":            "Europe/Berlin",
		"LANG":          "C.UTF-8",
		"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
	}
	for k, v := range kept {
		t.Setenv(k, v)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	// The agent's own code path: NewServer's default runner, /v1/info.
	var logs bytes.Buffer
	agent := plainAgent(t, ServerConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	a := NewAgent("relay-2", agent.URL, testSecret, agent.Client(), 10*time.Second, nil)
	info, err := a.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	env := info.TLSLibrary + "\n" // what the fake openssl printed, trimmed
	if !strings.Contains(env, "argv0="+filepath.Join(bin, "openssl")) {
		t.Fatalf("the fake openssl did not run: %q", env)
	}
	for k, v := range secrets {
		if strings.Contains(env, k) || strings.Contains(env, v) {
			t.Errorf("%s reached the tool", k)
		}
	}
	for k, v := range kept {
		if !strings.Contains(env, k+"="+v+"\n") {
			t.Errorf("%s did not reach the tool", k)
		}
	}
	if !strings.Contains(env, "PATH="+bin) {
		t.Errorf("PATH did not reach the tool")
	}
	if !strings.Contains(logs.String(), "tool=openssl path="+filepath.Join(bin, "openssl")) {
		t.Errorf("the tool's path is not logged:\n%s", logs.String())
	}
}

// TestExecRunnerResolvesOnce: a tool runs from the path it was first found
// at, even when PATH later points elsewhere.
func TestExecRunnerResolvesOnce(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	for dir, say := range map[string]string{first: "first", second: "second"} {
		if err := os.WriteFile(filepath.Join(dir, "posttls-finger"), []byte("#!/bin/sh\necho "+say+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := first
	r := &ExecRunner{Getenv: func(k string) string {
		if k == "PATH" {
			return path
		}
		return ""
	}}
	t.Setenv("PATH", first)
	out, err := r.Run(t.Context(), "posttls-finger")
	if err != nil || string(out) != "first\n" {
		t.Fatalf("%q %v", out, err)
	}
	t.Setenv("PATH", second)
	path = second
	if out, _ := r.Run(t.Context(), "posttls-finger"); string(out) != "first\n" {
		t.Errorf("after PATH changed: %q", out)
	}
	if _, err := r.Run(t.Context(), "gmailtls-no-such-tool"); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("missing tool: %v", err)
	}
	if env := ChildEnv(func(string) string { return "" }); len(env) != 1 || env[0] != "PATH="+defaultPath {
		t.Errorf("empty environment: %v", env)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.Run(ctx, "posttls-finger"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
