package alerts

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/storage"
)

// TestReprobe: the failing relay is probed again in full, the first other
// active relay toward the failing MX hosts only, and only its results
// toward the failing addresses are kept; every re-probe goes through the
// monitor with trigger confirm.
func TestReprobe(t *testing.T) {
	at := time.Date(2026, 3, 2, 11, 0, 0, 0, time.UTC)
	type call struct {
		relay string
		mx    []string
	}
	var calls []call
	mon := &fakeMonitor{active: []string{"relay-2", "relay-1", "relay-3"}}
	mon.check = func(_ context.Context, relay string, mx []string) ([]probe.Result, error) {
		calls = append(calls, call{relay, mx})
		if relay == "relay-3" {
			return nil, errors.New("relay-3: agent refused the probe")
		}
		rs := results(relay, relay != "relay-2", at)
		rs = append(rs, probe.Result{Relay: relay, MX: "gmail-smtp-in.l.google.com", IP: "2a00:1450:400c:c0b::1a", OK: true})
		return rs, nil
	}
	a := &Alerter{Monitor: mon}
	var failing []storage.StoredResult
	for _, r := range results("relay-2", false, at)[:1] {
		failing = append(failing, storage.StoredResult{Result: r})
	}
	again, second, secondRelay, err := a.reprobe(context.Background(), "relay-2", failing)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 3 || !gmailFailure(again) {
		t.Errorf("again = %+v", again)
	}
	if secondRelay != "relay-1" || len(second) != 1 || second[0].IP != failing[0].IP || !second[0].OK {
		t.Errorf("second = %s %+v", secondRelay, second)
	}
	if len(calls) != 2 || calls[0].mx != nil || calls[1].relay != "relay-1" || !slices.Equal(calls[1].mx, []string{"gmail-smtp-in.l.google.com"}) {
		t.Errorf("calls = %+v", calls)
	}

	// A second relay that cannot probe: the re-probe alone.
	mon.active = []string{"relay-3"}
	again, second, secondRelay, err = a.reprobe(context.Background(), "relay-2", failing)
	if err != nil || len(again) == 0 || second != nil || secondRelay != "" {
		t.Errorf("without a usable second relay: %v %v %q %v", again, second, secondRelay, err)
	}
	// The relay itself cannot probe: an error, no alert decision.
	if _, _, _, err := a.reprobe(context.Background(), "relay-3", failing); err == nil {
		t.Error("no error when the re-probe could not run")
	}
	// Only the relay's agent failed: nothing to ask a second relay about.
	calls = nil
	agentOnly := []storage.StoredResult{{Result: probe.Result{Relay: "relay-2", MX: "gmail-smtp-in.l.google.com", Failure: probe.FailAgentUnreachable}}}
	if _, second, _, err := a.reprobe(context.Background(), "relay-2", agentOnly); err != nil || second != nil || len(calls) != 1 {
		t.Errorf("agent failure: second %v, calls %+v, %v", second, calls, err)
	}
}
