package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// TestProbeRecordFeedsEscalation: `gmailtls probe --record` stores the run
// in the configuration's database and re-evaluates escalation, so status
// sees it like a probe from Slack.
func TestProbeRecordFeedsEscalation(t *testing.T) {
	cfgPath, srv := svcTestSetup(t)
	srv.SetBehavior(smtptest.ResetAfterReady)

	for i := range 3 {
		code, out, errs := svcTestRun(t, "", "probe", "--config", cfgPath, "--relay", "relay-2", "--record", "--no-retry")
		if code != exitFailed || !strings.Contains(out, "tls_reset") {
			t.Fatalf("probe %d: exit %d\n%s\n%s", i, code, out, errs)
		}
		if !strings.Contains(errs, "recorded run") || !strings.Contains(errs, "relay-2 is at level") {
			t.Fatalf("probe %d did not say it recorded the run: %q", i, errs)
		}
		if i == 2 && !strings.Contains(errs, "level investigate") {
			t.Errorf("third failure: %q, want relay-2 at investigate", errs)
		}
	}
	code, out, errs := svcTestRun(t, "", "status", "--config", cfgPath, "--json")
	if code != exitOK {
		t.Fatalf("status: exit %d %s", code, errs)
	}
	var st struct {
		Relays []struct {
			Relay, Level, LastFailureClass string
		} `json:"relays"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	found := false
	for _, r := range st.Relays {
		if r.Relay == "relay-2" {
			found = true
			if r.Level != "investigate" {
				t.Errorf("relay-2 level %q after three recorded failures, want investigate", r.Level)
			}
		}
	}
	if !found {
		t.Errorf("status does not list relay-2:\n%s", out)
	}
	// Without --record nothing is stored.
	before := strings.Count(mustRun(t, "history", "--config", cfgPath, "--relay", "relay-1"), "tls_reset")
	svcTestRun(t, "", "probe", "--config", cfgPath, "--relay", "relay-1", "--no-retry")
	after := strings.Count(mustRun(t, "history", "--config", cfgPath, "--relay", "relay-1"), "tls_reset")
	if after != before {
		t.Errorf("a probe without --record changed the history (%d → %d tls_reset rows)", before, after)
	}
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := svcTestRun(t, "", args...)
	if code != exitOK {
		t.Fatalf("%v: exit %d %s", args, code, errs)
	}
	return out
}
