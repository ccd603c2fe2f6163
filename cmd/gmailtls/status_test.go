package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/monitor"
)

// svcTestRun runs a subcommand in-process with stdin and returns its exit
// code and output.
func svcTestRun(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code = dispatch(context.Background(), e, args)
	return code, out.String(), errb.String()
}

// svcTestSetup starts a Gmail-like STARTTLS server on loopback and writes a
// configuration with three local relays probing it, a 5 s timeout and a
// database beside the file.
func svcTestSetup(t *testing.T) (cfgPath string, srv *smtptest.Server) {
	t.Helper()
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	srv = smtptest.StartT(t, smtptest.Options{Behavior: smtptest.Gmail, CA: ca, Hostname: "mx.test.example"})
	dir := t.TempDir()
	if err := ca.WritePEM(filepath.Join(dir, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`[target]
mx = [%q]
servername = "mx.test.example"
ca_file = "ca.pem"
timeout = "5s"
helo_name = "probe.test.example"

[storage]
path = "history.db"

[[relay]]
name = "relay-1"

[[relay]]
name = "relay-2"

[[relay]]
name = "relay-3"

[access]
admins = ["UADMIN"]
`, srv.Addr())
	cfgPath = filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	svcTestInit(t, cfgPath)
	return cfgPath, srv
}

// svcTestInit creates the database of cfgPath, as an operator does with
// gmailtls storage init (or by starting serve) before the first check.
func svcTestInit(t *testing.T, cfgPath string) {
	t.Helper()
	if code, out, errOut := svcTestRun(t, "", "storage", "init", "--config", cfgPath); code != exitOK {
		t.Fatalf("storage init: exit %d\n%s\n%s", code, out, errOut)
	}
}

// svcTestConsole types commands into a fresh console (a new process each
// time: the database is closed and reopened) and fails on a non-zero exit.
func svcTestConsole(t *testing.T, cfgPath string, lines ...string) string {
	t.Helper()
	code, out, errOut := svcTestRun(t, strings.Join(lines, "\n")+"\n", "console", "--config", cfgPath)
	if code != exitOK {
		t.Fatalf("console %q: exit %d\n%s\n%s", lines, code, out, errOut)
	}
	return out
}

// TestStatusAndHistoryShowEscalation is the "done when": on a real
// database file, a relay that failed once (watch), one that failed three
// times (investigate) and two failing together (incident), shown by status
// and history, unchanged after a restart.
func TestStatusAndHistoryShowEscalation(t *testing.T) {
	cfgPath, srv := svcTestSetup(t)

	out := svcTestConsole(t, cfgPath, "check all")
	if !strings.Contains(out, "check all: 3 of 3 relays passed STARTTLS to Gmail") {
		t.Fatalf("check all:\n%s", out)
	}
	srv.SetBehavior(smtptest.ResetAfterReady)
	out = svcTestConsole(t, cfgPath, "check relay-1")
	if !strings.Contains(out, "relay-1: STARTTLS to Gmail failed") || !strings.Contains(out, "tls_reset") {
		t.Fatalf("check relay-1:\n%s", out)
	}
	svcTestConsole(t, cfgPath, "check relay-2", "check relay-2", "check relay-2")
	svcTestConsole(t, cfgPath, "check relay-3", "check relay-3", "check relay-3")

	type relayJSON struct {
		Relay            string `json:"relay"`
		Level            string `json:"level"`
		Scope            string `json:"scope"`
		Advice           string `json:"advice"`
		LastFailureClass string `json:"last_failure_class"`
		LastSuccess      any    `json:"last_success"`
		LastFailure      any    `json:"last_failure"`
	}
	type statusJSON struct {
		Global struct {
			Level string `json:"level"`
			Scope string `json:"scope"`
		} `json:"global"`
		Relays []relayJSON `json:"relays"`
	}
	readStatus := func() (statusJSON, string) {
		code, out, errOut := svcTestRun(t, "", "status", "--config", cfgPath, "--json")
		if code != exitOK {
			t.Fatalf("status --json: exit %d: %s", code, errOut)
		}
		var st statusJSON
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		return st, out
	}
	st, raw := readStatus()
	if st.Global.Level != "incident" {
		t.Fatalf("global level %q, want incident\n%s", st.Global.Level, raw)
	}
	want := map[string][2]string{
		"relay-1": {"watch", "one_event"},
		"relay-2": {"investigate", "one_host"},
		"relay-3": {"investigate", "one_host"},
	}
	if len(st.Relays) != 3 {
		t.Fatalf("%d relays in status", len(st.Relays))
	}
	for _, r := range st.Relays {
		w := want[r.Relay]
		if r.Level != w[0] || r.Scope != w[1] {
			t.Errorf("%s: %s/%s, want %s/%s", r.Relay, r.Level, r.Scope, w[0], w[1])
		}
		if r.LastFailureClass != "tls_reset" || r.LastFailure == nil || r.LastSuccess == nil || r.Advice == "" {
			t.Errorf("%s: %+v", r.Relay, r)
		}
	}
	// A second read is a restart: the database is reopened and the state
	// rebuilt from it. Nothing changes.
	_, raw2 := readStatus()
	if stripAt(raw) != stripAt(raw2) {
		t.Fatalf("status changed across a restart:\n%s\n%s", raw, raw2)
	}

	code, text, _ := svcTestRun(t, "", "status", "--config", cfgPath)
	if code != exitOK {
		t.Fatalf("status: exit %d", code)
	}
	for _, w := range []string{"gmailtls status: INCIDENT", "relay-2 · investigate (one_host)", "relay-1 · watch (one_event)", "tls_reset"} {
		if !strings.Contains(text, w) {
			t.Errorf("status text lacks %q:\n%s", w, text)
		}
	}

	code, hist, errOut := svcTestRun(t, "", "history", "--config", cfgPath, "--relay", "relay-2", "--json")
	if code != exitOK {
		t.Fatalf("history: exit %d %s", code, errOut)
	}
	var h struct {
		Results []struct {
			ID      int64     `json:"id"`
			RunID   int64     `json:"run_id"`
			Trigger string    `json:"trigger"`
			Relay   string    `json:"relay"`
			OK      bool      `json:"ok"`
			Stage   string    `json:"stage"`
			Failure string    `json:"failure"`
			MX      string    `json:"mx"`
			Started time.Time `json:"started_at"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(hist), &h); err != nil {
		t.Fatalf("history --json: %v\n%s", err, hist)
	}
	if len(h.Results) != 4 {
		t.Fatalf("relay-2 has %d results, want 4 (one pass, three failures)\n%s", len(h.Results), hist)
	}
	for i, r := range h.Results[:3] {
		if r.OK || r.Stage != "handshake" || r.Failure != "tls_reset" || r.Relay != "relay-2" || r.Trigger != "console" {
			t.Errorf("result %d: %+v", i, r)
		}
		if i > 0 && r.Started.After(h.Results[i-1].Started) {
			t.Errorf("history not newest first")
		}
	}
	if !h.Results[3].OK {
		t.Errorf("oldest result should be the pass: %+v", h.Results[3])
	}
	code, table, _ := svcTestRun(t, "", "history", "--config", cfgPath, "--since", "1d", "--failures")
	if code != exitOK || strings.Count(table, "tls_reset") != 7 || !strings.Contains(table, "handshake") {
		t.Fatalf("history table (exit %d):\n%s", code, table)
	}
	code, _, errOut = svcTestRun(t, "", "history", "--config", cfgPath, "--relay", "relay-9")
	if code != exitUsage || !strings.Contains(errOut, `there is no relay "relay-9"`) {
		t.Fatalf("unknown relay: exit %d %s", code, errOut)
	}
}

func stripAt(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), `"at":`) {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func TestRelaysCommand(t *testing.T) {
	cfgPath, _ := svcTestSetup(t)
	svcTestConsole(t, cfgPath, "pause relay-2 3h")
	code, out, errOut := svcTestRun(t, "", "relays", "--config", cfgPath, "--json")
	if code != exitOK {
		t.Fatalf("relays: %d %s", code, errOut)
	}
	var m monitor.RelaysModel
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Relays) != 3 || !m.Relays[1].Paused || m.Relays[1].PausedBy != "console" || m.Relays[0].Paused {
		t.Fatalf("relays: %+v", m.Relays)
	}
	// Drop relay-3 from the configuration: it is retired, its history kept.
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	trimmed := strings.Replace(string(data), "[[relay]]\nname = \"relay-3\"\n", "", 1)
	if err := os.WriteFile(cfgPath, []byte(trimmed), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = svcTestRun(t, "", "relays", "--config", cfgPath)
	if code != exitOK || !strings.Contains(out, "gmailtls relays: 2 configured") || !strings.Contains(out, "Retired") || !strings.Contains(out, "relay-3 · local") {
		t.Fatalf("relays text (exit %d):\n%s", code, out)
	}
}

func TestStatusFlagsAndDefaults(t *testing.T) {
	code, _, errOut := svcTestRun(t, "", "status", "extra")
	if code != exitUsage || !strings.Contains(errOut, `status does not take "extra"`) {
		t.Fatalf("stray argument: %d %s", code, errOut)
	}
	code, _, errOut = svcTestRun(t, "", "status", "--config", filepath.Join(t.TempDir(), "missing.toml"))
	if code != exitUsage || errOut == "" {
		t.Fatalf("missing explicit config: %d %q", code, errOut)
	}
	code, _, _ = svcTestRun(t, "", "history", "--since", "yesterday")
	if code != exitUsage {
		t.Fatalf("bad --since: %d", code)
	}
	// Without --config and without config.toml: the defaults, with a note;
	// status refuses the missing database (it creates none), and after
	// storage init it reads the one in the working directory.
	dir := t.TempDir()
	t.Chdir(dir)
	code, out, errOut := svcTestRun(t, "", "status", "--json")
	if code != exitUsage || !strings.Contains(errOut, "using the built-in defaults") || !strings.Contains(errOut, "gmailtls.db: no gmailtls database: the file does not exist") {
		t.Fatalf("defaults without a database: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "gmailtls.db")); err == nil {
		t.Fatal("status created a database")
	}
	if code, out, errOut := svcTestRun(t, "", "storage", "init"); code != exitOK {
		t.Fatalf("storage init: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = svcTestRun(t, "", "status", "--json")
	if code != exitOK || !strings.Contains(errOut, "using the built-in defaults") {
		t.Fatalf("defaults: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, `"relay": "local"`) || !strings.Contains(out, `"no_results": true`) {
		t.Fatalf("defaults status:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "gmailtls.db")); err != nil {
		t.Fatalf("database not beside the working directory: %v", err)
	}
}
