package maillog

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var utc = Clock{Now: time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC), Location: time.UTC}

func TestParseTimestampFormats(t *testing.T) {
	want := time.Date(2026, 12, 4, 19, 40, 1, 0, time.UTC)
	msg := " postfix/smtp[29416]: SSL_connect error to gmail-smtp-in.l.google.com[142.250.102.26]:25: Connection reset by peer"
	for _, tc := range []struct {
		name, head string
		want       time.Time
	}{
		{"rfc3164", "Dec  4 19:40:01 relay-2", want},
		{"maillog_file", "Dec 04 19:40:01 relay-2", want},
		{"rfc3339 rsyslog", "2026-12-04T19:40:01.000123+00:00 relay-2", want.Add(123 * time.Microsecond)},
		{"journalctl short-iso", "2026-12-04T20:40:01+0100 relay-2", want},
		{"rfc3339 Z", "2026-12-04T19:40:01Z relay-2", want},
		// A December line read in January belongs to the year before.
		{"rfc3164 year before", "Dec 31 23:59:59 relay-2", time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := utc
			if tc.name == "rfc3164 year before" {
				c.Now = time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC)
			}
			l, ok := Parse(tc.head+msg, c)
			if !ok {
				t.Fatalf("Parse(%q) not recognised", tc.head+msg)
			}
			if !l.Time.Equal(tc.want) {
				t.Errorf("time = %v, want %v", l.Time, tc.want)
			}
			if l.Event != EventTLSError || l.PID != 29416 || l.Program != "postfix/smtp" || l.IP != "142.250.102.26" ||
				l.Host != "gmail-smtp-in.l.google.com" || l.Port != 25 || l.Reason != "Connection reset by peer" {
				t.Errorf("line = %+v", l)
			}
		})
	}
	// A zone injected for RFC 3164.
	berlin := time.FixedZone("CET", 3600)
	l, ok := Parse("Dec  4 20:40:01 relay-2"+msg, Clock{Now: utc.Now, Location: berlin})
	if !ok || !l.Time.Equal(want) {
		t.Errorf("CET line: %v %v, want %v", ok, l.Time, want)
	}
}

// The issue's lines (a real Debian Postfix relay).
const issueLog = `Dec  4 19:40:01 relay-2 postfix/smtp[29416]: SSL_connect error to 127.0.0.1[127.0.0.1]:2526: Connection reset by peer
Dec  4 19:40:01 relay-2 postfix/smtp[29417]: SSL_connect error to 127.0.0.1[127.0.0.1]:2526: Connection reset by peer
Dec  4 19:40:01 relay-2 postfix/smtp[29416]: 4D8E45103FE: to=<user3@gmail.com>, relay=127.0.0.1[127.0.0.1]:2526, delay=9.4, delays=9.4/0/0/0, dsn=4.7.5, status=deferred (Cannot start TLS: handshake failure)
Dec  4 19:40:02 relay-2 postfix/error[29462]: 467615103FA: to=<user2@googlemail.com>, relay=none, delay=9.4, delays=9.4/0/0/0, dsn=4.7.5, status=deferred (delivery temporarily suspended: Cannot start TLS: handshake failure)
Dec  4 19:40:03 relay-2 postfix/smtp[29417]: 5A1B25103FB: to=<someone.else+tag@Workspace-Customer.test>, orig_to=<alias@relay.example>, relay=127.0.0.1[127.0.0.1]:2526, delay=1, delays=1/0/0/0, dsn=4.7.5, status=deferred (Cannot start TLS: handshake failure)
Dec  4 19:41:00 relay-2 postfix/smtp[29500]: connect to alt1.gmail-smtp-in.l.google.com[142.251.9.26]:25: Connection timed out
Dec  4 19:50:00 relay-2 postfix/smtp[29600]: 4D8E45103FE: to=<user3@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.102.26]:25, delay=600, delays=590/0/0.2/0.3, dsn=2.0.0, status=sent (250 2.0.0 OK  1733341800 - gsmtp)
Dec  4 19:50:01 relay-2 postfix/qmgr[1000]: 4D8E45103FE: removed
Dec  4 19:51:00 relay-2 postfix/smtp[29601]: 6C2D35103FC: to=<x@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.102.26]:25, delay=1, delays=0/0/0.2/0.3, dsn=2.0.0, status=sent (250 2.0.0 OK)
`

func sum(t *testing.T, text string, c Clock, window time.Duration) Summary {
	t.Helper()
	a := NewAggregator(c.Now.Add(-window), c.Now, c, Limits{})
	for l := range strings.Lines(text) {
		a.AddLine(strings.TrimSuffix(l, "\n"))
	}
	return a.Summary()
}

func TestAggregatePostfix(t *testing.T) {
	s := sum(t, issueLog, utc, time.Hour)
	if len(s.Queue) != 3 {
		t.Fatalf("queue = %+v, want 3 IDs", s.Queue)
	}
	byID := map[string]Queued{}
	for _, q := range s.Queue {
		byID[q.QueueID] = q
	}
	q := byID["4D8E45103FE"]
	if len(q.Attempts) != 1 || !q.Delivered || q.DeliveredVia != "gmail-smtp-in.l.google.com[142.250.102.26]" ||
		!q.DeliveredAt.Equal(time.Date(2026, 12, 4, 19, 50, 0, 0, time.UTC)) {
		t.Fatalf("4D8E45103FE = %+v, want one attempt and delivered at 19:50 through 142.250.102.26", q)
	}
	at := q.Attempts[0]
	if at.MXIP != "127.0.0.1" || at.DSN != "4.7.5" || at.Status != "deferred" || at.Reason != "Cannot start TLS: handshake failure" ||
		len(at.Errors) != 1 || at.Errors[0] != "SSL_connect error to 127.0.0.1[127.0.0.1]: Connection reset by peer" || at.Domain != "gmail.com" {
		t.Errorf("attempt = %+v", at)
	}
	sus := byID["467615103FA"]
	if len(sus.Attempts) != 1 || !sus.Attempts[0].Suspended || sus.Attempts[0].Reason != "Cannot start TLS: handshake failure" ||
		sus.Attempts[0].MXIP != "" || sus.Delivered || len(sus.Attempts[0].Errors) != 0 {
		t.Errorf("suspended = %+v", sus)
	}
	ws := byID["5A1B25103FB"]
	if len(ws.Domains) != 1 || ws.Domains[0] != "workspace-customer.test" || len(ws.Attempts[0].Errors) != 1 {
		t.Errorf("workspace = %+v", ws)
	}
	mx := map[string]MXCount{}
	for _, m := range s.MX {
		mx[m.IP] = m
	}
	// Two SSL_connect errors, each tied to its deferral: counted once each.
	if m := mx["127.0.0.1"]; m.TLSFailures != 2 || m.ConnectFailures != 0 || m.OtherFailures != 0 || m.Delivered != 0 {
		t.Errorf("127.0.0.1 = %+v, want 2 TLS failures", m)
	}
	if m := mx["142.251.9.26"]; m.ConnectFailures != 1 || m.Host != "alt1.gmail-smtp-in.l.google.com" {
		t.Errorf("142.251.9.26 = %+v, want 1 connect failure", m)
	}
	if m := mx["142.250.102.26"]; m.Delivered != 2 || m.TLSFailures+m.ConnectFailures+m.OtherFailures != 0 {
		t.Errorf("142.250.102.26 = %+v, want 2 deliveries", m)
	}
	if len(s.Lines) != 6 {
		t.Errorf("lines = %q, want the 6 failing lines", s.Lines)
	}
	for _, l := range s.Lines {
		for _, local := range []string{"user3@", "user2@", "someone.else", "alias@"} {
			if strings.Contains(l, local) {
				t.Errorf("line keeps a local part: %q", l)
			}
		}
	}
	if !strings.Contains(s.Lines[2], "to=<*@gmail.com>, relay=127.0.0.1[127.0.0.1]:2526") {
		t.Errorf("line 3 = %q", s.Lines[2])
	}
}

func TestAggregateWindowAndLimits(t *testing.T) {
	// A window of 5 minutes ending at 19:52 holds the deliveries at 19:50
	// and 19:51 only: no failed attempt, no queue ID.
	c := utc
	c.Now = time.Date(2026, 12, 4, 19, 52, 0, 0, time.UTC)
	s := sum(t, issueLog, c, 5*time.Minute)
	if len(s.Queue) != 0 || len(s.Lines) != 0 || s.Recognised != 2 {
		t.Errorf("5-minute window: queue %+v lines %q recognised %d", s.Queue, s.Lines, s.Recognised)
	}
	// Limits: one queue ID, one line.
	a := NewAggregator(utc.Now.Add(-time.Hour), utc.Now, utc, Limits{QueueIDs: 1, Lines: 1, Attempts: 1})
	for l := range strings.Lines(issueLog) {
		a.AddLine(strings.TrimSpace(l))
	}
	s = a.Summary()
	if len(s.Queue) != 1 || s.DroppedQueueIDs != 2 || len(s.Lines) != 1 || s.DroppedLines != 5 {
		t.Errorf("limits: queue %d dropped %d, lines %q dropped %d", len(s.Queue), s.DroppedQueueIDs, s.Lines, s.DroppedLines)
	}
	if !strings.Contains(s.Lines[0], "connect to alt1") {
		t.Errorf("the newest failing line is kept: %q", s.Lines)
	}
}

func TestExim(t *testing.T) {
	b, err := os.ReadFile("testdata/exim-main.log")
	if err != nil {
		t.Fatal(err)
	}
	s := sum(t, string(b), utc, time.Hour)
	byID := map[string]Queued{}
	for _, q := range s.Queue {
		byID[q.QueueID] = q
	}
	if len(s.Queue) != 5 {
		t.Fatalf("queue = %+v, want 5 IDs", s.Queue)
	}
	q := byID["1tJxQa-000Abc-5D"]
	if len(q.Attempts) != 1 || !q.Delivered || q.DeliveredVia != "alt1.gmail-smtp-in.l.google.com[142.251.9.26]" {
		t.Errorf("1tJxQa = %+v", q)
	}
	if at := q.Attempts[0]; at.MXIP != "142.250.102.26" || at.Reason != "a TLS session is required, but an attempt to start TLS failed" ||
		len(at.Errors) != 1 || !strings.Contains(at.Errors[0], "unexpected eof") || at.Domain != "gmail.com" {
		t.Errorf("attempt = %+v", at)
	}
	r := byID["1tJxRb-000Xyz-Ab"]
	if len(r.Attempts) != 1 || len(r.Attempts[0].Errors) != 2 || r.Attempts[0].Reason != "Connection timed out" || r.Delivered {
		t.Errorf("1tJxRb = %+v", r)
	}
	if b := byID["1tJxSc-000Qrs-Cd"]; len(b.Attempts) != 1 || b.Attempts[0].Status != "bounced" || !strings.HasPrefix(b.Attempts[0].Reason, "SMTP error from remote mail server") {
		t.Errorf("bounce = %+v", b)
	}
	if w := byID["1tJxTe-000Wxy-Gh"]; len(w.Domains) != 1 || w.Domains[0] != "workspace-customer.test" || w.Attempts[0].MXIP != "" {
		t.Errorf("retry-time = %+v", w)
	}
	f := byID["1tJxUf-00000000042-AbCd"]
	if len(f.Attempts) != 1 || f.Attempts[0].MXIP != "142.251.9.26" || len(f.Attempts[0].Errors) != 1 {
		t.Errorf("long ID with pid and ms = %+v", f)
	}
	mx := map[string]MXCount{}
	for _, m := range s.MX {
		mx[m.IP] = m
	}
	if m := mx["142.250.102.26"]; m.TLSFailures != 1 || m.OtherFailures != 1 || m.Delivered != 1 {
		t.Errorf("142.250.102.26 = %+v", m)
	}
	if m := mx["142.251.9.26"]; m.TLSFailures != 1 || m.Delivered != 1 {
		t.Errorf("142.251.9.26 = %+v", m)
	}
	if m := mx["142.250.150.27"]; m.ConnectFailures != 1 {
		t.Errorf("142.250.150.27 = %+v", m)
	}
	if m := mx["2607:f8b0:4023:c0b::1a"]; m.ConnectFailures != 1 || m.Host != "gmail-smtp-in.l.google.com" {
		t.Errorf("IPv6 = %+v", m)
	}
	for _, l := range s.Lines {
		if strings.Contains(l, "alice@") || strings.Contains(l, "bob@") || strings.Contains(l, "frank@") {
			t.Errorf("line keeps a local part: %q", l)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"to=<user3@gmail.com>, orig_to=<a.b+c@x.test>": "to=<*@gmail.com>, orig_to=<*@x.test>",
		"== alice@gmail.com R=dnslookup":               "== *@gmail.com R=dnslookup",
		"no address @ here":                            "no address @ here",
		"to=<@gmail.com>":                              "to=<@gmail.com>",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// writeLog writes n Postfix lines, one per step, ending at end.
func writeLog(t testing.TB, path string, end time.Time, n int, step time.Duration) {
	t.Helper()
	var b strings.Builder
	for i := range n {
		ts := end.Add(-time.Duration(n-1-i) * step)
		b.WriteString(ts.Format(time.Stamp))
		b.WriteString(" relay-2 postfix/smtp[")
		b.WriteString(strconv.Itoa(1000 + i%500))
		b.WriteString("]: SSL_connect error to gmail-smtp-in.l.google.com[142.250.102.26]:25: Connection reset by peer\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadFileReadsOnlyTheWindow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	// 200,000 lines, one a second: about 2.3 days, 25 MB.
	writeLog(t, path, utc.Now, 200_000, time.Second)
	s, err := Read(context.Background(), path, time.Hour, Options{Clock: utc})
	if err != nil || !s.Available {
		t.Fatalf("Read: %v %+v", err, s.Error)
	}
	if len(s.MX) != 1 || s.MX[0].TLSFailures != 3601 {
		t.Errorf("MX = %+v, want 3601 TLS failures (one a second, both ends)", s.MX)
	}
	fi, _ := os.Stat(path)
	if s.BytesRead > fi.Size()/20 {
		t.Errorf("read %d of %d bytes for one hour of 55: the reader does not start near the end", s.BytesRead, fi.Size())
	}
	// The byte cap: the window is not wholly read, and it says so.
	s, _ = Read(context.Background(), path, 48*time.Hour, Options{Clock: utc, MaxScan: 1 << 20})
	if !s.Truncated || s.BytesRead > 2<<20 || s.FirstTime.Before(utc.Now.Add(-3*time.Hour)) {
		t.Errorf("capped read: truncated %v, %d bytes, first %v", s.Truncated, s.BytesRead, s.FirstTime)
	}
}

func TestReadFileAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	// The older half in mail.log.1, the newer in mail.log: a window over
	// both reads both, older first.
	writeLog(t, path+".1", utc.Now.Add(-30*time.Minute), 1800, time.Second)
	writeLog(t, path, utc.Now, 1799, time.Second)
	s, err := Read(context.Background(), path, time.Hour, Options{Clock: utc})
	if err != nil || len(s.MX) != 1 || s.MX[0].TLSFailures != 3599 {
		t.Fatalf("across rotation: %v %+v", err, s.MX)
	}
	// Rotated again between two requests: the next one reads the new file.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	writeLog(t, path, utc.Now.Add(time.Minute), 10, time.Second)
	c := utc
	c.Now = utc.Now.Add(time.Minute)
	s, _ = Read(context.Background(), path, 10*time.Second, Options{Clock: c})
	if len(s.MX) != 1 || s.MX[0].TLSFailures != 10 {
		t.Errorf("after rotation: %+v", s.MX)
	}
	// Truncated (copytruncate): the shorter file is read from its start.
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, _ = Read(context.Background(), path, 10*time.Second, Options{Clock: c})
	if !s.Available || len(s.MX) != 0 {
		t.Errorf("after truncation: %+v", s)
	}
	s, _ = Read(context.Background(), filepath.Join(dir, "missing.log"), time.Hour, Options{Clock: c})
	if s.Available || !strings.Contains(s.Error, "no such file") {
		t.Errorf("missing file: %+v", s)
	}
}
