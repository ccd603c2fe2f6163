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
	})
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
