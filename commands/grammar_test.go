package commands

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gmailtls/gmailtls/message"
)

func TestParse(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		in   string
		want Command
	}{
		{"", Command{Verb: VerbHelp}},
		{"   ", Command{Verb: VerbHelp}},
		{"help", Command{Verb: VerbHelp}},
		{"help check", Command{Verb: VerbHelp, Topic: VerbCheck}},
		{"HELP Pause", Command{Verb: VerbHelp, Topic: VerbPause}},
		{"check relay-2", Command{Verb: VerbCheck, Relay: "relay-2"}},
		{"Check Relay-2", Command{Verb: VerbCheck, Relay: "relay-2"}},
		{"check all", Command{Verb: VerbCheck, Relay: "all"}},
		{"check relay-2 --mx alt1.gmail-smtp-in.l.google.com", Command{Verb: VerbCheck, Relay: "relay-2", MX: "alt1.gmail-smtp-in.l.google.com"}},
		{"check --mx=ALT1.gmail-smtp-in.l.google.com. relay-2", Command{Verb: VerbCheck, Relay: "relay-2", MX: "alt1.gmail-smtp-in.l.google.com"}},
		{"check all --mx 127.0.0.1:2525", Command{Verb: VerbCheck, Relay: "all", MX: "127.0.0.1:2525"}},
		{"/gmailtls check r1", Command{Verb: VerbCheck, Relay: "r1"}},
		{"status", Command{Verb: VerbStatus}},
		{"relays", Command{Verb: VerbRelays}},
		{"report", Command{Verb: VerbReport, Window: day}},
		{"report 7d", Command{Verb: VerbReport, Window: 7 * day}},
		{"history relay-1", Command{Verb: VerbHistory, Relay: "relay-1", Window: day}},
		{"history relay-1 7d", Command{Verb: VerbHistory, Relay: "relay-1", Window: 7 * day}},
		{"history relay-1 1d12h", Command{Verb: VerbHistory, Relay: "relay-1", Window: 36 * time.Hour}},
		{"history relay-1 90m", Command{Verb: VerbHistory, Relay: "relay-1", Window: 90 * time.Minute}},
		{"evidence relay-1", Command{Verb: VerbEvidence, Relay: "relay-1"}},
		{"pause relay-1", Command{Verb: VerbPause, Relay: "relay-1", Duration: time.Hour}},
		{"pause relay-1 2d", Command{Verb: VerbPause, Relay: "relay-1", Duration: 2 * day}},
		{"resume relay-1", Command{Verb: VerbResume, Relay: "relay-1"}},
		{"check 0", Command{Verb: VerbCheck, Relay: "0"}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		verb Verb
		want []string // substrings of the message
	}{
		{"chek relay-1", "", []string{`unknown command "chek"`, `did you mean "check"`, "check, status, history"}},
		{"frobnicate", "", []string{`unknown command "frobnicate"`, "the commands are check, status, history, relays, evidence, compare, report, help, pause, resume"}},
		{"check", VerbCheck, []string{`check needs a relay name or "all"`, "check <relay|all> [--mx host]", "relays command lists them"}},
		{"check relay-1 relay-2", VerbCheck, []string{`check does not take "relay-2"`, "usage: check <relay|all>"}},
		{"check Relay_1", VerbCheck, []string{`"Relay_1" is not a relay name`, "lower-case letters, digits and dashes"}},
		{"check -relay", VerbCheck, []string{`unknown option "-relay"`}},
		{"check relay-1 --port 26", VerbCheck, []string{`unknown option "--port"`, "only --mx"}},
		{"check relay-1 --mx", VerbCheck, []string{"--mx needs a host"}},
		{"check relay-1 --mx a --mx b", VerbCheck, []string{"--mx may be given once"}},
		{"check relay-1 --mx evil/host", VerbCheck, []string{`"evil/host" is not a mail exchanger name`}},
		{"check " + strings.Repeat("a", 64), VerbCheck, []string{"is not a relay name"}},
		{"status now", VerbStatus, []string{`status does not take "now"`, "usage: status"}},
		{"relays all", VerbRelays, []string{`relays does not take "all"`}},
		{"history", VerbHistory, []string{"history needs a relay name", "history <relay> [24h|7d]"}},
		{"history relay-1 yesterday", VerbHistory, []string{`"yesterday" is not a duration`, "30m, 24h or 7d"}},
		{"history relay-1 0s", VerbHistory, []string{`"0s" is not a duration`}},
		{"history relay-1 -5h", VerbHistory, []string{`"-5h" is not a duration`}},
		{"history relay-1 1000d", VerbHistory, []string{"1000d is too long: at most 400d"}},
		{"history relay-1 24h extra", VerbHistory, []string{`history does not take "extra"`}},
		{"evidence", VerbEvidence, []string{"evidence needs a relay name"}},
		{"evidence a b", VerbEvidence, []string{`evidence does not take "b"`}},
		{"pause relay-1 forever", VerbPause, []string{`"forever" is not a duration`}},
		{"pause relay-1 100d", VerbPause, []string{"too long: at most 90d"}},
		{"resume", VerbResume, []string{"resume needs a relay name"}},
		{"help me", VerbHelp, []string{`there is no command "me" to explain`}},
		{"report soon", VerbReport, []string{`"soon" is not a duration`}},
		{strings.Repeat("x", 5000), "", []string{"5000 bytes long"}},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%.40q): no error", tt.in)
			continue
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%.40q): %v does not wrap ErrSyntax", tt.in, err)
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("Parse(%.40q): %T is not a *ParseError", tt.in, err)
		}
		if pe.Verb != tt.verb {
			t.Errorf("Parse(%.40q): verb %q, want %q", tt.in, pe.Verb, tt.verb)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Parse(%.40q) = %q, want it to contain %q", tt.in, err, w)
			}
		}
	}
}

func TestParseWindowAndFormat(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		text string
	}{
		{"24h", 24 * time.Hour, "24h"},
		{"7d", 7 * 24 * time.Hour, "7d"},
		{"1d12h", 36 * time.Hour, "1d12h"},
		{"48h", 48 * time.Hour, "2d"},
		{"90m", 90 * time.Minute, "1h30m"},
		{"30s", 30 * time.Second, "30s"},
		{"2d30m", 48*time.Hour + 30*time.Minute, "2d30m"},
	} {
		got, err := ParseWindow(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseWindow(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if s := FormatWindow(got); s != tt.text {
			t.Errorf("FormatWindow(%v) = %q, want %q", got, s, tt.text)
		}
	}
	for _, bad := range []string{"", "d", "x", "1x", "-1d", "3h2d", "36500d2562047h"} {
		if d, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) = %v, want an error", bad, d)
		}
	}
}

// FuzzParse feeds arbitrary text to the grammar: it never panics, errors
// are syntax errors with a short readable message, and a parsed command
// written back with String parses to the same command.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "help", "check relay-2", "check all --mx gmail-smtp-in.l.google.com",
		"history relay-1 7d", "pause relay-1 1d12h", "resume r", "report 2h",
		"evidence relay-9", "status", "relays", "chek", "check --mx=x all",
		"history a 36500d", "pause r 90d", "\x00\xff", "check \u00e9",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse(in)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrSyntax", in, err)
			}
			if len(err.Error()) > 600 {
				t.Fatalf("Parse(%q): error message is %d bytes long", in, len(err.Error()))
			}
			return
		}
		if !knownVerb(c.Verb) {
			t.Fatalf("Parse(%q) = unknown verb %q", in, c.Verb)
		}
		if c.Relay != "" && c.Relay != message.AllRelays && !ValidRelayName(c.Relay) {
			t.Fatalf("Parse(%q): invalid relay %q accepted", in, c.Relay)
		}
		if c.Relay == message.AllRelays && c.Verb != VerbCheck && c.Verb != VerbHistory && c.Verb != VerbEvidence && c.Verb != VerbPause && c.Verb != VerbResume {
			t.Fatalf("Parse(%q): relay %q on %s", in, c.Relay, c.Verb)
		}
		if c.Window < 0 || c.Window > MaxWindow || c.Duration < 0 || c.Duration > MaxPause {
			t.Fatalf("Parse(%q): durations out of bounds: %+v", in, c)
		}
		if !utf8.ValidString(c.MX) || strings.ContainsAny(c.MX, " /@") {
			t.Fatalf("Parse(%q): odd --mx %q accepted", in, c.MX)
		}
		again, err := Parse(c.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, but its String %q does not parse: %v", in, c, c.String(), err)
		}
		if again != c {
			t.Fatalf("Parse(%q) = %+v, Parse(String) = %+v", in, c, again)
		}
	})
}
