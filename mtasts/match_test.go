package mtasts

import (
	"strings"
	"testing"
)

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		pattern, host string
		want          bool
	}{
		// RFC 8461 §4.1's own examples.
		{"*.example.com", "mx1.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "a.b.example.com", false},
		// Gmail's patterns.
		{"gmail-smtp-in.l.google.com", "gmail-smtp-in.l.google.com", true},
		{"*.gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com", true},
		{"*.gmail-smtp-in.l.google.com", "gmail-smtp-in.l.google.com", false},
		{"gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com", false},
		// Case and the root dot do not matter.
		{"*.Example.COM", "MX1.example.com.", true},
		{"mx.example.com.", "mx.example.com", true},
		// A wildcard is a whole label, only on the left.
		{"*.example.com", ".example.com", false},
		{"*.example.com", "mx1.example.com.evil.net", false},
		{"*.example.com", "mx1example.com", false},
		{"mx*.example.com", "mx1.example.com", false},
		{"*.*.example.com", "a.b.example.com", false},
		{"*", "example", false},
		{"*.", "a.", false},
		// A plain pattern is not a suffix.
		{"example.com", "mx.example.com", false},
		{"example.com", "badexample.com", false},
		{"", "example.com", false},
		{"example.com", "", false},
	} {
		if got := MatchPattern(tc.pattern, tc.host); got != tc.want {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", tc.pattern, tc.host, got, tc.want)
		}
	}
}

func TestCertCovers(t *testing.T) {
	sans := []string{"mx.google.com", "*.gmail-smtp-in.l.google.com", "192.0.2.1"}
	for host, want := range map[string]bool{
		"mx.google.com":                     true,
		"alt3.gmail-smtp-in.l.google.com":   true,
		"gmail-smtp-in.l.google.com":        false,
		"a.alt3.gmail-smtp-in.l.google.com": false,
		"smtp.google.com":                   false,
	} {
		if got := CertCovers(sans, host); got != want {
			t.Errorf("CertCovers(%v, %q) = %v, want %v", sans, host, got, want)
		}
	}
	if CertCovers(nil, "mx.google.com") {
		t.Error("no SANs covered a host")
	}
}

func TestValidHostname(t *testing.T) {
	for name, want := range map[string]bool{
		"gmail.com": true, "mta-sts.gmail.com": true, "0a.example": true, "localhost": true,
		"": false, "gmail..com": false, ".gmail.com": false, "gmail.com.": false, "-a.com": false,
		"a-.com": false, "a_b.com": false, "*.com": false, "bücher.de": false, "xn--bcher-kva.de": true,
		string(make([]byte, 64)) + ".com": false,
	} {
		if got := validHostname(name); got != want {
			t.Errorf("validHostname(%q) = %v, want %v", name, got, want)
		}
	}
	long := ""
	for len(long) < 251 {
		long += "abcdefghi."
	}
	l63 := strings.Repeat("a", 63) + "."
	if max := l63 + l63 + l63 + strings.Repeat("b", 61); len(max) != 253 || !validHostname(max) {
		t.Errorf("a %d-character name failed", len(max))
	}
	if validHostname(long + "com") {
		t.Errorf("a %d-character name passed", len(long)+3)
	}
}
