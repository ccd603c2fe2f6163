package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/storage"
)

// restart stops the daemon and starts another on the same configuration
// file, so on the same database.
func (f *serveFixture) restart(t *testing.T) {
	t.Helper()
	f.stop(t)
	c, err := config.Load(f.cfgPath, f.getenv)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.metrics = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan error, 1)
	f.d, err = newDaemon(ctx, c, slog.New(slog.NewTextHandler(io.Discard, nil)), daemonOptions{MetricsListener: ln, OutboxPoll: 50 * time.Millisecond})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { f.done <- f.d.run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !f.d.bot.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("the restarted bot never became ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServeHTTPModeRefusesReplays: one signed `check relay-1`, captured
// and sent twice more, then again after a restart, probes once.
func TestServeHTTPModeRefusesReplays(t *testing.T) {
	f := startServe(t, "http", "")
	secret := f.env["SLACK_SIGNING_SECRET"]
	signedAt := time.Now()
	form := slackfake.Slash{Text: "check relay-1", ResponseURL: f.slack.ResponseURL("once")}.Form().Encode()
	captured := func(base string) *http.Request {
		req, err := slackfake.SignedRequest(context.Background(), base+"/slack/commands", secret, signedAt, form)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	base := "http://" + f.d.bot.Addr().String()
	if code, reply := postBody(t, captured(base)); code != http.StatusOK || !strings.Contains(reply, "probing relay-1") {
		t.Fatalf("the command: %d %s", code, reply)
	}
	f.wait(t, "the result", func() bool { _, ok := f.messageOn("once"); return ok })
	probes := f.smtp.Connections()
	for range 2 {
		if code, reply := postBody(t, captured(base)); code != http.StatusOK || reply != "" {
			t.Errorf("a replay: %d %q, want an empty 200", code, reply)
		}
	}

	f.restart(t)
	base = "http://" + f.d.bot.Addr().String()
	if code, reply := postBody(t, captured(base)); code != http.StatusOK || reply != "" {
		t.Errorf("a replay after the restart: %d %q, want an empty 200", code, reply)
	}
	// A new command still runs; once it is answered, stop, so that
	// nothing queued can still be running.
	fresh, _ := slackfake.SignedRequest(context.Background(), base+"/slack/commands", secret, time.Now(),
		slackfake.Slash{Text: "check relay-1", TriggerID: "another.trigger", ResponseURL: f.slack.ResponseURL("fresh")}.Form().Encode())
	if code, reply := postBody(t, fresh); code != http.StatusOK || !strings.Contains(reply, "probing relay-1") {
		t.Fatalf("a new command after the restart: %d %s", code, reply)
	}
	f.wait(t, "the new result", func() bool { _, ok := f.messageOn("fresh"); return ok })
	f.stop(t)
	if n := f.smtp.Connections(); n != 2*probes {
		t.Errorf("%d probe connections for two commands and three replays, want %d", n, 2*probes)
	}
	if n := len(f.slack.Messages()); n != 2 {
		t.Errorf("%d messages delivered, want 2", n)
	}
}

// TestServeExportsLevelsFromStart: /metrics has the level of every
// configured relay and the global level from the first scrape, before any
// probe: ok on a new database, and after a restart the levels stored
// before (relay-1 at investigate), not nothing until a level changes.
func TestServeExportsLevelsFromStart(t *testing.T) {
	f := startServe(t, "socket", "\n[[relay]]\nname = \"relay-2\"\n")
	levels := func() string {
		t.Helper()
		return grepLines(httpGet(t, f.metrics+"/metrics", 200), "gmailtls_relay_level{")
	}
	for _, want := range []string{`gmailtls_relay_level{relay=""} 0`, `gmailtls_relay_level{relay="relay-1"} 0`, `gmailtls_relay_level{relay="relay-2"} 0`} {
		if got := levels(); !strings.Contains(got, want) {
			t.Errorf("a new database: missing %s in\n%s", want, got)
		}
	}

	f.stop(t)
	st, err := storage.Open(context.Background(), filepath.Join(filepath.Dir(f.cfgPath), "serve.db"), storage.Options{Mode: storage.ModeExisting})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddEvent(context.Background(), storage.Event{Relay: "relay-1", From: escalation.LevelWatch, To: escalation.LevelInvestigate,
		Scope: escalation.ScopeOneHost, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	f.restart(t)
	got := levels()
	for _, want := range []string{`gmailtls_relay_level{relay=""} 0`, `gmailtls_relay_level{relay="relay-1"} 2`, `gmailtls_relay_level{relay="relay-2"} 0`} {
		if !strings.Contains(got, want) {
			t.Errorf("after a restart: missing %s in\n%s", want, got)
		}
	}
}
