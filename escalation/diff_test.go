package escalation

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLevelRankAndMax(t *testing.T) {
	order := []Level{LevelOK, LevelWatch, LevelInvestigate, LevelIncident}
	for i, l := range order {
		if l.Rank() != i {
			t.Errorf("%s.Rank() = %d, want %d", l, l.Rank(), i)
		}
	}
	if Level("").Rank() != 0 || Level("bogus").Rank() != 0 {
		t.Errorf("empty and unknown levels must rank as ok")
	}
	if got := Max(); got != LevelOK {
		t.Errorf("Max() = %s, want ok", got)
	}
	if got := Max(LevelWatch, LevelIncident, LevelInvestigate); got != LevelIncident {
		t.Errorf("Max = %s, want incident", got)
	}
}

func TestAdviceFor(t *testing.T) {
	tests := []struct {
		level Level
		scope Scope
		has   string
	}{
		{LevelOK, ScopeNone, ""},
		{LevelOK, ScopeRelayAgent, "check the agent"},
		{LevelWatch, ScopeOneEvent, "let the retry queue work; confirm later delivery"},
		{LevelInvestigate, ScopeOneHost, "test STARTTLS on that relay"},
		{LevelInvestigate, ScopeOneSourceIP, "NAT path"},
		{LevelInvestigate, ScopeMixedMX, "IP routing"},
		{LevelIncident, ScopeAllGmail, "firewall egress logs; fail over to a healthy relay"},
		{LevelIncident, ScopeMixedMX, "some Gmail MX"},
	}
	for _, tc := range tests {
		got := AdviceFor(tc.level, tc.scope)
		if tc.has == "" && got != "" || !strings.Contains(got, tc.has) {
			t.Errorf("AdviceFor(%s, %q) = %q, want it to contain %q", tc.level, tc.scope, got, tc.has)
		}
	}
}

func TestPolicyDefaults(t *testing.T) {
	if got := (Policy{}).withDefaults(); got != DefaultPolicy() {
		t.Errorf("zero policy = %+v, want the defaults %+v", got, DefaultPolicy())
	}
	d := DefaultPolicy()
	if d.Consecutive != 3 || d.M != 3 || d.K != 5 || d.RecoverAfter != 2 || d.IncidentRelays != 2 || d.Window != 15*time.Minute {
		t.Errorf("defaults differ from the documented ones (docs/architecture.md): %+v", d)
	}
	if runs, window := d.Lookback(); runs != 5 || window != 15*time.Minute {
		t.Errorf("Lookback = %d, %s; want 5, 15m", runs, window)
	}
}

func TestDiff(t *testing.T) {
	p := DefaultPolicy()
	now := t0.Add(time.Hour)
	h := newHistory(5*time.Minute, "relay-1: ✓✓", "relay-2: ✓✓")
	calm := Evaluate(now, h.obs, nil, nil, p)
	if d := Diff(Assessment{}, calm, now); len(d) != 0 {
		t.Errorf("first evaluation of a calm history: changes %+v", d)
	}

	h = newHistory(5*time.Minute, "relay-1: ✓✓✗✗✗", "relay-2: ✓✓✓✓✓")
	bad := Evaluate(now, h.obs, nil, &calm, p)
	d := Diff(calm, bad, now)
	want := []Change{
		{Relay: "relay-1", From: LevelOK, To: LevelInvestigate, Scope: ScopeOneHost},
		{Relay: "", From: LevelOK, To: LevelInvestigate, Scope: ScopeOneHost},
	}
	if len(d) != len(want) {
		t.Fatalf("changes %+v, want %+v", d, want)
	}
	for i, c := range d {
		w := want[i]
		if c.Relay != w.Relay || c.From != w.From || c.To != w.To || c.Scope != w.Scope || !c.At.Equal(now) {
			t.Errorf("change %d = %+v, want %+v", i, c, w)
		}
		if c.Advice == "" || len(c.Evidence) == 0 || !c.Rising() {
			t.Errorf("change %d lacks advice or evidence or does not rise: %+v", i, c)
		}
	}
	if !slices.Equal(d[0].Evidence, h.failingIDs("relay-1")) {
		t.Errorf("evidence %v, want the failing observations %v", d[0].Evidence, h.failingIDs("relay-1"))
	}

	// Evaluating again with nothing new: no change, however often.
	again := Evaluate(now.Add(time.Minute), h.obs, nil, &bad, p)
	if d := Diff(bad, again, now); len(d) != 0 {
		t.Errorf("re-evaluation without news: changes %+v", d)
	}
	// A retired relay (absent from next) yields nothing.
	retired := bad
	retired.Relays = nil
	retired.Global = calm.Global
	if d := Diff(bad, retired, now); len(d) != 1 || d[0].Relay != "" {
		t.Errorf("retiring relay-1: %+v, want only the global change", d)
	}
}

// TestRestartFromPersistedState follows issue 3's "done when": a relay that
// failed once (watch), one that failed three times (investigate), then
// two failing together (incident); the state survives a restart.
func TestRestartFromPersistedState(t *testing.T) {
	p := DefaultPolicy()
	h := newHistory(5*time.Minute,
		"relay-1: ✓✓✓✗",
		"relay-2: ✓✗✗✗",
		"relay-3: ✓✓✓✓",
	)
	var events []Change
	var prev *Assessment
	var cur Assessment
	var hist []Observation
	for _, run := range roundsOf(h.obs) {
		hist = append(hist, run.obs...)
		next := Evaluate(run.end, hist, nil, prev, p)
		if prev != nil {
			events = append(events, Diff(*prev, next, run.end)...)
		} else {
			events = append(events, Diff(Assessment{}, next, run.end)...)
		}
		cur = next
		prev = &cur
	}
	levels := map[string]Level{}
	for _, rs := range cur.Relays {
		levels[rs.Relay] = rs.Level
	}
	if want := map[string]Level{"relay-1": LevelWatch, "relay-2": LevelInvestigate, "relay-3": LevelOK}; !reflect.DeepEqual(levels, want) {
		t.Errorf("levels %v, want %v", levels, want)
	}
	if cur.Global.Level != LevelInvestigate {
		t.Errorf("global %s, want investigate", cur.Global.Level)
	}
	// relay-3 starts failing too: two relays at investigate.
	more := newHistory(5*time.Minute, "relay-1: ····✓✓✓", "relay-3: ····✗✗✗")
	for i := range more.obs {
		more.obs[i].ID += 1000
		more.obs[i].RunID += 1000
	}
	for _, run := range roundsOf(more.obs) {
		hist = append(hist, run.obs...)
		next := Evaluate(run.end, hist, nil, prev, p)
		events = append(events, Diff(*prev, next, run.end)...)
		cur = next
		prev = &cur
	}
	if cur.Global.Level != LevelIncident || cur.Global.Scope != ScopeAllGmail {
		t.Fatalf("global %s %s, want incident all_gmail", cur.Global.Level, cur.Global.Scope)
	}
	if !slices.Equal(cur.Global.FailingRelays, []string{"relay-2", "relay-3"}) {
		t.Errorf("incident relays %v, want relay-2 and relay-3", cur.Global.FailingRelays)
	}
	// Every change appears once.
	seen := map[string]bool{}
	for _, e := range events {
		k := e.Relay + ":" + string(e.From) + ">" + string(e.To)
		if seen[k] {
			t.Errorf("change %s emitted twice", k)
		}
		seen[k] = true
	}
	// Restart: rebuild from the stored history, then keep going.
	restarted := Replay(hist, nil, p)
	if !reflect.DeepEqual(restarted, cur) {
		t.Fatalf("after a restart:\n%+v\nwant\n%+v", restarted, cur)
	}
	if d := Diff(cur, Evaluate(more.end(), hist, nil, &restarted, p), more.end()); len(d) != 0 {
		t.Errorf("after a restart, changes without news: %+v", d)
	}
}

func TestEvaluateCarriesRelaysWithoutNews(t *testing.T) {
	p := DefaultPolicy()
	h := newHistory(5*time.Minute, "relay-1: ✗✗✗", "relay-2: ✓✓✓")
	a := Evaluate(h.end(), h.obs, nil, nil, p)
	// The next evaluation only loads relay-2's newest run.
	later := newHistory(5*time.Minute, "relay-2: ····✓")
	for i := range later.obs {
		later.obs[i].ID += 100
		later.obs[i].RunID += 100
	}
	b := Evaluate(later.end(), later.obs, nil, &a, p)
	r1 := mustRelay(t, b, "relay-1")
	if r1.Level != LevelInvestigate || !slices.Equal(r1.Evidence, h.failingIDs("relay-1")) {
		t.Errorf("relay-1 without news: %+v, want investigate with its evidence", r1)
	}
	if r2 := mustRelay(t, b, "relay-2"); r2.ConsecutiveSuccesses != 4 {
		t.Errorf("relay-2 streak %d, want 4 (3 known + 1 new)", r2.ConsecutiveSuccesses)
	}
}

func TestEvidenceIsBounded(t *testing.T) {
	h := newHistory(5*time.Minute, "relay-1: ✗✗✗✗✗✗✗✗✗✗")
	a := Evaluate(h.end(), h.obs, nil, nil, DefaultPolicy())
	rs := mustRelay(t, a, "relay-1")
	ids := h.failingIDs("relay-1")
	if !slices.Equal(rs.Evidence, ids[len(ids)-maxEvidence:]) {
		t.Errorf("evidence %v, want the newest %d of %v", rs.Evidence, maxEvidence, ids)
	}
	if rs.ConsecutiveFailures != 10 || rs.LastFailureClass != "tls_reset" || !rs.LastFailure.Equal(h.end()) {
		t.Errorf("streak or last failure wrong: %+v", rs)
	}
	if !slices.Equal(rs.FailingSources, testSources) || len(rs.FailingMX) != 2 || len(rs.FailingIPs) != 2 {
		t.Errorf("failing breadth: %v %v %v", rs.FailingMX, rs.FailingIPs, rs.FailingSources)
	}
}

func TestAgentDownKeepsGmailLevel(t *testing.T) {
	h := newHistory(5*time.Minute, "relay-1: ✗✗✗aa")
	rs := mustRelay(t, Evaluate(h.end(), h.obs, nil, nil, DefaultPolicy()), "relay-1")
	if rs.Level != LevelInvestigate || rs.Scope != ScopeOneHost || !rs.AgentDown || rs.LastFailureClass != "agent_unreachable" {
		t.Errorf("state %+v, want investigate one_host with the agent down", rs)
	}
	h = newHistory(5*time.Minute, "relay-1: ✗✗✗aa✓✓a")
	rs = mustRelay(t, Evaluate(h.end(), h.obs, nil, nil, DefaultPolicy()), "relay-1")
	if rs.Level != LevelOK || rs.Scope != ScopeRelayAgent || !strings.Contains(rs.Advice, "agent") {
		t.Errorf("state %+v, want ok with relay_agent advice", rs)
	}
}

func TestFlapping(t *testing.T) {
	now := t0.Add(2 * time.Hour)
	var changes []Change
	add := func(relay string, minutesAgo int, from, to Level) {
		changes = append(changes, Change{Relay: relay, From: from, To: to, At: now.Add(-time.Duration(minutesAgo) * time.Minute)})
	}
	// relay-1 goes up and down five times in the hour.
	add("relay-1", 55, LevelOK, LevelWatch)
	add("relay-1", 45, LevelWatch, LevelInvestigate)
	add("relay-1", 30, LevelInvestigate, LevelOK)
	add("relay-1", 20, LevelOK, LevelInvestigate)
	add("relay-1", 5, LevelInvestigate, LevelOK)
	// relay-2 changed often, but long ago, and twice recently.
	for m := 70; m < 120; m += 10 {
		add("relay-2", m, LevelOK, LevelWatch)
	}
	add("relay-2", 10, LevelOK, LevelWatch)
	add("relay-2", 2, LevelWatch, LevelOK)
	// The global level flapped as well, at exactly the limit.
	for m := range 4 {
		add("", 10*m+1, LevelInvestigate, LevelIncident)
	}
	got := Flapping(changes, now, time.Hour, 4)
	want := []Flap{{Relay: "relay-1", Changes: 5, Since: now.Add(-55 * time.Minute)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Flapping = %+v, want %+v", got, want)
	}
	got = Flapping(changes, now, time.Hour, 3)
	if len(got) != 2 || got[0].Relay != "" || got[1].Relay != "relay-1" {
		t.Errorf("with limit 3: %+v, want the global level then relay-1", got)
	}
	if got := Flapping(nil, now, time.Hour, 0); got != nil {
		t.Errorf("no changes: %+v", got)
	}
}

func TestEvidenceOfANewEpisodeCoversTheRule(t *testing.T) {
	// Back to ok after two successes, then one more failure makes three of
	// the last five: the evidence names all three failing runs in there.
	h := newHistory(5*time.Minute, "relay-1: ✗✗✗✓✓✗")
	rs := mustRelay(t, Evaluate(h.end(), h.obs, nil, nil, DefaultPolicy()), "relay-1")
	ids := h.failingIDs("relay-1")
	if rs.Level != LevelInvestigate || !slices.Equal(rs.Evidence, ids[4:]) {
		t.Errorf("state %s evidence %v, want investigate with %v", rs.Level, rs.Evidence, ids[4:])
	}
}
