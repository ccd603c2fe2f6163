package commands

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestStatusNamesTheLeader: status names the serve replica holding the
// leader lease (its id, since, until) from storage, as the CLI reads it
// where no elector runs; no leader while no replica holds the lease, nor
// once its lease expired.
func TestStatusNamesTheLeader(t *testing.T) {
	e := newTestEnv(t, "relay-1")
	ctx := context.Background()
	leaderLines := func() (string, bool) {
		t.Helper()
		m, err := e.h.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range e.h.StatusResponse(m).Sections {
			if s.Heading == "Leader" {
				return strings.Join(s.Lines, "\n"), m.Leader != nil
			}
		}
		return "", m.Leader != nil
	}
	if text, named := leaderLines(); text != "" || named {
		t.Errorf("a leader without a lease: %q", text)
	}
	l, err := e.store.AcquireLease(ctx, "serve", "bot-1:42:9f3a1c2e", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.h.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Leader == nil || m.Leader.Replica != "bot-1:42:9f3a1c2e" || !m.Leader.Since.Equal(l.Acquired) ||
		!m.Leader.Expires.Equal(l.Expires) || m.Leader.Token != 1 {
		t.Errorf("status leader %+v, want the lease %+v", m.Leader, l)
	}
	if text, _ := leaderLines(); !strings.Contains(text, "replica bot-1:42:9f3a1c2e since ") || !strings.Contains(text, "lease until ") {
		t.Errorf("status message's leader: %q", text)
	}
	e.clock.Advance(10 * time.Second)
	if text, named := leaderLines(); text != "" || named {
		t.Errorf("a leader with an expired lease: %q", text)
	}
}
