package probe

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
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

// TestTimingsJSONEveryStageKey: timings_ms has every stage key in every
// result; a stage not reached (after the failing one, or every stage of an
// agent failure) or not measured (openssl and posttls-finger time only the
// whole run; dns without a lookup) is null, never 0; total is a number.
func TestTimingsJSONEveryStageKey(t *testing.T) {
	all := Timings{DNS: 1.5, Connect: 2, Banner: 3, EHLO: 4, StartTLS: 5, Handshake: 6, PostTLS: 7, Total: 30}
	tests := []struct {
		name    string
		r       Result
		numbers string // the keys that hold numbers; the rest must be null
	}{
		{"ok", Result{OK: true, Timings: all}, "banner connect dns ehlo handshake post_tls starttls total"},
		{"ok, pinned address", Result{OK: true, Engine: EngineNative, Timings: Timings{Connect: 2, Banner: 3, EHLO: 4, StartTLS: 5, Handshake: 6, PostTLS: 7, Total: 27}},
			"banner connect ehlo handshake post_tls starttls total"},
		{"dns", Result{Stage: StageDNS, Failure: FailDNSError, Timings: Timings{DNS: 9, Total: 9}}, "dns total"},
		{"connect", Result{Stage: StageConnect, Failure: FailConnectTimeout, Timings: Timings{DNS: 1, Connect: 10000, Total: 10001}}, "connect dns total"},
		{"banner", Result{Stage: StageBanner, Failure: FailSMTPRejected, Timings: Timings{Connect: 2, Banner: 3, Total: 5}}, "banner connect total"},
		{"ehlo", Result{Stage: StageEHLO, Failure: FailStartTLSMasked, Timings: Timings{Connect: 2, Banner: 3, EHLO: 4, Total: 9}}, "banner connect ehlo total"},
		{"starttls", Result{Stage: StageStartTLS, Failure: FailStartTLSRejected, Timings: Timings{Connect: 2, Banner: 3, EHLO: 4, StartTLS: 5, Total: 14}},
			"banner connect ehlo starttls total"},
		{"verify", Result{Stage: StageVerify, Failure: FailCertExpired, Timings: Timings{Connect: 2, Banner: 3, EHLO: 4, StartTLS: 5, Handshake: 6, Total: 20}},
			"banner connect ehlo handshake starttls total"},
		{"post_tls", Result{Stage: StagePostTLS, Failure: FailPostTLS, Timings: all}, "banner connect dns ehlo handshake post_tls starttls total"},
		{"agent", Result{Stage: StageAgent, Failure: FailAgentUnreachable, Timings: Timings{Total: 5000}}, "total"},
		{"openssl", Result{OK: true, Engine: EngineOpenSSL, Timings: Timings{Total: 140}}, "total"},
		{"posttls-finger failed", Result{Engine: EnginePosttlsFinger, Stage: StageHandshake, Failure: FailTLSReset, Timings: Timings{Total: 0}}, "total"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(Report{Results: []Result{tc.r}})
			if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				Results []struct {
					Timings map[string]any `json:"timings_ms"`
				}
			}
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			tm := rep.Results[0].Timings
			var keys, numbers []string
			for k, v := range tm {
				keys = append(keys, k)
				switch v.(type) {
				case float64:
					numbers = append(numbers, k)
				case nil:
				default:
					t.Errorf("timings_ms.%s = %v, want a number or null", k, v)
				}
			}
			slices.Sort(keys)
			slices.Sort(numbers)
			if got := strings.Join(keys, " "); got != "banner connect dns ehlo handshake post_tls starttls total" {
				t.Errorf("keys %s", got)
			}
			if got := strings.Join(numbers, " "); got != tc.numbers {
				t.Errorf("numbers in %s, want in %s: %s", got, tc.numbers, b)
			}
		})
	}
}
