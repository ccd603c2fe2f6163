package escalation

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestTLSPolicyRules: under a policy that makes Gmail-bound mail wait, a
// single TLS handshake failure (watch otherwise) is investigate with the
// advice saying the mail waits; an opportunistic policy keeps the probes' level and says the
// mail is delivered without TLS; neither ever advises weakening TLS.
func TestTLSPolicyRules(t *testing.T) {
	waits := TLSPolicy{Relay: "relay-1", MailWaits: true, Setting: "smtp_tls_security_level=encrypt"}
	plain := TLSPolicy{Relay: "relay-1", WithoutTLS: true, Setting: "smtp_tls_security_level=may"}
	prefix := fmt.Sprintf(AdviceMailWaitsFormat, "smtp_tls_security_level=encrypt")
	for _, tc := range []struct {
		name     string
		history  string
		policies []TLSPolicy
		level    Level
		advice   string // the whole advice, "" for the probes' own
		rule     bool
	}{
		{"no policy: one failure is watch", "relay-1: ✓✓✗", nil, LevelWatch, "", false},
		{"mail waits: one failure is investigate", "relay-1: ✓✓✗", []TLSPolicy{waits}, LevelInvestigate,
			prefix + Advice(LevelInvestigate, ScopeOneEvent, CauseHandshake), true},
		{"mail waits, already investigate: advice only", "relay-1: ✗✗✗", []TLSPolicy{waits}, LevelInvestigate,
			prefix + Advice(LevelInvestigate, ScopeOneHost, CauseHandshake), false},
		{"mail waits, passing: ok", "relay-1: ✓✓✓", []TLSPolicy{waits}, LevelOK, "", false},
		{"another relay's policy counts for nothing", "relay-1: ✓✓✗", []TLSPolicy{{Relay: "relay-9", MailWaits: true}}, LevelWatch, "", false},
		{"delivered without TLS: level kept, said", "relay-1: ✓✓✗", []TLSPolicy{plain}, LevelWatch,
			Advice(LevelWatch, ScopeOneEvent, CauseHandshake) + fmt.Sprintf(AdviceWithoutTLSFormat, "smtp_tls_security_level=may"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHistory(5*time.Minute, tc.history)
			a := EvaluateInput(h.end(), Input{Observations: h.obs, TLSPolicies: tc.policies}, nil, Policy{})
			rs := mustRelay(t, a, "relay-1")
			if rs.Level != tc.level || rs.PolicyRule != tc.rule {
				t.Fatalf("level %s (policy rule %v), want %s (%v)", rs.Level, rs.PolicyRule, tc.level, tc.rule)
			}
			want := tc.advice
			if want == "" {
				want = Advice(rs.Level, rs.Scope, rs.Cause)
			}
			if rs.Advice != want {
				t.Errorf("advice %q\nwant %q", rs.Advice, want)
			}
			for _, bad := range []string{"set smtp_tls_security_level to may", "lower", "disable TLS", "weaken"} {
				if strings.Contains(strings.ToLower(rs.Advice), strings.ToLower(bad)) {
					t.Errorf("advice %q says %q", rs.Advice, bad)
				}
			}
		})
	}

	// The raise is not carried: with the policy gone (or the relay passing
	// again) the next evaluation starts from the probes' own level.
	h := newHistory(5*time.Minute, "relay-1: ✓✓✗")
	first := EvaluateInput(h.end(), Input{Observations: h.obs, TLSPolicies: []TLSPolicy{waits}}, nil, Policy{})
	next := EvaluateInput(h.end().Add(time.Minute), Input{Observations: h.obs}, &first, Policy{})
	if rs := mustRelay(t, next, "relay-1"); rs.Level != LevelWatch || rs.PolicyRule {
		t.Fatalf("after the policy is gone: %s (policy rule %v), want watch", rs.Level, rs.PolicyRule)
	}
}
