package monitor

import (
	"context"
	"sync"
	"testing"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
)

// TestCheckOnResultFromAnAgent: an agent answers in one piece, so the
// check hands each of its results to Check.OnResult once the answer is
// there, named after the relay and before the run is stored; a local
// relay gets the callback in its probe options to stream itself.
func TestCheckOnResultFromAnAgent(t *testing.T) {
	e := newTestEnv(t, "relay-1", "relay-2")
	e.runners["relay-2"].SetKind(relay.KindAgent)
	var mu sync.Mutex
	var got []probe.Result
	onResult := func(r probe.Result) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r)
	}
	res, err := e.m.CheckRelay(context.Background(), Check{Relay: "relay-2", Trigger: message.SourceCLI, RequestedBy: "cli", OnResult: onResult})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got) == 0 || len(got) != len(res.Report.Results) {
		t.Fatalf("%d results handed over, want the agent's %d", len(got), len(res.Report.Results))
	}
	for _, r := range got {
		if r.Relay != "relay-2" {
			t.Errorf("a result of relay %q, want relay-2", r.Relay)
		}
	}
	got = nil
	mu.Unlock()

	if _, err := e.m.CheckRelay(context.Background(), Check{Relay: "relay-1", Trigger: message.SourceCLI, RequestedBy: "cli", OnResult: onResult}); err != nil {
		t.Fatal(err)
	}
	opts := e.runners["relay-1"].Options()
	if len(opts) == 0 || opts[len(opts)-1].OnResult == nil {
		t.Error("the local relay's probe options carry no OnResult to stream with")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 0 {
		t.Errorf("a local relay's results were handed over again after its probe: %d", len(got))
	}
}
