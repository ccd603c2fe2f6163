package commands

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/fakerelay"
	"github.com/gmailtls/gmailtls/internal/postfixlab"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
)

// evidenceLog is a relay's mail log around testBase (12:03 UTC): a Gmail
// message deferred after an SSL_connect error and delivered 10 minutes
// later; a Workspace customer's message deferred, then suspended; a line
// carrying Slack markup.
const evidenceLog = `2026-05-04T11:40:01+00:00 relay-2 postfix/smtp[29416]: SSL_connect error to gmail-smtp-in.l.google.com[142.250.102.26]:25: Connection reset by peer
2026-05-04T11:40:01+00:00 relay-2 postfix/smtp[29416]: 4D8E45103FE: to=<user3@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.102.26]:25, delay=9.4, delays=9.4/0/0/0, dsn=4.7.5, status=deferred (Cannot start TLS: handshake failure)
2026-05-04T11:41:00+00:00 relay-2 postfix/smtp[29420]: SSL_connect error to alt1.gmail-smtp-in.l.google.com[142.250.153.27]:25: Connection reset by peer
2026-05-04T11:41:00+00:00 relay-2 postfix/smtp[29420]: 467615103FA: to=<user2@workspace-customer.test>, relay=alt1.gmail-smtp-in.l.google.com[142.250.153.27]:25, delay=9.5, delays=9.5/0/0/0, dsn=4.7.5, status=deferred (Cannot start TLS: handshake failure <!channel>)
2026-05-04T11:50:00+00:00 relay-2 postfix/smtp[29600]: 4D8E45103FE: to=<user3@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.102.26]:25, delay=600, delays=590/0/0.2/0.3, dsn=2.0.0, status=sent (250 2.0.0 OK  1733341800 - gsmtp)
2026-05-04T11:55:00+00:00 relay-2 postfix/error[29462]: 467615103FA: to=<user2@workspace-customer.test>, relay=none, delay=900, delays=900/0/0/0, dsn=4.7.5, status=deferred (delivery temporarily suspended: Cannot start TLS: handshake failure)
`

// logRelay is a fake relay's probes with a real agent's mail log: the
// log section alone is what the golden file pins, without the host's
// own addresses and versions.
type logRelay struct {
	*fakerelay.Runner
	relay.LogReader
}

// logAgent serves the agent protocol on loopback with mailLog as its
// [agent] mail_log (none when empty); hide404 makes it an agent older
// than GET /v1/log.
func logAgent(t *testing.T, now func() time.Time, mailLog string, hide404 bool) *relay.Agent {
	t.Helper()
	h := relay.NewServer(relay.ServerConfig{Base: probe.Config{Relay: "relay-2"}, Secrets: [][]byte{[]byte(agentSecret)}, MailLog: mailLog, Now: now})
	if hide404 {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == relay.PathLog {
				http.NotFound(w, r)
				return
			}
			inner.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return relay.NewAgent("relay-2", srv.URL, []byte(agentSecret), srv.Client(), 10*time.Second, now)
}

const agentSecret = "relay-2-shared-secret-for-the-evidence-tests"

// TestEvidenceMailLogGolden: evidence of relay-2 shows what its own mail
// log says, read through a real agent: the counts per MX address, the last
// failing lines verbatim, every queue ID with its retries and whether it
// was later delivered, and the window to search the firewall logs for;
// --json carries the same.
func TestEvidenceMailLogGolden(t *testing.T) {
	e := newTestEnv(t)
	path := filepath.Join(t.TempDir(), "mail.log")
	if err := os.WriteFile(path, []byte(evidenceLog), 0o644); err != nil {
		t.Fatal(err)
	}
	e.relays = map[string]relay.Runner{"relay-2": logRelay{e.runners["relay-2"], logAgent(t, e.clock.Now, path, false)}}
	e.restart()
	ctx := context.Background()
	e.runners["relay-2"].Set("tls_reset")
	e.h.Do(ctx, slash("check relay-2"))
	e.clock.Advance(2 * time.Minute)
	resp := e.h.Do(ctx, slash("evidence relay-2"))
	checkGolden(t, "evidence_log.txt", strings.ReplaceAll(renderString(t, resp), path, "/var/log/mail.log"))
	text := flatten(resp)
	for _, want := range []string{
		"4D8E45103FE (gmail.com): 1 failed attempt; later delivered at 2026-05-04T11:50:00.000+00:00 (UTC)",
		"467615103FA (workspace-customer.test): 2 failed attempts; not delivered in the window",
		"SSL_connect error to gmail-smtp-in.l.google.com[142.250.102.26]:25: Connection reset by peer",
		"to=<*@gmail.com>", "handshake failure <!channel>",
		"2026-05-04 11:39:01 to 2026-05-04 12:04:00 (UTC)", "to 127.0.0.1, 127.0.0.2, 142.250.102.26, 142.250.153.27",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("evidence lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "user3") {
		t.Errorf("evidence shows a recipient's local part:\n%s", text)
	}

	// --json: the log beside the results.
	cmd, err := Parse("evidence relay-2")
	if err != nil {
		t.Fatal(err)
	}
	reply, err := e.h.Exec(ctx, message.Request{Source: message.SourceCLI, UserID: "cli"}, cmd)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(reply.Data)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Log struct {
			Available bool     `json:"available"`
			Source    string   `json:"source"`
			Lines     []string `json:"lines"`
			Queue     []struct {
				QueueID  string `json:"queue_id"`
				Attempts []struct {
					Time   time.Time `json:"time"`
					MXHost string    `json:"mx_host"`
					MXIP   string    `json:"mx_ip"`
					Reason string    `json:"reason"`
				} `json:"attempts"`
				Delivered bool `json:"delivered"`
			} `json:"queue"`
			MX       []struct{ IP string } `json:"mx"`
			Firewall struct {
				From  time.Time `json:"from"`
				To    time.Time `json:"to"`
				MXIPs []string  `json:"mx_ips"`
			} `json:"firewall"`
		} `json:"log"`
		Results []json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	l := got.Log
	if !l.Available || l.Source != path || len(l.Lines) != 5 || len(l.Queue) != 2 || len(l.MX) != 2 || len(got.Results) == 0 {
		t.Fatalf("--json log = %s", data)
	}
	byID := map[string]bool{}
	for _, q := range l.Queue {
		byID[q.QueueID] = q.Delivered
		if len(q.Attempts) == 0 || q.Attempts[0].Time.IsZero() || q.Attempts[0].MXIP == "" || q.Attempts[0].Reason == "" {
			t.Errorf("queue ID %s attempts = %+v", q.QueueID, q.Attempts)
		}
	}
	if !byID["4D8E45103FE"] || byID["467615103FA"] {
		t.Errorf("delivered per queue ID = %v", byID)
	}
	if !l.Firewall.From.Equal(time.Date(2026, 5, 4, 11, 40, 1, 0, time.UTC)) || !l.Firewall.To.Equal(testBase) {
		t.Errorf("firewall window = %v to %v", l.Firewall.From, l.Firewall.To)
	}
}

// TestEvidenceWithoutMailLog: a relay without [agent] mail_log, and an
// agent older than GET /v1/log (404), each give one line in evidence,
// never an error.
func TestEvidenceWithoutMailLog(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hide404 bool
		want    string
	}{
		{"no mail_log", false, "Not available: no mail log configured on this relay: set [agent] mail_log"},
		{"older agent", true, "Not available: the agent of relay-2 predates the mail log (GET /v1/log answered 404)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.relays = map[string]relay.Runner{"relay-2": logRelay{e.runners["relay-2"], logAgent(t, e.clock.Now, "", tc.hide404)}}
			e.restart()
			ctx := context.Background()
			e.runners["relay-2"].Set("tls_reset")
			e.h.Do(ctx, slash("check relay-2"))
			r := e.h.Do(ctx, slash("evidence relay-2"))
			text := renderString(t, r)
			if r.Verdict != message.VerdictInfo || !strings.Contains(text, "Relay mail log\n  "+tc.want) {
				t.Errorf("evidence:\n%s", text)
			}
			if strings.Count(text, "Not available") != 1 {
				t.Errorf("want one line about the mail log:\n%s", text)
			}
		})
	}
}

// flatten is a response's lines and fields, unwrapped, one per line.
func flatten(r message.Response) string {
	var b strings.Builder
	for _, s := range r.Sections {
		b.WriteString(s.Heading + "\n")
		for _, f := range s.Fields {
			b.WriteString(f.Label + ": " + f.Value + "\n")
		}
		for _, l := range s.Lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestEvidenceRealPostfixRelay: relay-2 is a real agent in front of a real
// Postfix relay (internal/postfixlab) whose lab MX resets every TLS
// handshake: the agent's probe fails for real, and evidence shows Postfix's
// own SSL_connect and deferred lines, every deferred queue ID (the
// Workspace customer's too) with its retry, none delivered, and the
// firewall window.
func TestEvidenceRealPostfixRelay(t *testing.T) {
	r := postfixlab.StartRelay(t, postfixlab.RelayOptions{})
	e := newTestEnv(t)
	e.clock.Set(time.Now())
	target, err := probe.ParseTarget(r.MX.Addr())
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.Target.MX = []string{r.MX.Addr()}
	srv := httptest.NewServer(relay.NewServer(relay.ServerConfig{
		Base:    probe.Config{Relay: "relay-2", MX: []probe.Target{target}, Timeout: 5 * time.Second},
		Secrets: [][]byte{[]byte(agentSecret)}, MailLog: r.LogPath(), MailConfig: r.ConfigDir(),
		Commands: &relay.ExecRunner{Getenv: func(k string) string {
			if k == "MAIL_CONFIG" {
				return r.ConfigDir()
			}
			return os.Getenv(k)
		}},
	}))
	t.Cleanup(srv.Close)
	e.relays = map[string]relay.Runner{"relay-2": relay.NewAgent("relay-2", srv.URL, []byte(agentSecret), srv.Client(), 30*time.Second, time.Now)}
	e.restart()
	ctx := context.Background()
	if out := renderString(t, e.h.Do(ctx, slash("check relay-2"))); !strings.Contains(out, "tls_reset") {
		t.Fatalf("check relay-2 against the resetting lab MX:\n%s", out)
	}
	resp := e.h.Do(ctx, slash("evidence relay-2"))
	text := flatten(resp)
	for _, want := range []string{postfixlab.LogSSLConnectReset, postfixlab.LogDeferredTLS, "Queue IDs and their retries",
		"(workspace-customer.test): 1 failed attempt; not delivered in the window", "(gmail.com): 1 failed attempt; not delivered",
		"Firewall and proxy logs", "TCP port 25",
		"Relay's TLS policy toward gmail.com", "Security level: encrypt (smtp_tls_security_level)",
		"Transport: smtp:[127.0.0.1]:" + strconv.Itoa(r.MX.Port()) + " (transport_maps)",
		"On a TLS failure: TLS is mandatory toward Gmail (security level encrypt): Postfix never sends this mail without TLS"} {
		if !strings.Contains(text, want) {
			t.Errorf("evidence lacks %q:\n%s", want, renderString(t, resp))
		}
	}
	if strings.Contains(text, "user1@") || strings.Contains(text, "Not available") {
		t.Errorf("evidence:\n%s", renderString(t, resp))
	}
}
