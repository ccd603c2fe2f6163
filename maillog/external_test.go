package maillog_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/postfixlab"
	"github.com/gmailtls/gmailtls/maillog"
	"github.com/gmailtls/gmailtls/relay"
)

// TestRealPostfixRelay reads the log of a real Postfix relay whose MX
// resets every TLS handshake: every SSL_connect and deferred line is
// recognised, each deferral is tied to its process's SSL_connect error,
// and no local part leaves.
func TestRealPostfixRelay(t *testing.T) {
	r := postfixlab.StartRelay(t, postfixlab.RelayOptions{Messages: 6})
	raw, err := r.Log()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := maillog.Clock{Now: now}
	// Every line Postfix wrote about the failures is understood, and the
	// process of each deferral logged an SSL_connect error before it.
	errorsBy := map[int]int{}
	deferred := 0
	for _, l := range raw {
		if !strings.Contains(l, postfixlab.LogSSLConnectReset) && !strings.Contains(l, "status=deferred") {
			continue
		}
		p, ok := maillog.Parse(l, c)
		if !ok {
			t.Errorf("not recognised: %q", l)
			continue
		}
		if now.Sub(p.Time) > 10*time.Minute || p.Time.After(now.Add(time.Minute)) {
			t.Errorf("time %v of %q is not now", p.Time, l)
		}
		switch p.Event {
		case maillog.EventTLSError:
			errorsBy[p.PID]++
			if p.IP != "127.0.0.1" || p.Port != r.MX.Port() || p.Reason != "Connection reset by peer" || p.Program != "postfix/smtp" {
				t.Errorf("SSL_connect line = %+v", p)
			}
		case maillog.EventDelivery:
			deferred++
			if errorsBy[p.PID] == 0 {
				t.Errorf("deferral %s of process %d without an SSL_connect error before it", p.QueueID, p.PID)
			}
			if p.Status != "deferred" || p.DSN != "4.7.5" || p.Reason != "Cannot start TLS: handshake failure" || p.IP != "127.0.0.1" {
				t.Errorf("deferral = %+v", p)
			}
		default:
			t.Errorf("%q read as %s", l, p.Event)
		}
	}
	if deferred != 6 {
		t.Fatalf("%d deferred lines, want 6", deferred)
	}
	s, err := maillog.Read(context.Background(), r.LogPath(), time.Hour, maillog.Options{Clock: c})
	if err != nil || !s.Available {
		t.Fatalf("Read: %v %s", err, s.Error)
	}
	if len(s.MX) != 1 || s.MX[0].IP != "127.0.0.1" || s.MX[0].TLSFailures < 6 || s.MX[0].Delivered != 0 {
		t.Errorf("MX = %+v, want 127.0.0.1 with at least 6 TLS failures", s.MX)
	}
	if len(s.Queue) != 6 {
		t.Fatalf("queue = %+v, want the 6 messages", s.Queue)
	}
	domains := map[string]int{}
	for _, q := range s.Queue {
		domains[q.Domains[0]]++
		if q.Delivered || len(q.Attempts) == 0 {
			t.Errorf("%s = %+v", q.QueueID, q)
			continue
		}
		for _, at := range q.Attempts {
			// The pid ties exactly one SSL_connect error to each attempt,
			// although two smtp processes interleave their lines.
			if len(at.Errors) != 1 || !strings.HasSuffix(at.Errors[0], "Connection reset by peer") || at.MXIP != "127.0.0.1" {
				t.Errorf("%s attempt = %+v", q.QueueID, at)
			}
		}
	}
	for _, d := range postfixlab.DefaultRelayDomains {
		if domains[d] != 2 {
			t.Errorf("domains = %v, want 2 messages to %s", domains, d)
		}
	}
	for _, l := range s.Lines {
		if strings.Contains(l, "user") && strings.Contains(l, "user1@") || strings.Contains(l, "lab@") {
			t.Errorf("line keeps a local part: %q", l)
		}
	}
	if len(s.Lines) < 12 {
		t.Errorf("lines = %d, want the 6 SSL_connect and 6 deferred lines", len(s.Lines))
	}
}

// TestJournald runs a fake journalctl found through PATH by the relay's
// ExecRunner, with the arguments the real one needs.
func TestJournald(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	argsFile := filepath.Join(dir, "args")
	// journalctl --reverse: newest first.
	out := `2026-12-04T19:40:03+0000 relay-2 postfix/smtp[29416]: 4D8E45103FE: to=<user3@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.102.26]:25, delay=9.4, delays=9.4/0/0/0, dsn=4.7.5, status=deferred (Cannot start TLS: handshake failure)
2026-12-04T19:40:01+0000 relay-2 postfix/smtp[29416]: SSL_connect error to gmail-smtp-in.l.google.com[142.250.102.26]:25: Connection reset by peer
-- Boot 0123456789abcdef --
`
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argsFile + "\ncat <<'EOF'\n" + out + "EOF\n"
	if err := os.WriteFile(filepath.Join(dir, "journalctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	s, err := maillog.Read(context.Background(), maillog.Journald, time.Hour,
		maillog.Options{Clock: maillog.Clock{Now: now}, Commands: &relay.ExecRunner{}})
	if err != nil || !s.Available {
		t.Fatalf("Read: %v %+v", err, s)
	}
	if len(s.Queue) != 1 || len(s.Queue[0].Attempts) != 1 || len(s.Queue[0].Attempts[0].Errors) != 1 {
		t.Errorf("queue = %+v, want the deferral tied to its SSL_connect error", s.Queue)
	}
	args, _ := os.ReadFile(argsFile)
	want := "-u\npostfix*\n-u\nexim*\n-o\nshort-iso\n--since\n@" + strconv.FormatInt(now.Add(-time.Hour).Unix(), 10) + "\n--no-pager\n--quiet\n--reverse\n"
	if string(args) != want {
		t.Errorf("journalctl args:\n%s\nwant\n%s", args, want)
	}
	// A failing journalctl: not available, with its message.
	fail := "#!/bin/sh\necho 'No journal files were opened due to insufficient permissions.' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "journalctl"), []byte(fail), 0o755); err != nil {
		t.Fatal(err)
	}
	s, _ = maillog.Read(context.Background(), maillog.Journald, time.Hour,
		maillog.Options{Clock: maillog.Clock{Now: now}, Commands: &relay.ExecRunner{}})
	if s.Available || !strings.Contains(s.Error, "insufficient permissions") {
		t.Errorf("failing journalctl: %+v", s)
	}
}
