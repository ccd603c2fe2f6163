package monitor

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/fakerelay"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/relay/mta"
)

// policyRelay is a fake agent whose MTA TLS policy says what the test sets.
type policyRelay struct {
	*fakerelay.Runner
	mu     sync.Mutex
	policy relay.Policy
	err    error
}

func (p *policyRelay) Policy(context.Context) (relay.Policy, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.policy, p.err
}

func (p *policyRelay) set(pol relay.Policy, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.policy, p.err = pol, err
}

var _ relay.PolicyReader = (*policyRelay)(nil)

// TestTLSPolicyMailWaitsRaisesSooner: an agent whose policy makes
// Gmail-bound mail wait (smtp_tls_security_level=encrypt) is at
// investigate on its first TLS handshake failure, with advice saying its
// mail waits in the queue under encrypt; under "may" the same failure
// stays at watch and the advice says mail goes out without TLS; a policy
// that cannot be read leaves the probes alone to decide.
func TestTLSPolicyMailWaitsRaisesSooner(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy relay.Policy
		err    error
		level  escalation.Level
		advice string // a fragment the advice must hold ("" for none)
	}{
		{"encrypt", relay.Policy{Available: true, MTA: "postfix", Domain: "gmail.com", SecurityLevel: "encrypt", EffectiveLevel: "encrypt",
			OnTLSFailure: mta.TLSFailureStalls}, nil, escalation.LevelInvestigate,
			"mail to Gmail waits in the queue under smtp_tls_security_level=encrypt: "},
		{"may", relay.Policy{Available: true, MTA: "postfix", Domain: "gmail.com", SecurityLevel: "may", EffectiveLevel: "may",
			OnTLSFailure: mta.TLSFailurePlaintext}, nil, escalation.LevelWatch,
			"Under smtp_tls_security_level=may this relay delivers Gmail-bound mail without TLS when TLS fails, so no queue builds"},
		{"policy unreadable", relay.Policy{OnTLSFailure: mta.TLSFailureStalls}, errors.New("agent unreachable"), escalation.LevelWatch, ""},
		{"not available", relay.Policy{Error: "no MTA configuration", OnTLSFailure: mta.TLSFailureStalls}, nil, escalation.LevelWatch, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, "relay-1")
			pr := &policyRelay{Runner: e.runners["relay-1"]}
			pr.SetKind(relay.KindAgent)
			pr.set(tc.policy, tc.err)
			e.m = New(Deps{Config: e.cfg, Store: e.store, Runners: map[string]relay.Runner{"relay-1": pr}, Now: e.clock.Now})
			e.check("relay-1", "ok")
			res := e.check("relay-1", "tls_reset")
			if res.State.Level != tc.level {
				t.Fatalf("level %s, want %s (advice %q)", res.State.Level, tc.level, res.State.Advice)
			}
			if tc.advice == "" {
				if want := escalation.Advice(res.State.Level, res.State.Scope, res.State.Cause); res.State.Advice != want {
					t.Errorf("advice %q, want the probes' own %q", res.State.Advice, want)
				}
			} else if !strings.Contains(res.State.Advice, tc.advice) {
				t.Errorf("advice %q lacks %q", res.State.Advice, tc.advice)
			}
			if strings.Contains(strings.ToLower(res.State.Advice), "weaken") || strings.Contains(res.State.Advice, "level to may") {
				t.Errorf("advice %q advises weakening TLS", res.State.Advice)
			}
			// The probe passes twice more: back to ok whatever the policy.
			e.check("relay-1", "ok")
			if res := e.check("relay-1", "ok"); res.State.Level != escalation.LevelOK {
				t.Errorf("after two passes: %s, want ok", res.State.Level)
			}
		})
	}
}
