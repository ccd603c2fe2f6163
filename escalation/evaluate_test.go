package escalation

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/probe"
)

// want is the expected state of one relay.
type want struct {
	level Level
	scope Scope
}

func TestEvaluateTable(t *testing.T) {
	// Isolates the "x failures in y minutes" rule: M of K cannot fire.
	windowOnly := DefaultPolicy()
	windowOnly.M, windowOnly.K = 9, 10

	tests := []struct {
		name   string
		lines  []string
		step   time.Duration // between slots; 5m when zero
		policy *Policy
		queues func(h *history) []QueueSample
		relays map[string]want
		global want
	}{
		// ok: the last probes succeeded.
		{
			name:   "ok: every probe passes",
			lines:  []string{"relay-1: ✓✓✓✓"},
			relays: map[string]want{"relay-1": {LevelOK, ScopeNone}},
			global: want{LevelOK, ScopeNone},
		},
		{
			name:   "ok: no history yet",
			lines:  nil,
			global: want{LevelOK, ScopeNone},
		},
		// watch: a single failure, or a failure already followed by a success.
		{
			name:   "watch: a single failure",
			lines:  []string{"relay-1: ✓✓✓✗"},
			relays: map[string]want{"relay-1": {LevelWatch, ScopeOneEvent}},
			global: want{LevelWatch, ScopeOneEvent},
		},
		{
			name:   "watch: a failure followed by a success",
			lines:  []string{"relay-1: ✓✗✓"},
			relays: map[string]want{"relay-1": {LevelWatch, ScopeOneEvent}},
			global: want{LevelWatch, ScopeOneEvent},
		},
		{
			name:   "watch: two failures followed by a success",
			lines:  []string{"relay-1: ✗✗✓"},
			relays: map[string]want{"relay-1": {LevelWatch, ScopeOneEvent}},
			global: want{LevelWatch, ScopeOneEvent},
		},
		{
			name:   "watch: a partial failure is a failing run",
			lines:  []string{"relay-1: ✓m"},
			relays: map[string]want{"relay-1": {LevelWatch, ScopeOneEvent}},
			global: want{LevelWatch, ScopeOneEvent},
		},
		{
			name:   "recovery: back to ok after R successes",
			lines:  []string{"relay-1: ✓✗✓✓"},
			relays: map[string]want{"relay-1": {LevelOK, ScopeNone}},
			global: want{LevelOK, ScopeNone},
		},
		// investigate: N in a row, M of the last K, x in y minutes.
		{
			name:   "investigate: three in a row, everything failing is one host",
			lines:  []string{"relay-1: ✓✗✗✗", "relay-2: ✓✓✓✓"},
			relays: map[string]want{"relay-1": {LevelInvestigate, ScopeOneHost}, "relay-2": {LevelOK, ScopeNone}},
			global: want{LevelInvestigate, ScopeOneHost},
		},
		{
			name:   "investigate: three of the last five",
			lines:  []string{"relay-1: ✗✓✗✓✗"},
			step:   10 * time.Minute, // the 15-minute window never holds three
			relays: map[string]want{"relay-1": {LevelInvestigate, ScopeOneHost}},
			global: want{LevelInvestigate, ScopeOneHost},
		},
		{
			name:   "two of the last five is not enough",
			lines:  []string{"relay-1: ✓✗✓✓✓✗"},
			step:   10 * time.Minute,
			relays: map[string]want{"relay-1": {LevelWatch, ScopeOneEvent}},
			global: want{LevelWatch, ScopeOneEvent},
		},
		{
			name:   "investigate: three failures within 15 minutes",
			lines:  []string{"relay-1: ✗✓✗✓✗"},
			step:   2 * time.Minute,
			policy: &windowOnly,
			relays: map[string]want{"relay-1": {LevelInvestigate, ScopeOneHost}},
		},
		{
			name:   "three failures spread over 40 minutes are not in the window",
			lines:  []string{"relay-1: ✗✓✗✓✗"},
			step:   10 * time.Minute,
			policy: &windowOnly,
			relays: map[string]want{"relay-1": {LevelWatch, ScopeOneEvent}},
		},
		{
			name:   "investigate: one source IP fails while the other passes",
			lines:  []string{"relay-1: ✓sss"},
			relays: map[string]want{"relay-1": {LevelInvestigate, ScopeOneSourceIP}},
			global: want{LevelInvestigate, ScopeOneSourceIP},
		},
		{
			name:   "investigate: some MX fail while others pass",
			lines:  []string{"relay-1: ✓mmm"},
			relays: map[string]want{"relay-1": {LevelInvestigate, ScopeMixedMX}},
			global: want{LevelInvestigate, ScopeMixedMX},
		},
		{
			name:   "investigate: breadth covers the recent failing runs",
			lines:  []string{"relay-1: ✓m✗m"},
			relays: map[string]want{"relay-1": {LevelInvestigate, ScopeOneHost}},
		},
		// hysteresis
		{
			name:   "hysteresis: one success does not lower investigate",
			lines:  []string{"relay-1: ✗✗✗✓"},
			relays: map[string]want{"relay-1": {LevelInvestigate, ScopeOneHost}},
		},
		{
			name:   "hysteresis: R successes bring investigate straight to ok",
			lines:  []string{"relay-1: ✗✗✗✓✓"},
			relays: map[string]want{"relay-1": {LevelOK, ScopeNone}},
			global: want{LevelOK, ScopeNone},
		},
		{
			name:   "a flapping relay stays at investigate",
			lines:  []string{"relay-1: ✗✗✗✓✗✓✗✓"},
			relays: map[string]want{"relay-1": {LevelInvestigate, ScopeOneHost}},
		},
		// incident
		{
			name:   "incident: two relays at investigate",
			lines:  []string{"relay-1: ✗✗✗", "relay-2: ✓✗✗✗", "relay-3: ✓✓✓✓"},
			relays: map[string]want{"relay-1": {LevelInvestigate, ScopeOneHost}, "relay-2": {LevelInvestigate, ScopeOneHost}, "relay-3": {LevelOK, ScopeNone}},
			global: want{LevelIncident, ScopeAllGmail},
		},
		{
			name:   "incident: every relay fails toward Gmail at once",
			lines:  []string{"relay-1: ✓✓✗", "relay-2: ✓✓✗"},
			relays: map[string]want{"relay-1": {LevelWatch, ScopeOneEvent}, "relay-2": {LevelWatch, ScopeOneEvent}},
			global: want{LevelIncident, ScopeAllGmail},
		},
		{
			name:   "no incident when one relay of three still passes",
			lines:  []string{"relay-1: ✓✓✗", "relay-2: ✓✓✗", "relay-3: ✓✓✓"},
			relays: map[string]want{"relay-1": {LevelWatch, ScopeOneEvent}},
			global: want{LevelWatch, ScopeOneEvent},
		},
		{
			name:   "a single relay failing is never an incident",
			lines:  []string{"relay-1: ✓✓✗"},
			global: want{LevelWatch, ScopeOneEvent},
		},
		{
			name:   "a relay without recent results does not count toward all relays",
			lines:  []string{"relay-1: ✓✗·······", "relay-2: ✓✓·······✗"},
			global: want{LevelWatch, ScopeOneEvent},
		},
		{
			name:   "an agent-only run later does not age a passing relay out of all relays",
			lines:  []string{"relay-1: ✓···", "relay-2: ··✗·", "relay-3: ··✗a"},
			global: want{LevelWatch, ScopeOneEvent},
		},
		{
			name:   "incident: several relays fail toward some MX while others pass",
			lines:  []string{"relay-1: mmm", "relay-2: mmm"},
			relays: map[string]want{"relay-1": {LevelInvestigate, ScopeMixedMX}, "relay-2": {LevelInvestigate, ScopeMixedMX}},
			global: want{LevelIncident, ScopeMixedMX},
		},
		{
			name:   "incident hysteresis: held until every relay has R successes",
			lines:  []string{"relay-1: ✓✗✓✓", "relay-2: ✓✗✓·"},
			relays: map[string]want{"relay-1": {LevelOK, ScopeNone}, "relay-2": {LevelWatch, ScopeOneEvent}},
			global: want{LevelIncident, ScopeAllGmail},
		},
		{
			name:   "incident recovers when every relay has R successes",
			lines:  []string{"relay-1: ✓✗✓✓", "relay-2: ✓✗✓✓"},
			global: want{LevelOK, ScopeNone},
		},
		{
			name:  "incident: Gmail-bound queues rising on two relays",
			lines: []string{"relay-1: ✓✓✓", "relay-2: ✓✓✓"},
			queues: func(h *history) []QueueSample {
				return []QueueSample{
					{Relay: "relay-1", At: h.slot(0), Deferred: 0},
					{Relay: "relay-1", At: h.slot(2), Deferred: 40, OldestAge: 9 * time.Minute},
					{Relay: "relay-2", At: h.slot(0), Deferred: 3},
					{Relay: "relay-2", At: h.slot(1), Deferred: 8},
					{Relay: "relay-2", At: h.slot(2), Deferred: 21, OldestAge: 11 * time.Minute},
				}
			},
			relays: map[string]want{"relay-1": {LevelOK, ScopeNone}, "relay-2": {LevelOK, ScopeNone}},
			global: want{LevelIncident, ScopeAllGmail},
		},
		{
			name:  "a queue rising on one relay only is no incident",
			lines: []string{"relay-1: ✓✓✓", "relay-2: ✓✓✓"},
			queues: func(h *history) []QueueSample {
				return []QueueSample{
					{Relay: "relay-1", At: h.slot(0), Deferred: 0},
					{Relay: "relay-1", At: h.slot(2), Deferred: 40},
					{Relay: "relay-2", At: h.slot(0), Deferred: 30},
					{Relay: "relay-2", At: h.slot(2), Deferred: 2},
				}
			},
			global: want{LevelOK, ScopeNone},
		},
		{
			name:  "a queue rise that left the window no longer counts",
			lines: []string{"relay-1: ✓✓✓✓✓✓✓✓", "relay-2: ✓✓✓✓✓✓✓✓"},
			queues: func(h *history) []QueueSample {
				return []QueueSample{
					{Relay: "relay-1", At: h.slot(0), Deferred: 0},
					{Relay: "relay-1", At: h.slot(1), Deferred: 40},
					{Relay: "relay-2", At: h.slot(0), Deferred: 0},
					{Relay: "relay-2", At: h.slot(1), Deferred: 40},
				}
			},
			global: want{LevelOK, ScopeNone},
		},
		// agent trouble is not Gmail trouble
		{
			name:   "agent unreachable only: ok, relay_agent",
			lines:  []string{"relay-1: ✓aaaa"},
			relays: map[string]want{"relay-1": {LevelOK, ScopeRelayAgent}},
			global: want{LevelOK, ScopeNone},
		},
		{
			name:   "agent failures do not break a failure streak",
			lines:  []string{"relay-1: ✗a✗a✗"},
			step:   10 * time.Minute,
			relays: map[string]want{"relay-1": {LevelInvestigate, ScopeOneHost}},
		},
		{
			name:   "agent failures do not make a success streak",
			lines:  []string{"relay-1: ✗✗✗aa✓aa"},
			relays: map[string]want{"relay-1": {LevelInvestigate, ScopeOneHost}},
		},
		{
			name:   "agent errors beside passing results: the run passes",
			lines:  []string{"relay-1: ✗✗✗ee"},
			relays: map[string]want{"relay-1": {LevelOK, ScopeNone}},
		},
		{
			name:   "two relays with unreachable agents are no incident",
			lines:  []string{"relay-1: aaaa", "relay-2: aaaa"},
			relays: map[string]want{"relay-1": {LevelOK, ScopeRelayAgent}, "relay-2": {LevelOK, ScopeRelayAgent}},
			global: want{LevelOK, ScopeNone},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			step := tc.step
			if step == 0 {
				step = 5 * time.Minute
			}
			h := newHistory(step, tc.lines...)
			p := DefaultPolicy()
			if tc.policy != nil {
				p = *tc.policy
			}
			var queues []QueueSample
			if tc.queues != nil {
				queues = tc.queues(h)
			}
			now := h.end().Add(time.Minute)
			a := Evaluate(now, h.obs, queues, nil, p)
			for name, w := range tc.relays {
				rs := mustRelay(t, a, name)
				if rs.Level != w.level || rs.Scope != w.scope {
					t.Errorf("%s: level %s scope %q, want %s %q (state %+v)", name, rs.Level, rs.Scope, w.level, w.scope, rs)
				}
				if rs.Advice != Advice(rs.Level, rs.Scope, rs.Cause) {
					t.Errorf("%s: advice %q, want Advice's %q", name, rs.Advice, Advice(rs.Level, rs.Scope, rs.Cause))
				}
				// Every failure of these histories is a tls_reset.
				wantCause := CauseNone
				switch {
				case rs.Level != LevelOK:
					wantCause = CauseHandshake
				case rs.Scope == ScopeRelayAgent:
					wantCause = CauseAgent
				}
				if rs.Cause != wantCause {
					t.Errorf("%s: cause %q, want %q", name, rs.Cause, wantCause)
				}
				if rs.Level != LevelOK && len(rs.Evidence) == 0 {
					t.Errorf("%s: level %s without evidence", name, rs.Level)
				}
				for _, id := range rs.Evidence {
					if !slices.Contains(h.failingIDs(name), id) {
						t.Errorf("%s: evidence %d is not a failing Gmail observation of the relay", name, id)
					}
				}
			}
			if tc.global.level != "" && (a.Global.Level != tc.global.level || a.Global.Scope != tc.global.scope) {
				t.Errorf("global: level %s scope %q, want %s %q (state %+v)", a.Global.Level, a.Global.Scope, tc.global.level, tc.global.scope, a.Global)
			}
			if g := a.Global; g.Level != LevelOK && g.Cause != CauseHandshake && (tc.queues == nil || g.Cause != CauseUnknown) {
				t.Errorf("global: cause %q at %s, want handshake (or unknown for a queue-only incident)", g.Cause, g.Level)
			}
			if g := a.Global; g.Advice != Advice(g.Level, g.Scope, g.Cause) {
				t.Errorf("global: advice %q, want Advice's %q", g.Advice, Advice(g.Level, g.Scope, g.Cause))
			}
			if a.Global.Relay != "" {
				t.Errorf("global relay name %q, want empty", a.Global.Relay)
			}
			if !slices.IsSortedFunc(a.Relays, func(x, y RelayState) int { return strings.Compare(x.Relay, y.Relay) }) {
				t.Errorf("relays not sorted by name")
			}
		})
	}
}

// TestControlFailedTooIsLocalInfrastructure: three failing runs toward
// Gmail are investigate (one_host) on their own; when the control MX
// failed in each of those runs the scope is local_infrastructure, whose
// advice says not to escalate to Google; when it failed in some runs only,
// the scope stays one_host.
func TestControlFailedTooIsLocalInfrastructure(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	runs := func(control ...bool) []Observation {
		var obs []Observation
		for i, c := range control {
			obs = append(obs, Observation{ID: int64(i + 1), RunID: int64(i + 1), Relay: "relay-1", MX: "gmail-smtp-in.l.google.com", IP: "192.0.2.1",
				At: now.Add(time.Duration(i-len(control)) * 5 * time.Minute), Failure: string(probe.FailConnectTimeout), ControlFailed: c})
		}
		return obs
	}
	for _, tc := range []struct {
		control []bool
		want    Scope
	}{
		{[]bool{false, false, false}, ScopeOneHost},
		{[]bool{true, true, true}, ScopeLocalInfra},
		{[]bool{true, false, true}, ScopeOneHost},
	} {
		a := Evaluate(now, runs(tc.control...), nil, nil, DefaultPolicy())
		st := mustRelay(t, a, "relay-1")
		if st.Level != LevelInvestigate || st.Scope != tc.want {
			t.Errorf("control failed %v: %s (%s), want investigate (%s)", tc.control, st.Level, st.Scope, tc.want)
		}
		if tc.want == ScopeLocalInfra && !strings.Contains(Advice(st.Level, st.Scope, st.Cause), "do not escalate to Google") {
			t.Errorf("local_infrastructure advice: %q", Advice(st.Level, st.Scope, st.Cause))
		}
	}
}

// TestLocalInfrastructureIsNoGmailIncident: two relays at investigate make
// an all_gmail incident, unless their control MX failed in the same runs
// (local_infrastructure): a relay whose every destination fails counts
// toward neither incident rule, while the relays failing toward Gmail
// alone still do, and only they are named.
func TestLocalInfrastructureIsNoGmailIncident(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	var id int64
	fail := func(relay string, n int, control bool) []Observation {
		var obs []Observation
		for i := range n {
			id++
			obs = append(obs, Observation{ID: id, RunID: id, Relay: relay, MX: "gmail-smtp-in.l.google.com", IP: "192.0.2.1",
				At: now.Add(time.Duration(i-n) * 5 * time.Minute), Failure: string(probe.FailTLSReset), ControlFailed: control})
		}
		return obs
	}
	pass := func(relay string, n int) []Observation {
		var obs []Observation
		for i := range n {
			id++
			obs = append(obs, Observation{ID: id, RunID: id, Relay: relay, MX: "gmail-smtp-in.l.google.com", IP: "192.0.2.1",
				At: now.Add(time.Duration(i-n) * 5 * time.Minute), OK: true})
		}
		return obs
	}
	for _, tc := range []struct {
		name    string
		obs     []Observation
		want    Level
		failing []string
	}{
		{"gmail fails on two relays", slices.Concat(fail("relay-1", 3, false), fail("relay-2", 3, false), pass("relay-3", 3)),
			LevelIncident, []string{"relay-1", "relay-2"}},
		{"every destination fails on two relays", slices.Concat(fail("relay-1", 3, true), fail("relay-2", 3, true), pass("relay-3", 3)),
			LevelInvestigate, []string{"relay-1", "relay-2"}},
		{"every destination fails on all relays", slices.Concat(fail("relay-1", 3, true), fail("relay-2", 3, true)),
			LevelInvestigate, []string{"relay-1", "relay-2"}},
		{"one local, two gmail", slices.Concat(fail("relay-1", 3, true), fail("relay-2", 3, false), fail("relay-3", 3, false)),
			LevelIncident, []string{"relay-2", "relay-3"}},
	} {
		a := Evaluate(now, tc.obs, nil, nil, DefaultPolicy())
		if a.Global.Level != tc.want || !slices.Equal(a.Global.FailingRelays, tc.failing) {
			t.Errorf("%s: global %s %v, want %s %v", tc.name, a.Global.Level, a.Global.FailingRelays, tc.want, tc.failing)
		}
		if tc.want == LevelIncident && a.Global.Scope != ScopeAllGmail {
			t.Errorf("%s: incident scope %s, want all_gmail", tc.name, a.Global.Scope)
		}
		if r := Replay(tc.obs, nil, DefaultPolicy()); r.Global.Level != tc.want {
			t.Errorf("%s: replayed global %s, want %s", tc.name, r.Global.Level, tc.want)
		}
	}
}
