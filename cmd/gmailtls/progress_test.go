package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// lineWriter is a stdout that hands over each complete line as it is
// written.
type lineWriter struct {
	mu    sync.Mutex
	all   strings.Builder
	part  string
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	w.part += string(p)
	for {
		i := strings.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		select {
		case w.lines <- w.part[:i]:
		default: // nobody waits for the report's lines
		}
		w.part = w.part[i+1:]
	}
	return len(p), nil
}

// TestCheckProgress: `gmailtls check` prints each MX address's result as
// it arrives. Of two MX hosts, one answers at once and the other accepts
// and never greets until the probe's 2 s timeout: the first line is
// printed while the silent server still holds its connection open (before
// its timeout), the second follows with banner_timeout, then the report.
// stdout is no terminal here, so the progress is plain lines: no carriage
// return, no escape code.
func TestCheckProgress(t *testing.T) {
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	fast := smtptest.StartT(t, smtptest.Options{Behavior: smtptest.Gmail, CA: ca, Hostname: "mx.test.example", Addr: "127.0.0.1:0"})
	slow := smtptest.StartT(t, smtptest.Options{Behavior: smtptest.HangBanner, CA: ca, Hostname: "mx.test.example", Addr: "127.0.0.2:0"})
	dir := t.TempDir()
	if err := ca.WritePEM(filepath.Join(dir, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`[target]
mx = [%q, %q]
servername = "mx.test.example"
ca_file = "ca.pem"
timeout = "2s"
helo_name = "probe.test.example"

[storage]
path = "history.db"

[[relay]]
name = "relay-1"
`, fast.Addr(), slow.Addr())
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	svcTestInit(t, cfgPath)

	out := &lineWriter{lines: make(chan string, 1)}
	var errb strings.Builder
	done := make(chan int, 1)
	go func() {
		e := &env{stdin: strings.NewReader(""), stdout: out, stderr: &errb, getenv: func(string) string { return "" }}
		done <- dispatch(context.Background(), e, []string{"check", "relay-1", "--config", cfgPath})
	}()
	first := <-out.lines
	// The silent server's connection is still open: its probe has not
	// timed out yet.
	over, cancel := context.WithCancel(context.Background())
	cancel()
	if err := slow.WaitFinished(over, 1); err == nil {
		t.Errorf("the first line came after the silent server's timeout: %q", first)
	}
	if !strings.HasPrefix(first, "relay-1  127.0.0.1 ") || !strings.Contains(first, "  ok TLS 1.3  ") {
		t.Errorf("first line %q, want relay-1's passing 127.0.0.1", first)
	}
	second := <-out.lines
	if !strings.HasPrefix(second, "relay-1  127.0.0.2 ") || !strings.Contains(second, "banner_timeout at banner") {
		t.Errorf("second line %q, want 127.0.0.2's banner_timeout", second)
	}
	if code := <-done; code != exitFailed {
		t.Errorf("exit %d, want 1 (a failed MX)\n%s", code, errb.String())
	}
	out.mu.Lock()
	text := out.all.String()
	out.mu.Unlock()
	if strings.ContainsAny(text, "\r\x1b") {
		t.Errorf("output to a non-terminal has carriage returns or escape codes: %q", text)
	}
	if want := first + "\n" + second + "\n[FAIL] relay-1"; !strings.HasPrefix(text, want) {
		t.Errorf("output starts\n%s\nwant the two progress lines, then the report", text)
	}
}
