package monitor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/message"
)

// TestOnDemandChecksAreRateLimited: 40 "check all" from one user in a
// moment run only as many relay probes as the user's burst allows; the
// refusal says when to try again; tokens come back with time; another
// user is limited by the relays' own buckets; scheduled rounds and
// confirmations are never limited.
func TestOnDemandChecksAreRateLimited(t *testing.T) {
	e := newTestEnv(t, "relay-1", "relay-2")
	p := &e.cfg.Probing
	p.UserBurst, p.UserInterval.Duration = 4, 20*time.Second
	p.RelayBurst, p.RelayInterval.Duration = 3, 10*time.Second
	e.m.Reload(e.cfg, e.relayRunners())
	ctx := context.Background()
	calls := func() int { return e.runners["relay-1"].Calls() + e.runners["relay-2"].Calls() }

	var refused error
	for range 40 {
		_, err := e.m.CheckAll(ctx, Check{Trigger: message.SourceSlash, RequestedBy: "UALICE"})
		if err != nil {
			if !errors.Is(err, ErrRateLimited) {
				t.Fatalf("CheckAll: %v", err)
			}
			refused = err
		}
	}
	if n := calls(); n != 4 {
		t.Errorf("40 check all from one user ran %d relay probes; want the user's burst, 4", n)
	}
	if refused == nil || !strings.HasPrefix(refused.Error(), "rate limited: try again in 40 s") || RetryAfter(refused) != 40*time.Second {
		t.Errorf("refusal %v (retry after %s); want \"rate limited: try again in 40 s\" (two relays, one token each, every 20 s)", refused, RetryAfter(refused))
	}

	// Another user: relay-1 has one probe left of its burst of 3.
	if _, err := e.m.CheckRelay(ctx, Check{Relay: "relay-1", Trigger: message.SourceConsole, RequestedBy: "UBOB"}); err != nil {
		t.Fatalf("bob's first check: %v", err)
	}
	_, err := e.m.CheckRelay(ctx, Check{Relay: "relay-1", Trigger: message.SourceConsole, RequestedBy: "UBOB"})
	if !errors.Is(err, ErrRateLimited) || !strings.Contains(err.Error(), "try again in 10 s") || !strings.Contains(err.Error(), "relay-1 is probed on demand at most 3 times") {
		t.Errorf("bob's second check of relay-1: %v; want the relay's limit", err)
	}

	// Scheduled rounds and confirmations pass whatever the buckets hold.
	before := calls()
	if err := e.m.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.CheckRelay(ctx, Check{Relay: "relay-1", Trigger: message.SourceConfirm, RequestedBy: "alerter"}); err != nil {
		t.Errorf("a confirmation was limited: %v", err)
	}
	if n := calls() - before; n != 3 {
		t.Errorf("round and confirmation ran %d probes, want 3", n)
	}

	// Time refills the buckets.
	e.clock.Advance(20 * time.Second)
	if _, err := e.m.CheckRelay(ctx, Check{Relay: "relay-2", Trigger: message.SourceSlash, RequestedBy: "UALICE"}); err != nil {
		t.Errorf("after 20 s: %v", err)
	}
}
