package main

import (
	"flag"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/internal/golden"
	"github.com/gmailtls/gmailtls/internal/smtptest"
)

var updateConsole = flag.Bool("update-console", false, "rewrite cmd/gmailtls/testdata/console_*.txt")

// consoleMasks replace what changes from run to run: times, durations,
// the server's port, the temp folder and the negotiated cipher.
var consoleMasks = []struct {
	re   *regexp.Regexp
	with string
}{
	// The trend legend names the window's start, whose width (a date
	// appears once the window crosses midnight) moves the line wrap.
	{regexp.MustCompile(`(?s)Trend: one character per hour since .*?· no probes\.`), "Trend: <LEGEND>"},
	{regexp.MustCompile(`\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2})?( \(?[A-Z]{2,5}\)?)?`), "<TIME>"},
	{regexp.MustCompile(`\b([A-Z][a-z]{2} \d{1,2} )?\d{2}:\d{2}\b`), "<HH:MM>"},
	{regexp.MustCompile(`[·▁▂▃▄▅▆▇█]{8,}`), "<TREND>"},
	{regexp.MustCompile(`\d+(\.\d+)? ms\b`), "<N> ms"},
	{regexp.MustCompile(`(dns|connect|banner|ehlo|starttls|handshake|post_tls|total) \d+(\.\d+)?`), "$1 <N>"},
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:<PORT>"},
	{regexp.MustCompile(`TLS_[A-Z0-9_]+`), "<CIPHER>"},
	// The relay's host facts (name, addresses, MTA, TLS library) belong to
	// the machine the test runs on.
	{regexp.MustCompile(`(?m)^  (Host|Outbound IPs|MTA|TLS library|gmailtls|Clock skew|Host info): .*\n`), ""},
	{regexp.MustCompile(`(?m)^  Relay: +`), "  Relay: "},
}

func maskConsole(s string) string {
	for _, m := range consoleMasks {
		s = m.re.ReplaceAllString(s, m.with)
	}
	return sortProgress(s)
}

// sortProgress sorts each run of a check's progress lines ("relay-2
// 127.0.0.1  ok …"), which arrive in the order the relays answer.
func sortProgress(s string) string {
	lines := strings.Split(s, "\n")
	isProgress := regexp.MustCompile(`^relay-\d+  `).MatchString
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && isProgress(lines[j]) {
			j++
		}
		if j > i {
			slices.Sort(lines[i:j])
			i = j
			continue
		}
		i++
	}
	return strings.Join(lines, "\n")
}

func consoleGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), []byte(got), *updateConsole, "-update-console")
}

// TestConsoleSession types a session into the console against a real
// STARTTLS server on loopback and compares the masked output with a golden
// file: help, a passing check, a failing check, its transcript and evidence
// buttons pressed by number, a re-run, status and the report.
func TestConsoleSession(t *testing.T) {
	cfgPath, srv := svcTestSetup(t)
	out := svcTestConsole(t, cfgPath, "help", "check relay-1", "4")
	srv.SetBehavior(smtptest.ResetAfterReady)
	out += svcTestConsole(t, cfgPath, "check relay-2", "2", "3", "history relay-2")
	srv.SetBehavior(smtptest.Gmail)
	out += svcTestConsole(t, cfgPath, "check relay-2", "status", "report", "nonsense", "quit", "status")
	consoleGolden(t, "console_session.txt", maskConsole(out))
	// Piped input: no prompt, and plain text, without chat markup.
	for _, bad := range []string{consolePrompt, "(only you)", "`"} {
		if strings.Contains(out, bad) {
			t.Errorf("the piped session shows %q:\n%s", bad, out)
		}
	}
	// The input after quit is not read: one status answer, not two.
	if n := strings.Count(out, "] gmailtls status:"); n != 1 {
		t.Errorf("%d status answers, want 1 (the input after quit is not read):\n%s", n, out)
	}
}

// TestConsoleCannotTargetUnconfiguredHost: no command aims the bot at a
// host or port outside the configured target, and nothing is dialled.
func TestConsoleCannotTargetUnconfiguredHost(t *testing.T) {
	cfgPath, srv := svcTestSetup(t)
	other := smtptest.StartT(t, smtptest.Options{Behavior: smtptest.Gmail})
	out := svcTestConsole(t, cfgPath,
		"check relay-1 --mx "+other.Addr(),
		"check relay-1 --mx 127.0.0.1:25",
		"check relay-1 --mx gmail-smtp-in.l.google.com",
		"check all --mx example.org",
		"check relay-1 --port 2525",
	)
	if n := strings.Count(out, "is not one of the pinned MX hosts"); n != 4 {
		t.Errorf("%d refusals naming the pinned hosts, want 4:\n%s", n, out)
	}
	if !strings.Contains(out, `unknown option "--port"`) {
		t.Errorf("--port accepted:\n%s", out)
	}
	if srv.Connections() != 0 || other.Connections() != 0 {
		t.Fatalf("connections: configured %d, other %d", srv.Connections(), other.Connections())
	}
	// The configured one, by host or host:port, is probed.
	out = svcTestConsole(t, cfgPath, "check relay-1 --mx "+srv.Addr(), "check relay-1 --mx 127.0.0.1")
	if strings.Count(out, "relay-1: STARTTLS to Gmail passed") != 2 {
		t.Fatalf("configured --mx:\n%s", out)
	}
	if other.Connections() != 0 {
		t.Fatal("the unconfigured server was dialled")
	}
}

func TestConsoleEchoPipe(t *testing.T) {
	cfgPath, _ := svcTestSetup(t)
	code, out, errOut := svcTestRun(t, "status", "console", "--config", cfgPath)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// Piped input: the answer and nothing else, no prompt left behind.
	if !strings.HasPrefix(out, "[ok] gmailtls status: all 3 relays ok\n") || !regexp.MustCompile(`\nas of [^\n]+\n\n$`).MatchString(out) || strings.Contains(out, "gmailtls>") {
		t.Fatalf("output:\n%s", out)
	}
	if !strings.Contains(errOut, "Type help, or quit to leave.") {
		t.Fatalf("stderr: %s", errOut)
	}
}
