package commands

import (
	"context"
	"strings"
	"testing"
)

// TestCheckReplySaysRateLimited: a check refused by the on-demand rate
// limit answers "rate limited: try again in N s" instead of probing.
func TestCheckReplySaysRateLimited(t *testing.T) {
	e := newTestEnv(t, "relay-1")
	ctx := context.Background()
	burst := e.cfg.Probing.RelayBurst
	for i := range burst {
		if r := e.h.Run(ctx, slash("check relay-1")); strings.Contains(r.Summary, "rate limited") {
			t.Fatalf("check %d of a burst of %d refused: %s", i+1, burst, r.Summary)
		}
	}
	calls := e.runners["relay-1"].Calls()
	r := e.h.Run(ctx, slash("check relay-1"))
	if !strings.HasPrefix(r.Summary, "rate limited: try again in 10 s") {
		t.Errorf("reply %q; want \"rate limited: try again in 10 s\"", r.Summary)
	}
	if e.runners["relay-1"].Calls() != calls {
		t.Error("the refused check probed")
	}
}
