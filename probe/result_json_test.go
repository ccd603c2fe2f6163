package probe

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestResultJSONKeysAlwaysPresent: the contract fields are in every result,
// null when empty, and a result survives a JSON round trip.
func TestResultJSONKeysAlwaysPresent(t *testing.T) {
	ok := Result{Relay: "relay-1", MX: "mx.test.example", IP: "127.0.0.1", Port: 25, OK: true,
		StartedAt: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC),
		TLS:       &TLSInfo{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", Verified: true, PeerCertificates: []Certificate{}}}
	failed := Result{Relay: "relay-1", MX: "mx.test.example", IP: "127.0.0.1", Port: 25,
		StartedAt: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC),
		Stage:     StageBanner, Failure: FailSMTPRejected, SMTPCode: 421, SMTPText: "4.7.0 Try again later",
		Hints: []string{"h"}, Transcript: []string{"S: 421 4.7.0 Try again later"}}
	for name, r := range map[string]Result{"ok": ok, "failed": failed} {
		b, err := json.Marshal(Report{Results: []Result{r}})
		if err != nil {
			t.Fatal(err)
		}
		var rep struct{ Results []json.RawMessage }
		if err := json.Unmarshal(b, &rep); err != nil || len(rep.Results) != 1 {
			t.Fatalf("report JSON %s: %v", b, err)
		}
		b = rep.Results[0]
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"relay", "source_ip", "mx", "preference", "ip", "port", "started_at", "ok",
			"stage", "failure", "smtp_code", "smtp_text", "tls", "timings_ms", "hints", "transcript"} {
			if _, present := m[k]; !present {
				t.Errorf("%s result lacks %q: %s", name, k, b)
			}
		}
		var back Result
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		// nil and empty slices both travel as [].
		if r.Hints == nil && len(back.Hints) == 0 {
			back.Hints = nil
		}
		if r.Transcript == nil && len(back.Transcript) == 0 {
			back.Transcript = nil
		}
		if !reflect.DeepEqual(back, r) {
			t.Errorf("%s result changed in a round trip:\n got %+v\nwant %+v", name, back, r)
		}
	}
	b, _ := json.Marshal(ok.Wire())
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m["failure"] != nil || m["stage"] != nil || m["smtp_code"] != nil {
		t.Errorf("a success carries a failure: %s", b)
	}
	if h, _ := m["hints"].([]any); h == nil || len(h) != 0 {
		t.Errorf("hints of a success = %v, want []", m["hints"])
	}
}
