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

// TestNewConfirm: the failing relay is probed again in full, the first
// other relay toward the failing MX hosts only, and only its results toward
// the failing addresses are kept.
func TestNewConfirm(t *testing.T) {
	at := time.Date(2026, 3, 2, 11, 0, 0, 0, time.UTC)
	type call struct {
		relay string
		mx    []string
	}
	var calls []call
	check := func(_ context.Context, relay string, mx []string) ([]probe.Result, error) {
		calls = append(calls, call{relay, mx})
		if relay == "relay-3" {
			return nil, errors.New("relay-3: agent refused the probe")
		}
		rs := results(relay, relay != "relay-2", at)
		rs = append(rs, probe.Result{Relay: relay, MX: "gmail-smtp-in.l.google.com", IP: "2a00:1450:400c:c0b::1a", OK: true})
		return rs, nil
	}
	var failing []storage.StoredResult
	for _, r := range results("relay-2", false, at)[:1] {
		failing = append(failing, storage.StoredResult{Result: r})
	}
	confirm := NewConfirm(check, func(context.Context) []string { return []string{"relay-2", "relay-1", "relay-3"} }, nil)
	again, second, secondRelay, err := confirm(context.Background(), "relay-2", failing)
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
	confirm = NewConfirm(check, func(context.Context) []string { return []string{"relay-3"} }, nil)
	again, second, secondRelay, err = confirm(context.Background(), "relay-2", failing)
	if err != nil || len(again) == 0 || second != nil || secondRelay != "" {
		t.Errorf("without a usable second relay: %v %v %q %v", again, second, secondRelay, err)
	}
	// The relay itself cannot probe: an error, no alert decision.
	if _, _, _, err := confirm(context.Background(), "relay-3", failing); err == nil {
		t.Error("no error when the re-probe could not run")
	}
}
