package probe

import (
	"fmt"
	"strings"
	"testing"
)

const notSSL = "not the SSL_connect problem"

func TestExplainGmailReply(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		enhanced string
		text     string
		want     []string // the explanation contains each; nil: ok is false
	}{
		{"try again later at the greeting", 421, "4.7.0", "4.7.0 Try again later, closing connection.",
			[]string{"421 4.7.0", "HELO stage", "rate", "SMTP policy answer", notSSL}},
		{"try again later, the code read from the text", 421, "", "4.7.0 Try again later, closing connection. (EHLO) ffa0-00001.1 - gsmtp",
			[]string{"421 4.7.0", "rate", notSSL}},
		{"not on the domain's allowlist", 421, "4.7.0", "4.7.0 IP not in whitelist for RCPT domain, closing connection.",
			[]string{"inbound gateway", "recipient domain's policy"}},
		{"unsolicited mail at 4.7.0", 421, "4.7.0", "4.7.0 [192.0.2.1 15] Our system has detected an unusual rate of unsolicited mail originating from your IP address.",
			[]string{"reputation", "rate"}},
		{"TLS required for the domain", 421, "4.7.0", "4.7.0 TLS required for RCPT domain, closing connection.",
			[]string{"requires mail to it over TLS", notSSL}},
		{"temporary system problem", 421, "4.3.0", "4.3.0 Temporary System Problem.  Try again later",
			[]string{"Google's mail system", "an SMTP answer from Google", notSSL}},
		{"server busy", 421, "4.4.5", "4.4.5 Server busy, try again later.", []string{"busy"}},
		{"rate limited for spam", 421, "4.7.28", "4.7.28 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail",
			[]string{"421 4.7.28", "unsolicited", "reputation and sending rate", notSSL}},
		{"unauthenticated, temporary", 421, "4.7.26", "4.7.26 This mail has been rate limited because it is unauthenticated.", []string{"SPF or DKIM"}},
		{"unauthenticated, DMARC", 550, "5.7.26", "5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy.", []string{"550 5.7.26", "DMARC"}},
		{"SPF", 550, "5.7.27", "5.7.27 ...", []string{"SPF"}},
		{"not over TLS", 421, "4.7.29", "4.7.29 Your email has been rate limited because this message wasn't sent over a TLS connection.",
			[]string{"STARTTLS", notSSL}},
		{"DKIM", 421, "4.7.30", "4.7.30 ...", []string{"DKIM"}},
		{"alignment", 550, "5.7.32", "5.7.32 ...", []string{"alignment"}},
		{"PTR mismatch", 421, "4.7.23", "4.7.23 The sending IP does not match the IP address of the hostname specified in the pointer (PTR) record.", []string{"PTR"}},
		{"no PTR", 550, "5.7.25", "5.7.25 The IP address sending this message does not have a PTR record setup", []string{"PTR"}},
		{"cannot authenticate", 454, "4.7.0", "4.7.0 Cannot authenticate due to temporary system problem. Try again later.", []string{"SMTP AUTH", "temporary"}},
		{"blocked for unsolicited mail", 550, "5.7.1", "5.7.1 Our system has detected an unusual rate of unsolicited mail originating from your IP address.", []string{"blocks this IP", "reputation"}},
		{"not authorized to send directly", 550, "5.7.1", "5.7.1 The IP you're using to send mail is not authorized to send email directly to our servers.", []string{"provider's relay"}},
		{"another 5.7.1", 550, "5.7.1", "5.7.1 Client host rejected", []string{"550 5.7.1", "by policy"}},
		{"an undocumented 4.7.x", 451, "4.7.99", "4.7.99 something new", []string{"451 4.7.99", "temporary policy refusal"}},
		{"an undocumented 5.7.x", 554, "5.7.99", "5.7.99 something new", []string{"permanent policy refusal"}},
		{"a 4.7.0 of another reply code", 450, "4.7.0", "4.7.0 Try again later", []string{"450 4.7.0", "temporary policy refusal"}},
		{"no enhanced code", 421, "", "Service not available", nil},
		{"a syntax error", 501, "5.5.2", "5.5.2 Syntax error", nil},
		{"a success", 250, "2.0.0", "2.0.0 OK", nil},
		{"an enhanced code of the wrong class", 421, "5.7.1", "5.7.1 mismatched", nil},
		{"the wrong class given, the right one in the text", 421, "5.7.1", "4.7.28 rate limited", []string{"421 4.7.28"}},
		{"an enhanced code with a leading zero", 421, "4.07.0", "4.07.0 Try again later", nil},
	}
	for _, tc := range tests {
		got, ok := ExplainGmailReply(tc.code, tc.enhanced, tc.text)
		if ok != (tc.want != nil) || ok == (got == "") {
			t.Errorf("%s: ok %v, explanation %q; want ok %v", tc.name, ok, got, tc.want != nil)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", tc.name, got, w)
			}
		}
	}
}

// TestGmailRepliesTable checks every row of the table: a documented class
// (4 or 5) and a valid code or family, a meaning, and a reply code of the
// same class when one is given.
func TestGmailRepliesTable(t *testing.T) {
	for _, r := range gmailReplies() {
		enh := r.enhanced
		if strings.HasSuffix(enh, ".") {
			enh += "0"
		}
		class, _, _, ok := parseEnhanced(enh)
		if !ok || class < 4 || r.meaning == "" || (r.code != 0 && r.code/100 != class) || r.phrase != strings.ToLower(r.phrase) {
			t.Errorf("bad row %+v", r)
		}
		if strings.Contains(strings.ToLower(r.meaning), "ssl_connect") {
			t.Errorf("row %s: the meaning repeats what the explanation adds", r.enhanced)
		}
	}
}

func TestParseEnhanced(t *testing.T) {
	good := map[string][3]int{"2.0.0": {2, 0, 0}, "4.7.28": {4, 7, 28}, "5.7.1": {5, 7, 1}, "5.999.999": {5, 999, 999}, "4.10.0": {4, 10, 0}}
	for s, want := range good {
		c, sub, det, ok := parseEnhanced(s)
		if !ok || [3]int{c, sub, det} != want {
			t.Errorf("parseEnhanced(%q) = %d %d %d %v, want %v", s, c, sub, det, ok, want)
		}
	}
	for _, s := range []string{"", "4.7", "4.7.0.1", "3.7.0", "44.7.0", "4.07.0", "4.7.00", "4.1000.0", "4.7.", ".7.0", "4.x.0", "4.7.-1", "４.7.0", "4.7.0 "} {
		if _, _, _, ok := parseEnhanced(s); ok {
			t.Errorf("parseEnhanced(%q) accepted", s)
		}
	}
}

func TestFromGoogle(t *testing.T) {
	tests := []struct {
		mx         string
		transcript []string
		want       bool
	}{
		{"gmail-smtp-in.l.google.com", nil, true},
		{"ALT1.ASPMX.L.GOOGLE.COM.", nil, true},
		{"google.com", nil, true},
		{"mx.notgoogle.com", nil, false},
		{"google.com.evil.example", nil, false},
		{"127.0.0.1", []string{"* connected", "S: 220 mx.google.com ESMTP ffa0-00001.1 - gsmtp"}, true},
		{"127.0.0.1", []string{"S: 421 4.7.0 Try again later, closing connection. (EHLO) x - gsmtp"}, true},
		{"127.0.0.1", []string{"S: 421 4.7.0 Try again later, closing connection."}, false},
		{"127.0.0.1", []string{"C: EHLO mx.google.com", "* note about mx.google.com"}, false},
	}
	for _, tc := range tests {
		if got := fromGoogle(tc.mx, tc.transcript); got != tc.want {
			t.Errorf("fromGoogle(%q, %q) = %v, want %v", tc.mx, tc.transcript, got, tc.want)
		}
	}
}

// FuzzParseEnhanced: a code parseEnhanced accepts prints back to itself,
// and the reply reader finds the same code at the start of a reply's text.
func FuzzParseEnhanced(f *testing.F) {
	for _, s := range []string{"4.7.0", "4.7.28", "5.7.26", "2.0.0", "4.07.0", "5.7.", "x.y.z", "9.9.9", "4.7.1000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		class, subject, detail, ok := parseEnhanced(s)
		if !ok {
			if class != 0 || subject != 0 || detail != 0 {
				t.Fatalf("rejected %q with values %d %d %d", s, class, subject, detail)
			}
			return
		}
		if back := fmt.Sprintf("%d.%d.%d", class, subject, detail); back != s {
			t.Fatalf("parseEnhanced(%q) prints back as %q", s, back)
		}
		if class != 2 && class != 4 && class != 5 || subject > 999 || detail > 999 {
			t.Fatalf("parseEnhanced(%q) = %d.%d.%d out of range", s, class, subject, detail)
		}
		if got := enhancedCode(class*100+21, s+" text"); got != s {
			t.Fatalf("the reply reader reads %q at the start of %q, parseEnhanced %q", got, s+" text", s)
		}
	})
}

// FuzzExplainGmailReply: any reply code, enhanced code and text give
// either nothing or an explanation that names the reply code and a valid
// enhanced code of its class and says it is not the SSL_connect problem.
func FuzzExplainGmailReply(f *testing.F) {
	f.Add(421, "4.7.0", "4.7.0 Try again later, closing connection.")
	f.Add(421, "", "4.7.28 [192.0.2.1] unusual rate of unsolicited mail - gsmtp")
	f.Add(550, "5.7.1", "5.7.1 not authorized to send email directly")
	f.Add(421, "5.7.1", "4.7.0 mismatched")
	f.Add(250, "2.0.0", "2.0.0 OK")
	f.Add(599, "5.99.999", "")
	f.Fuzz(func(t *testing.T, code int, enhanced, text string) {
		got, ok := ExplainGmailReply(code, enhanced, text)
		if !ok {
			if got != "" {
				t.Fatalf("not ok but explained: %q", got)
			}
			return
		}
		if code < 400 || code > 599 {
			t.Fatalf("explained reply code %d", code)
		}
		prefix := fmt.Sprintf("Google's reply %d ", code)
		rest, found := strings.CutPrefix(got, prefix)
		if !found || !strings.HasSuffix(got, notSSL) {
			t.Fatalf("explanation %q: want %q first and %q last", got, prefix, notSSL)
		}
		enh, _, _ := strings.Cut(rest, ":")
		if c, _, _, valid := parseEnhanced(enh); !valid || c != code/100 {
			t.Fatalf("explanation %q names enhanced code %q, not valid for %d", got, enh, code)
		}
		if enh != enhanced && !strings.HasPrefix(strings.TrimSpace(text), enh) {
			t.Fatalf("explanation %q names %q, found neither as given (%q) nor in the text %q", got, enh, enhanced, text)
		}
	})
}
