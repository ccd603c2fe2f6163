package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// TestHistoryJSONTranscripts: history --json carries the stored
// transcript of a failure (storage keeps it for failures), not an empty
// list; the table stays one line per result.
func TestHistoryJSONTranscripts(t *testing.T) {
	cfgPath, srv := svcTestSetup(t)
	srv.SetBehavior(smtptest.ResetAfterReady)
	svcTestConsole(t, cfgPath, "check relay-1")

	code, out, errOut := svcTestRun(t, "", "history", "--config", cfgPath, "--relay", "relay-1", "--json")
	if code != exitOK {
		t.Fatalf("history --json: exit %d: %s", code, errOut)
	}
	var h struct {
		Results []struct {
			OK         bool     `json:"ok"`
			Failure    string   `json:"failure"`
			Transcript []string `json:"transcript"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("history --json: %v\n%s", err, out)
	}
	if len(h.Results) == 0 {
		t.Fatalf("no results:\n%s", out)
	}
	for _, r := range h.Results {
		if r.OK || r.Failure != "tls_reset" {
			t.Fatalf("want only the tls_reset failure: %+v", r)
		}
		if !slices.Contains(r.Transcript, "C: STARTTLS") || !slices.Contains(r.Transcript, "S: 220 2.0.0 Ready to start TLS") {
			t.Errorf("the failure's stored transcript is missing from --json: %q", r.Transcript)
		}
	}

	code, table, _ := svcTestRun(t, "", "history", "--config", cfgPath, "--relay", "relay-1")
	if code != exitOK || strings.Contains(table, "STARTTLS") || strings.Count(strings.TrimSpace(table), "\n") != len(h.Results) {
		t.Errorf("history table (exit %d) should stay one line per result:\n%s", code, table)
	}
}
