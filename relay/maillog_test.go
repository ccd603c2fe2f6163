package relay

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/internal/postfixlab"
	"github.com/gmailtls/gmailtls/probe"
)

const agentLog = `Dec  4 19:40:01 relay-2 postfix/smtp[29416]: SSL_connect error to gmail-smtp-in.l.google.com[142.250.102.26]:25: Connection reset by peer
Dec  4 19:40:01 relay-2 postfix/smtp[29416]: 4D8E45103FE: to=<user3@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.102.26]:25, delay=9.4, delays=9.4/0/0/0, dsn=4.7.5, status=deferred (Cannot start TLS: handshake failure)
Dec  4 19:50:00 relay-2 postfix/smtp[29600]: 4D8E45103FE: to=<user3@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.102.26]:25, delay=600, delays=590/0/0.2/0.3, dsn=2.0.0, status=sent (250 2.0.0 OK  1733341800 - gsmtp)
`

// TestAgentLog: GET /v1/log?window= is signed like the other reads, with
// the window in the signed query, and answers the Summary of the agent's
// mail log; the bot's Agent decodes it.
func TestAgentLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	if err := os.WriteFile(path, []byte(agentLog), 0o644); err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Date(2026, 12, 4, 20, 0, 0, 0, time.Local) }
	srv := plainAgent(t, ServerConfig{Base: probe.Config{Relay: "relay-2"}, MailLog: path, Now: now})
	a := NewAgent("relay-2", srv.URL, testSecret, srv.Client(), 10*time.Second, now)
	var lr LogReader = a
	s, err := lr.Log(context.Background(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Available || s.Source != path || len(s.Queue) != 1 || !s.Queue[0].Delivered || len(s.Queue[0].Attempts) != 1 ||
		s.Queue[0].Attempts[0].Errors[0] != "SSL_connect error to gmail-smtp-in.l.google.com[142.250.102.26]: Connection reset by peer" {
		t.Fatalf("summary = %+v", s)
	}
	if len(s.Lines) != 2 || !strings.Contains(s.Lines[1], "to=<*@gmail.com>") || strings.Contains(strings.Join(s.Lines, "\n"), "user3") {
		t.Errorf("lines = %q", s.Lines)
	}
	if !s.Since.Equal(now().Add(-time.Hour)) {
		t.Errorf("since = %v", s.Since)
	}
	// A window of 5 minutes ending at 20:00 holds nothing.
	s, err = a.Log(context.Background(), 5*time.Minute)
	if err != nil || len(s.Queue) != 0 || len(s.MX) != 0 {
		t.Errorf("5 minutes: %v %+v", err, s)
	}
	// Out of range: 400, as an agent error.
	_, err = a.Log(context.Background(), time.Second)
	if !errors.Is(err, ErrAgentError) || !strings.Contains(err.Error(), "400") {
		t.Errorf("1s window: %v", err)
	}
	// Unsigned: 401.
	resp, err := http.Get(srv.URL + PathLog + "?window=1h")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned: %d", resp.StatusCode)
	}
	// An agent without a mail log says so.
	bare := plainAgent(t, ServerConfig{Base: probe.Config{Relay: "relay-2"}, Now: now})
	s, err = NewAgent("relay-2", bare.URL, testSecret, bare.Client(), 10*time.Second, now).Log(context.Background(), time.Hour)
	if err != nil || s.Available || !strings.Contains(s.Error, "mail_log") {
		t.Errorf("no mail log: %v %+v", err, s)
	}
}

// TestLocalLogRealPostfix: a local relay configured with the real
// Postfix relay's log reads its SSL_connect and deferred lines.
func TestLocalLogRealPostfix(t *testing.T) {
	r := postfixlab.StartRelay(t, postfixlab.RelayOptions{})
	l := NewLocal("relay-1", probe.Config{}, nil)
	l.MailLog = r.LogPath()
	s, err := l.Log(context.Background(), time.Hour)
	if err != nil || !s.Available {
		t.Fatalf("Log: %v %s", err, s.Error)
	}
	if len(s.Queue) != len(postfixlab.DefaultRelayDomains) || len(s.MX) != 1 || s.MX[0].TLSFailures < len(postfixlab.DefaultRelayDomains) {
		t.Errorf("summary: queue %+v mx %+v", s.Queue, s.MX)
	}
}

func TestParseLogWindow(t *testing.T) {
	for in, want := range map[string]time.Duration{"": time.Hour, "1h": time.Hour, "90m": 90 * time.Minute, "168h": 168 * time.Hour} {
		if got, err := ParseLogWindow(in); err != nil || got != want {
			t.Errorf("ParseLogWindow(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"1s", "169h", "x", "-1h"} {
		if _, err := ParseLogWindow(in); !errors.Is(err, ErrOptions) {
			t.Errorf("ParseLogWindow(%q) = %v, want ErrOptions", in, err)
		}
	}
}

// TestRunnersKeepLogReader: a local relay built from the configuration
// reads the bot's [agent] mail_log, also behind the results observer.
func TestRunnersKeepLogReader(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mail.log"), []byte(agentLog), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte("[target]\nmx = [\"127.0.0.1:2525\"]\n\n[agent]\nmail_log = \"mail.log\"\n\n[[relay]]\nname = \"relay-1\"\n"),
		"config.toml", dir, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	runners, err := Runners(cfg, RunnerOptions{OnResults: func([]probe.Result) {},
		Now: func() time.Time { return time.Date(2026, 12, 4, 20, 0, 0, 0, time.Local) }})
	if err != nil {
		t.Fatal(err)
	}
	lr, ok := runners["relay-1"].(LogReader)
	if !ok {
		t.Fatalf("relay-1 (%T) is not a LogReader", runners["relay-1"])
	}
	s, err := lr.Log(context.Background(), time.Hour)
	if err != nil || !s.Available || s.Source != filepath.Join(dir, "mail.log") || len(s.Queue) != 1 {
		t.Errorf("Log: %v %+v", err, s)
	}
}
