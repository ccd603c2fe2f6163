package monitor

import (
	"context"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/message"
)

// TestChangeAnnouncedOnceByTwoReplicas: two replicas (two Monitors on one
// database) evaluate the same failing result at the same time; the one
// that stores the change second finds the relay's newest event moved and
// leaves the change to the first, so it is stored, and alerted, once.
func TestChangeAnnouncedOnceByTwoReplicas(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	e.check("relay-1", "ok")
	a := e.m
	b := New(Deps{Config: e.cfg, Store: e.store, Runners: e.relayRunners(), Now: e.clock.Now})
	if _, err := b.Evaluate(ctx); err != nil { // b replays the history: relay-1 at ok
		t.Fatal(err)
	}
	e.clock.Advance(5 * time.Minute)
	e.runners["relay-1"].Set("tls_reset")
	var first Evaluation
	b.beforeStore = func() {
		// b has read the announced levels (relay-1 at ok) and computed
		// ok→watch; a evaluates the same history and stores it first.
		b.beforeStore = nil
		var err error
		if first, err = a.Evaluate(ctx); err != nil {
			t.Error(err)
		}
	}
	res, err := b.CheckRelay(ctx, Check{Relay: "relay-1", Trigger: message.SourceSchedule, RequestedBy: "scheduler"})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Changes) == 0 {
		t.Fatal("the first replica announced nothing")
	}
	for _, c := range first.Changes {
		if c.From != "ok" || c.To != "watch" {
			t.Fatalf("the first replica's changes: %+v, want ok→watch", first.Changes)
		}
	}
	if len(res.Changes) != 0 {
		t.Fatalf("the second replica announced %+v again", res.Changes)
	}
	// Each change the first replica announced is stored once: relay-1's,
	// and the global one if the lab's single failing relay moved it.
	for _, c := range first.Changes {
		evs, err := e.store.Events(ctx, c.Relay, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].To != "watch" {
			t.Fatalf("events of %q: %+v, want one ok→watch", c.Relay, evs)
		}
	}
}
