package main

import (
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
)

// TestCheckAgentRelayEndToEnd is issue 6's "done when" on loopback: the bot
// (here its console) checks relay-2, an agent relay; the answer carries the
// agent's own results, the MTA-stack comparison, and evidence names the
// agent's host, MTA/TLS library and the exact time.
func TestCheckAgentRelayEndToEnd(t *testing.T) {
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	srv := smtptest.StartT(t, smtptest.Options{Behavior: smtptest.Gmail, CA: ca, Hostname: "mx.test.example"})
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := ca.WritePEM(caFile); err != nil {
		t.Fatal(err)
	}
	target, err := probe.ParseTarget(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	secret := "relay-2-shared-secret-for-the-agent-tests"
	// The relay's queue: real `postqueue -j` output of Postfix 3.7 with
	// three deferred messages to Gmail recipients, printed by a stand-in
	// postqueue program that the agent runs as it runs the real one.
	postqueue := filepath.Join(dir, "postqueue")
	fixture, err := filepath.Abs("../../relay/testdata/postqueue/postfix-3.7-deferred.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(postqueue, []byte("#!/bin/sh\nexec cat '"+fixture+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Over TLS, as in production: the bot trusts the agent's certificate
	// through the relay's ca_file.
	agent := httptest.NewTLSServer(relay.NewServer(relay.ServerConfig{
		Postqueue: postqueue,
		Base:      probe.Config{Relay: "relay-2.test", MX: []probe.Target{target}, ServerName: "mx.test.example", ExtraRoots: ca.Pool},
		Secrets:   [][]byte{[]byte(secret)},
		MTAStack:  true,
		CAFile:    caFile,
		Version:   "test",
	}))
	defer agent.Close()
	agentCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: agent.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "agent-ca.pem"), agentCA, 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := fmt.Sprintf(`[target]
mx = [%q]
servername = "mx.test.example"
ca_file = "ca.pem"
timeout = "5s"

[storage]
path = "agent-e2e.db"

[[relay]]
name = "relay-1"

[[relay]]
name = "relay-2"
kind = "agent"
url = %q
secret_env = "RELAY2_SECRET"
ca_file = "agent-ca.pem"
`, srv.Addr(), agent.URL)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	svcTestInit(t, cfgPath)
	run := func(lines ...string) string {
		t.Helper()
		var out, errb strings.Builder
		e := &env{stdin: strings.NewReader(strings.Join(lines, "\n") + "\n"), stdout: &out, stderr: &errb,
			getenv: func(k string) string {
				if k == "RELAY2_SECRET" {
					return secret
				}
				return ""
			}}
		if code := dispatch(t.Context(), e, []string{"console", "--config", cfgPath}); code != exitOK {
			t.Fatalf("console: exit %d\n%s\n%s", code, out.String(), errb.String())
		}
		return out.String()
	}

	out := run("check relay-2")
	if !strings.Contains(out, "relay-2") || !strings.Contains(out, "TLS 1.3") {
		t.Fatalf("check relay-2 through the agent:\n%s", out)
	}
	if _, err := exec.LookPath("openssl"); err == nil && !strings.Contains(out, "openssl") {
		t.Errorf("check relay-2 lacks the MTA-stack (openssl) comparison:\n%s", out)
	}
	// The path breaks (an expired certificate): evidence collects what a
	// ticket needs from the failing run.
	srv.SetBehavior(smtptest.ExpiredCert)
	if out := run("check relay-2"); !strings.Contains(out, "cert_expired") {
		t.Fatalf("check relay-2 after the certificate expired:\n%s", out)
	}
	ev := run("evidence relay-2")
	for _, want := range []string{"relay-2", srv.Addr(), "UTC"} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}
	if _, err := exec.LookPath("openssl"); err == nil && !strings.Contains(strings.ToLower(ev), "openssl") {
		t.Errorf("evidence lacks the relay's TLS library (openssl version):\n%s", ev)
	}
	// The queue figures (read now, and the samples stored beside the two
	// checks) and the failing transcript.
	for _, want := range []string{
		"Gmail-bound queue", "3 deferred (3 Gmail recipients)", "Cannot start TLS: handshake failure",
		"3 → 3 deferred", "(2 samples",
		"transcript of result", "C: STARTTLS", "S: 220 2.0.0 Ready to start TLS",
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}

	// The agent goes away: relay-2 is reported as agent_unreachable, not as
	// a Gmail failure.
	agent.Close()
	out = run("check relay-2")
	if !strings.Contains(out, string(probe.FailAgentUnreachable)) {
		t.Errorf("stopped agent:\n%s", out)
	}
	// Three lost agents in a row never raise relay-2's level: it stays at
	// watch from the one real failure, and says the agent is down.
	run("check relay-2", "check relay-2")
	st := run("status")
	if !strings.Contains(st, "relay-2 · watch") || !strings.Contains(st, "agent down") {
		t.Errorf("agent failures raised relay-2's level:\n%s", st)
	}
}
