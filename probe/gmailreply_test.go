package probe_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/probe"
)

// TestGmailRepliesExplained probes loopback servers that refuse the
// session the way Gmail does. A refusal from a Google MX (its name ends in
// google.com, or its greeting or reply carries mx.google.com or gsmtp)
// gets Google's meaning of the code as a hint after the class hint, with
// the reply code and text kept in smtp_code and smtp_text; a refusal from
// another server does not.
func TestGmailRepliesExplained(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	const gmailMX = "gmail-smtp-in.l.google.com"
	tests := []struct {
		name     string
		behavior smtptest.Behavior
		mx       string
		stage    probe.Stage
		code     int
		text     string // smtp_text starts with this
		hint     string // the Gmail hint contains this; "" for no Gmail hint
	}{
		{"Gmail's 421 4.7.0 greeting, a Google MX name", smtptest.Greet421, gmailMX, probe.StageBanner, 421,
			"4.7.0 Try again later, closing connection.", "Google's reply 421 4.7.0: Google is turning away sessions from this IP"},
		{"the same greeting from a server that is not Google's", smtptest.Greet421, "mx.test.example", probe.StageBanner, 421,
			"4.7.0 Try again later, closing connection.", ""},
		{"a multi-line 421 4.7.28 greeting marked gsmtp", smtptest.GmailRateLimited, "mx.test.example", probe.StageBanner, 421,
			"4.7.28 [127.0.0.1] Our system has detected an unusual rate of unsolicited mail", "Google's reply 421 4.7.28: Google rate-limits this IP"},
		{"EHLO refused after Gmail's greeting", smtptest.EHLO421, "mx.test.example", probe.StageEHLO, 421,
			"4.7.0 Try again later, closing connection. (EHLO)", "Google's reply 421 4.7.0"},
		{"EHLO 550 5.7.1 after Gmail's greeting", smtptest.EHLO550, "mx.test.example", probe.StageEHLO, 550,
			"5.7.1 Client host rejected", "Google's reply 550 5.7.1: Google refuses this IP or message by policy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.StartT(t, smtptest.Options{Behavior: tc.behavior, CA: ca, Hostname: testHost})
			ap := netip.MustParseAddrPort(srv.Addr())
			cfg := pinned(t, ca, srv.Addr())
			r, err := probe.ProbeOne(context.Background(), cfg, probe.Endpoint{MX: tc.mx, IP: ap.Addr(), Port: int(ap.Port())})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if t.Failed() {
					t.Logf("hints: %q\ntranscript:\n%s", r.Hints, strings.Join(r.Transcript, "\n"))
				}
			}()
			if r.OK || r.Stage != tc.stage || r.Failure != probe.FailSMTPRejected || r.SMTPCode != tc.code || !strings.HasPrefix(r.SMTPText, tc.text) {
				t.Fatalf("got stage %q failure %q code %d text %q; want %q smtp_rejected %d %q…", r.Stage, r.Failure, r.SMTPCode, r.SMTPText, tc.stage, tc.code, tc.text)
			}
			if len(r.Hints) == 0 || r.Hints[0] != probe.Hint(probe.FailSMTPRejected) {
				t.Errorf("first hint %q, want the class hint", r.Hints)
			}
			var gmail []string
			for _, h := range r.Hints {
				if strings.HasPrefix(h, "Google's reply ") {
					gmail = append(gmail, h)
				}
			}
			switch {
			case tc.hint == "" && len(gmail) > 0:
				t.Errorf("a server that is not Google's got Gmail hints %q", gmail)
			case tc.hint != "" && (len(gmail) != 1 || !strings.Contains(gmail[0], tc.hint) || !strings.HasSuffix(gmail[0], "not the SSL_connect problem")):
				t.Errorf("Gmail hints %q, want one containing %q that rules out the SSL_connect problem", gmail, tc.hint)
			}
			for _, h := range r.Hints {
				if strings.Contains(h, "TLS stack") || strings.Contains(h, "ClientHello") {
					t.Errorf("a refusal before STARTTLS is explained as a TLS problem: %q", h)
				}
			}
		})
	}
}
