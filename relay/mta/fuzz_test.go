package mta

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gmailtls/gmailtls/probe"
)

// addFixtures seeds a fuzz corpus with every captured output of a tool.
func addFixtures(f *testing.F, tool string) {
	paths, _ := filepath.Glob(filepath.Join("..", "testdata", tool, "*.txt"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
}

func checkOutcome(t *testing.T, o Outcome) {
	t.Helper()
	if o.OK {
		if o.Failure != probe.FailNone || o.Stage != "" {
			t.Fatalf("ok with failure %q at %q", o.Failure, o.Stage)
		}
	} else {
		if !slices.Contains(probe.Failures, o.Failure) || o.Failure.IsRelayFailure() {
			t.Fatalf("failure class %q", o.Failure)
		}
		if o.Stage == "" || o.Error == "" {
			t.Fatalf("failure %q without stage or error", o.Failure)
		}
	}
	if o.Transcript == nil || len(o.Transcript) > maxTranscriptLines {
		t.Fatalf("transcript of %d lines", len(o.Transcript))
	}
	for _, l := range o.Transcript {
		if len(l) > maxLineBytes+16 {
			t.Fatalf("transcript line of %d bytes", len(l))
		}
	}
}

func FuzzParseOpenSSL(f *testing.F) {
	addFixtures(f, "openssl")
	f.Fuzz(func(t *testing.T, out []byte, timedOut bool) {
		checkOutcome(t, ParseOpenSSL(out, timedOut))
	})
}

func FuzzParsePosttlsFinger(f *testing.F) {
	addFixtures(f, "posttls-finger")
	f.Fuzz(func(t *testing.T, out []byte, timedOut bool) {
		checkOutcome(t, ParsePosttlsFinger(out, timedOut))
	})
}

func FuzzParsePostqueue(f *testing.F) {
	if b, err := os.ReadFile("../testdata/postqueue/mixed.jsonl"); err == nil {
		f.Add(b)
		for _, line := range bytes.Split(b, []byte("\n")) {
			f.Add(line)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ParsePostqueue(bytes.NewReader(in), queueNow)
		if err != nil {
			t.Fatal(err) // a bytes.Reader never fails
		}
		if s.Deferred < 0 || s.Recipients < s.Deferred || s.Deferred > s.Messages || s.Malformed < 0 || s.OldestAge < 0 {
			t.Fatalf("inconsistent summary %+v", s)
		}
		if (s.TopReason == "") != (len(s.Reasons) == 0) {
			t.Fatalf("top reason %q with %d reasons", s.TopReason, len(s.Reasons))
		}
		checkGroups(t, s)
	})
}

// checkGroups checks the reason groups and domains of a summary against
// its counts.
func checkGroups(t *testing.T, s QueueSummary) {
	t.Helper()
	if len(s.Groups) > MaxReasonGroups || len(s.Groups) > len(s.Reasons) {
		t.Fatalf("%d groups for %d reasons", len(s.Groups), len(s.Reasons))
	}
	for _, g := range s.Groups {
		if g.Recipients != s.Reasons[g.Reason] || g.Messages > s.Deferred || g.Messages > g.Recipients ||
			len(g.IDs) > MaxIDsPerReason || len(g.IDs)+g.MoreIDs != g.Messages {
			t.Fatalf("inconsistent group %+v of %+v", g, s)
		}
		for _, id := range g.IDs {
			if !id.Arrival.IsZero() && id.Arrival.Before(s.OldestArrival) {
				t.Fatalf("message %+v older than the oldest %s", id, s.OldestArrival)
			}
			for _, d := range id.Domains {
				if strings.Contains(d, "@") || s.Domains[d].Recipients == 0 && len(s.Domains) < maxBoundDomains {
					t.Fatalf("domain %q of %+v not among %v", d, id, s.Domains)
				}
			}
		}
	}
	n := 0
	for _, d := range s.Domains {
		n += d.Recipients
	}
	if n > s.Recipients {
		t.Fatalf("domains count %d recipients of %d", n, s.Recipients)
	}
}

func FuzzNormalizeReason(f *testing.F) {
	f.Add("SSL_connect error to alt1.gmail-smtp-in.l.google.com[64.233.184.26]:25: lost connection")
	f.Add("host x[IPv6:2001:db8::1] said: 421 a640c23a62f3a-a9a0d3d6e2fsi12345566b.123 - gsmtp")
	f.Add("queued as 3F1A2B4C5D and 4LxXwb1Pm6z9sG4")
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeReason(s)
		if len(n) > maxReasonBytes {
			t.Fatalf("%d bytes", len(n))
		}
		if utf8.ValidString(s) && !utf8.ValidString(n) {
			t.Fatalf("invalid UTF-8 from valid input: %q", n)
		}
		if strings.Contains(n, "  ") {
			t.Fatalf("double space in %q", n)
		}
	})
}

func FuzzParseSettings(f *testing.F) {
	f.Add([]byte("smtp_tls_security_level = encrypt\nsmtp_tls_policy_maps = texthash:/etc/postfix/tls_policy, socketmap:inet:127.0.0.1:8461:postfix\npostconf: warning: unknown parameter\n"))
	f.Add([]byte("tls_require_ciphers = SECURE192\nno_tls_tempfail_tryclear\n= x\n a b = c\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m := ParseSettings(in)
		for k, v := range m {
			if k == "" || strings.ContainsAny(k, " \t:") || len(v) > 1000+len("…") {
				t.Fatalf("setting %q = %q", k, v)
			}
		}
		for _, table := range SplitMaps(string(in)) {
			if table == "" || strings.ContainsAny(table, ", \t\n") {
				t.Fatalf("table %q", table)
			}
		}
		eff := InterpretTLSPolicy(TLSPolicy{MTA: "postfix", Level: PolicyLevel(string(in))})
		if eff.Text == "" || eff.OnTLSFailure == "" {
			t.Fatalf("no interpretation of %q", in)
		}
	})
}

func FuzzParseCABundle(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, in []byte) {
		b := ParseCABundle(in)
		if b.Certificates < 0 || b.Certificates == 0 && !b.NewestNotBefore.IsZero() {
			t.Fatalf("%+v", b)
		}
	})
}
