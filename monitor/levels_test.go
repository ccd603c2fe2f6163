package monitor

import (
	"context"
	"maps"
	"testing"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/storage"
)

// TestStoredLevels: every configured relay and the global level, from the
// stored events (ok without one); a relay no longer configured is left out.
func TestStoredLevels(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	got, err := e.m.StoredLevels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]escalation.Level{"": "ok", "relay-1": "ok", "relay-2": "ok", "relay-3": "ok"}
	if !maps.Equal(got, want) {
		t.Fatalf("before any event: %v, want %v", got, want)
	}
	for _, ev := range []storage.Event{
		{Relay: "relay-1", From: "ok", To: "watch", Scope: "one_event", At: testBase},
		{Relay: "relay-1", From: "watch", To: "investigate", Scope: "one_host", At: testBase.Add(1)},
		{Relay: "relay-3", From: "ok", To: "watch", Scope: "one_event", At: testBase},
		{From: "ok", To: "incident", Scope: "all_gmail", At: testBase},
	} {
		if _, err := e.store.AddEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	cfg := *e.cfg
	cfg.Relays = cfg.Relays[:2]
	e.m.Reload(&cfg, e.relayRunners())
	if got, err = e.m.StoredLevels(ctx); err != nil {
		t.Fatal(err)
	}
	want = map[string]escalation.Level{"": "incident", "relay-1": "investigate", "relay-2": "ok"}
	if !maps.Equal(got, want) {
		t.Fatalf("after events and a reload without relay-3: %v, want %v", got, want)
	}
}

// TestEvaluationLevels: an evaluation's levels are its relays' and the
// global one under "".
func TestEvaluationLevels(t *testing.T) {
	ev := Evaluation{Assessment: escalation.Assessment{
		Global: escalation.RelayState{Level: "watch"},
		Relays: []escalation.RelayState{{Relay: "relay-1", Level: "investigate"}, {Relay: "relay-2", Level: "ok"}},
	}}
	want := map[string]escalation.Level{"": "watch", "relay-1": "investigate", "relay-2": "ok"}
	if got := ev.Levels(); !maps.Equal(got, want) {
		t.Fatalf("Levels() = %v, want %v", got, want)
	}
}
