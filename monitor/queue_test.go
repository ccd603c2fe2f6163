package monitor

import (
	"context"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/storage"
)

// TestQueueRuleCountsConfiguredRelaysAndSurvivesRestart: Gmail-bound queues
// rising on two configured relays make an incident, from the samples in
// storage, after a restart too; a relay removed from the configuration no
// longer counts toward "several relays".
func TestQueueRuleCountsConfiguredRelaysAndSurvivesRestart(t *testing.T) {
	e := newTestEnv(t, "relay-1", "relay-2", "relay-old")
	ctx := context.Background()
	for _, r := range []string{"relay-1", "relay-2", "relay-old"} {
		e.check(r, "ok")
	}
	// relay-old leaves the configuration (its history stays).
	e.cfg.Relays = e.cfg.Relays[:2]
	delete(e.runners, "relay-old")
	e.restart()

	sample := func(relayName string, deferred int) {
		t.Helper()
		if err := e.store.RecordQueueSample(ctx, storage.QueueSample{Relay: relayName, At: e.clock.Now(), Deferred: deferred}); err != nil {
			t.Fatal(err)
		}
	}
	level := func() escalation.Level {
		t.Helper()
		ev, err := e.m.Evaluate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ev.Assessment.Global.Level
	}
	// Rising on relay-1 and on the removed relay-old: one configured relay.
	sample("relay-1", 2)
	sample("relay-old", 2)
	e.clock.Advance(2 * time.Minute)
	sample("relay-1", 40)
	sample("relay-old", 40)
	if got := level(); got == escalation.LevelIncident {
		t.Fatalf("global %s: a removed relay's queue counted", got)
	}
	// relay-2 rises too: two configured relays, an incident, which a
	// restart (samples read back from storage) keeps.
	sample("relay-2", 1)
	e.clock.Advance(time.Minute)
	sample("relay-2", 30)
	if got := level(); got != escalation.LevelIncident {
		t.Fatalf("global %s with queues rising on relay-1 and relay-2, want incident", got)
	}
	e.restart()
	if got := level(); got != escalation.LevelIncident {
		t.Fatalf("global %s after a restart, want incident", got)
	}
}
