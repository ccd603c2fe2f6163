package commands

import (
	"strings"
	"testing"
)

// TestParseMXArgument: --mx takes host[:port] as a pinned target list
// writes it (a host name, an IP address, [IPv6], each optionally with a
// port); the host's trailing dot is dropped and the port written without
// leading zeros, so that the command's String parses back to itself.
// Anything else is a syntax error that says what is wrong.
func TestParseMXArgument(t *testing.T) {
	good := map[string]string{
		"gmail-smtp-in.l.google.com":       "gmail-smtp-in.l.google.com",
		"ALT1.Gmail-SMTP-in.l.google.com.": "alt1.gmail-smtp-in.l.google.com",
		"mx.test.example:2525":             "mx.test.example:2525",
		"mx.test.example.:2525":            "mx.test.example:2525",
		"127.0.0.1":                        "127.0.0.1",
		"127.0.0.1:025":                    "127.0.0.1:25",
		"2001:DB8::1":                      "2001:db8::1",
		"[2001:db8::1]":                    "[2001:db8::1]",
		"[2001:db8::1]:2525":               "[2001:db8::1]:2525",
		"localhost":                        "localhost",
		"0":                                "0",
	}
	for in, want := range good {
		c, err := Parse("check all --mx " + in)
		if err != nil {
			t.Errorf("--mx %s: %v", in, err)
			continue
		}
		if c.MX != want {
			t.Errorf("--mx %s = %q, want %q", in, c.MX, want)
		}
		if again, err := Parse(c.String()); err != nil || again != c {
			t.Errorf("--mx %s: String %q parses to %+v, %v", in, c.String(), again, err)
		}
	}
	bad := map[string]string{
		".":                         "empty label",
		"..":                        "empty label",
		"a..b":                      "empty label",
		".mx.example":               "empty label",
		"mx.example..":              "empty label",
		":25":                       "empty label",
		"-mx.example":               "begin or end with a hyphen",
		"mx-.example":               "begin or end with a hyphen",
		"mx_1.example":              `"_"`,
		"evil/host":                 `"/"`,
		strings.Repeat("a", 64):     "longer than 63",
		"mx.example:0":              "port must be a number from 1 to 65535",
		"mx.example:65536":          "port must be a number from 1 to 65535",
		"mx.example:+25":            "port must be a number from 1 to 65535",
		"mx.example:":               "port must be a number from 1 to 65535",
		"mx.example:25:26":          "not an IPv6 address",
		"[mx.example]:25":           "in brackets",
		"[2001:db8::1":              "in brackets",
		"[2001:db8::1]25":           "in brackets",
		"[]":                        "in brackets",
		"2001:db8::1:25:x":          "not an IPv6 address",
		strings.Repeat("a.", 130):   "longer than 253",
		"mx.example:99999999999999": "port must be a number from 1 to 65535",
	}
	for in, want := range bad {
		_, err := Parse("check all --mx " + in)
		if err == nil {
			t.Errorf("--mx %s: accepted", in)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "is not a mail exchanger name") || !strings.Contains(msg, want) || !strings.Contains(msg, "host[:port]") {
			t.Errorf("--mx %s: %q, want it to say it is not a mail exchanger name, %q and host[:port]", in, msg, want)
		}
	}
}
