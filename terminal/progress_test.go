package terminal

import (
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// syncBuilder is an output written from the counter's goroutine.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestProgressTerminal: on a terminal the status line counts the seconds
// (redrawn in place with a carriage return and erase-line), each result
// line is written above it, the status can change, and Stop clears it.
func TestProgressTerminal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out syncBuilder
		p := NewProgress(&out, true)
		p.Start("waiting for relay-2's agent")
		time.Sleep(12*time.Second + time.Millisecond)
		synctest.Wait()
		if got := out.String(); !strings.HasSuffix(got, "\r\x1b[Kwaiting for relay-2's agent… 12 s") ||
			!strings.Contains(got, "\r\x1b[Kwaiting for relay-2's agent… 11 s") {
			t.Fatalf("after 12 s: %q", got)
		}
		p.Line("relay-1  127.0.0.1  ok TLS 1.3  12 ms")
		p.SetStatus("probing 2 relays")
		p.Stop()
		got := out.String()
		want := "\r\x1b[Krelay-1  127.0.0.1  ok TLS 1.3  12 ms\n\r\x1b[Kwaiting for relay-2's agent… 12 s\r\x1b[Kprobing 2 relays… 12 s\r\x1b[K"
		if !strings.HasSuffix(got, want) {
			t.Errorf("output ends %q, want %q", got[max(0, len(got)-len(want)-20):], want)
		}
		time.Sleep(5 * time.Second)
		if out.String() != got {
			t.Error("the counter still draws after Stop")
		}
		p.Stop() // twice is fine
	})
}

// TestProgressNotATerminal: elsewhere only the lines are written, plain:
// no counter, no carriage return, no escape code; a line's own control
// characters are neutralised.
func TestProgressNotATerminal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out syncBuilder
		p := NewProgress(&out, false)
		p.Start("probing relay-1")
		time.Sleep(5 * time.Second)
		p.Line("relay-1  127.0.0.1  ok TLS 1.3  12 ms")
		p.Line("relay-1  evil\x1b[2J  tls_alert at handshake  3 ms")
		p.Stop()
		want := "relay-1  127.0.0.1  ok TLS 1.3  12 ms\nrelay-1  evil\uFFFD[2J  tls_alert at handshake  3 ms\n"
		if got := out.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}
