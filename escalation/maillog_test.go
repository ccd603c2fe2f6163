package escalation

import (
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestLogFailuresRaiseAPassingRelay is the first mail log rule: a relay
// whose probes pass but whose MTA logged log_failures (10) TLS or
// connection failures toward the target in the last hour is not ok.
func TestLogFailuresRaiseAPassingRelay(t *testing.T) {
	h := newHistory(5*time.Minute, "relay-1: ✓✓✓")
	end := h.end()
	sample := func(tlsF, connF int, at time.Time) []LogSample {
		return []LogSample{{Relay: "relay-1", At: at, Window: time.Hour, TLSFailures: tlsF, ConnectFailures: connF, Delivered: 2}}
	}
	for _, tc := range []struct {
		name   string
		logs   []LogSample
		policy Policy
		level  Level
		scope  Scope
		cause  Cause
		advice string
	}{
		{"no log: the probes decide", nil, Policy{}, LevelOK, ScopeNone, CauseNone, Advice(LevelOK, ScopeNone, CauseNone)},
		{"30 SSL_connect failures this hour", sample(30, 0, end), Policy{}, LevelWatch, ScopeOneHost, CauseHandshake, AdviceLogHandshake},
		{"exactly the threshold, TLS and connect together", sample(6, 4, end), Policy{}, LevelWatch, ScopeOneHost, CauseHandshake, AdviceLogHandshake},
		{"connection failures outnumber TLS ones", sample(3, 12, end), Policy{}, LevelWatch, ScopeOneHost, CauseConnect, AdviceLogConnect},
		{"below the threshold", sample(9, 0, end), Policy{}, LevelOK, ScopeNone, CauseNone, Advice(LevelOK, ScopeNone, CauseNone)},
		{"a lower configured threshold", sample(5, 0, end), Policy{LogFailures: 5}, LevelWatch, ScopeOneHost, CauseHandshake, AdviceLogHandshake},
		{"a sample older than its window says nothing", sample(30, 0, end.Add(-61*time.Minute)), Policy{}, LevelOK, ScopeNone, CauseNone, Advice(LevelOK, ScopeNone, CauseNone)},
		{"a sample after now is ignored", sample(30, 0, end.Add(time.Minute)), Policy{}, LevelOK, ScopeNone, CauseNone, Advice(LevelOK, ScopeNone, CauseNone)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := EvaluateInput(end, Input{Observations: h.obs, Logs: tc.logs}, nil, tc.policy)
			rs := mustRelay(t, a, "relay-1")
			if rs.Level != tc.level || rs.Scope != tc.scope || rs.Cause != tc.cause || rs.Advice != tc.advice {
				t.Fatalf("got %s (%s, %s) %q\nwant %s (%s, %s) %q", rs.Level, rs.Scope, rs.Cause, rs.Advice, tc.level, tc.scope, tc.cause, tc.advice)
			}
			if rs.LogRule != (tc.level == LevelWatch) {
				t.Errorf("LogRule %v at %s", rs.LogRule, rs.Level)
			}
			if a.Global.Level != tc.level || a.Global.Advice != tc.advice {
				t.Errorf("global %s %q, want it to mirror the relay: %s %q", a.Global.Level, a.Global.Advice, tc.level, tc.advice)
			}
		})
	}
}

// TestLogRuleLeavesProbeLevelsAlone: the log rule only raises a relay the
// probes find ok; a relay at investigate keeps its probes' scope and
// advice, and the log's figures are shown beside them.
func TestLogRuleLeavesProbeLevelsAlone(t *testing.T) {
	h := newHistory(5*time.Minute, "relay-1: ✗✗✗")
	logs := []LogSample{{Relay: "relay-1", At: h.end(), Window: time.Hour, ConnectFailures: 40, Stuck: 3}}
	rs := mustRelay(t, EvaluateInput(h.end(), Input{Observations: h.obs, Logs: logs}, nil, Policy{}), "relay-1")
	if rs.Level != LevelInvestigate || rs.Scope != ScopeOneHost || rs.Cause != CauseHandshake || rs.LogRule ||
		rs.Advice != Advice(LevelInvestigate, ScopeOneHost, CauseHandshake) {
		t.Fatalf("got %s (%s, %s) log rule %v %q", rs.Level, rs.Scope, rs.Cause, rs.LogRule, rs.Advice)
	}
	if rs.LogFailures != 40 || rs.LogStuck != 3 {
		t.Errorf("log figures %d failures, %d stuck; want 40, 3", rs.LogFailures, rs.LogStuck)
	}
}

// TestLogRuleIsNotCarried: the level the log rule sets lasts as long as a
// sample says so; the next evaluation with a calm log is ok again, and
// Diff announces both changes.
func TestLogRuleIsNotCarried(t *testing.T) {
	h := newHistory(5*time.Minute, "relay-1: ✓✓✓")
	end := h.end()
	bad := []LogSample{{Relay: "relay-1", At: end, Window: time.Hour, TLSFailures: 30}}
	first := EvaluateInput(end, Input{Observations: h.obs, Logs: bad}, nil, Policy{})
	if rs := mustRelay(t, first, "relay-1"); rs.Level != LevelWatch {
		t.Fatalf("first evaluation: %s, want watch", rs.Level)
	}
	h.add("relay-1: ···✓")
	later := h.end()
	calm := append(bad, LogSample{Relay: "relay-1", At: later, Window: time.Hour, TLSFailures: 0, Delivered: 5})
	second := EvaluateInput(later, Input{Observations: h.obs, Logs: calm}, &first, Policy{})
	rs := mustRelay(t, second, "relay-1")
	if rs.Level != LevelOK || rs.LogRule || rs.Advice != Advice(LevelOK, ScopeNone, CauseNone) {
		t.Fatalf("after a calm log: %s log rule %v %q, want ok", rs.Level, rs.LogRule, rs.Advice)
	}
	d := Diff(first, second, later)
	if len(d) != 2 || d[0].From != LevelWatch || d[0].To != LevelOK {
		t.Fatalf("Diff %+v, want relay-1 and global watch -> ok", d)
	}
	if replay := ReplayInput(Input{Observations: h.obs, Logs: calm}, Policy{}); !reflect.DeepEqual(replay, second) {
		t.Fatalf("replay differs:\nreplay: %+v\nrun by run: %+v", replay, second)
	}
}

// TestSingleFailureDeliveredLater is the second mail log rule: a watch
// (one_event) whose failing Gmail-bound mail the log shows delivered later
// reads as a transient transport event; the level stays watch until the
// probes recover.
func TestSingleFailureDeliveredLater(t *testing.T) {
	for _, tc := range []struct {
		name       string
		line       string
		sample     LogSample
		before     bool // the sample is taken before the failure
		delivered  bool
		wantAdvice string
	}{
		{"failed once, the one queue ID went out on a retry", "relay-1: ✓✓✗", LogSample{TLSFailures: 1, DeliveredLater: 1, Delivered: 1}, false, true, AdviceDeliveredLater},
		{"after a passing probe, still watch", "relay-1: ✓✗✓", LogSample{TLSFailures: 1, DeliveredLater: 1, Delivered: 1}, false, true, AdviceDeliveredLater},
		{"a queue ID still stuck", "relay-1: ✓✓✗", LogSample{TLSFailures: 2, DeliveredLater: 1, Stuck: 1}, false, false, Advice(LevelWatch, ScopeOneEvent, CauseHandshake)},
		{"nothing delivered later", "relay-1: ✓✓✗", LogSample{TLSFailures: 1}, false, false, Advice(LevelWatch, ScopeOneEvent, CauseHandshake)},
		{"many MTA failures are no single event", "relay-1: ✓✓✗", LogSample{TLSFailures: 12, DeliveredLater: 1}, false, false, Advice(LevelWatch, ScopeOneEvent, CauseHandshake)},
		{"a sample older than the failure", "relay-1: ✓✓✗", LogSample{TLSFailures: 1, DeliveredLater: 1}, true, false, Advice(LevelWatch, ScopeOneEvent, CauseHandshake)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHistory(5*time.Minute, tc.line)
			end := h.end()
			s := tc.sample
			s.Relay, s.Window, s.At = "relay-1", time.Hour, end.Add(time.Second)
			if tc.before {
				s.At = h.slot(1)
			}
			a := EvaluateInput(end.Add(time.Second), Input{Observations: h.obs, Logs: []LogSample{s}}, nil, Policy{})
			rs := mustRelay(t, a, "relay-1")
			if rs.Level != LevelWatch || rs.Scope != ScopeOneEvent || rs.Cause != CauseHandshake {
				t.Fatalf("got %s (%s, %s), want watch (one_event, handshake)", rs.Level, rs.Scope, rs.Cause)
			}
			if rs.DeliveredLater != tc.delivered || rs.Advice != tc.wantAdvice {
				t.Fatalf("delivered later %v, advice %q\nwant %v, %q", rs.DeliveredLater, rs.Advice, tc.delivered, tc.wantAdvice)
			}
		})
	}
	// Without the log, the same single failure gets the probes' advice.
	h := newHistory(5*time.Minute, "relay-1: ✓✓✗")
	if rs := mustRelay(t, Evaluate(h.end(), h.obs, nil, nil, Policy{}), "relay-1"); rs.DeliveredLater || rs.Advice == AdviceDeliveredLater {
		t.Fatalf("no log, yet %+v", rs)
	}
}

// TestQueuesAcrossSendersCountWorkspaceMail is the third rule's input: the
// incident rule "Gmail-bound mail queues across senders" reads the
// Workspace-inclusive count. The agents' queue samples carry it (the
// queue view counts Google-hosted domains); and where the queue view
// still misses them, the mail log's stuck queue IDs (Gmail-bound by the
// MX they were tried on) rising on two relays make the incident.
func TestQueuesAcrossSendersCountWorkspaceMail(t *testing.T) {
	h := newHistory(5*time.Minute, "relay-1: ✓✓✓", "relay-2: ✓✓✓")
	end := h.end()
	flat := func(relay string) []QueueSample {
		// The old queue view: 4 of the 6 deferred messages, never rising.
		return []QueueSample{{Relay: relay, At: h.slot(1), Deferred: 4}, {Relay: relay, At: end, Deferred: 4}}
	}
	rising := func(relay string) []QueueSample {
		// The Workspace-inclusive count: 6, then 9.
		return []QueueSample{{Relay: relay, At: h.slot(1), Deferred: 6}, {Relay: relay, At: end, Deferred: 9}}
	}
	stuck := func(relay string) []LogSample {
		return []LogSample{{Relay: relay, At: h.slot(1), Window: time.Hour, TLSFailures: 2, Stuck: 6},
			{Relay: relay, At: end, Window: time.Hour, TLSFailures: 4, Stuck: 9}}
	}
	for _, tc := range []struct {
		name   string
		queues []QueueSample
		logs   []LogSample
		want   Level
	}{
		{"Gmail-only counts, flat", append(flat("relay-1"), flat("relay-2")...), nil, LevelOK},
		{"Workspace-inclusive queue samples rise", append(rising("relay-1"), rising("relay-2")...), nil, LevelIncident},
		{"flat queue view, the logs' stuck queue IDs rise", append(flat("relay-1"), flat("relay-2")...), append(stuck("relay-1"), stuck("relay-2")...), LevelIncident},
		{"one relay only", flat("relay-1"), stuck("relay-1"), LevelOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := EvaluateInput(end, Input{Observations: h.obs, Queues: tc.queues, Logs: tc.logs}, nil, Policy{})
			if a.Global.Level != tc.want {
				t.Fatalf("global %s, want %s", a.Global.Level, tc.want)
			}
			if tc.want == LevelIncident && (!a.Global.QueueRising || a.Global.Scope != ScopeAllGmail ||
				!reflect.DeepEqual(a.Global.FailingRelays, []string{"relay-1", "relay-2"})) {
				t.Fatalf("incident %+v: want queues rising on relay-1 and relay-2, all_gmail", a.Global)
			}
		})
	}
}

// genLogs draws mail log samples for the relays of obs: every few minutes,
// with failures around the threshold and queue IDs stuck or delivered.
func genLogs(r *rand.Rand, obs []Observation) []LogSample {
	relays := map[string]bool{}
	for _, o := range obs {
		relays[o.Relay] = true
	}
	var out []LogSample
	for relay := range relays {
		at := t0
		for range 1 + r.IntN(15) {
			at = at.Add(time.Duration(1+r.IntN(20)) * time.Minute)
			out = append(out, LogSample{Relay: relay, At: at, Window: time.Hour,
				TLSFailures: r.IntN(14), ConnectFailures: r.IntN(4), Delivered: r.IntN(5),
				Stuck: r.IntN(4), DeliveredLater: r.IntN(3)})
		}
	}
	return out
}

// TestPropertyReplayEqualsIncrementalWithLogs: with mail log samples,
// replaying the history still equals evaluating it round by round.
func TestPropertyReplayEqualsIncrementalWithLogs(t *testing.T) {
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 0x10ca1))
		o := genOpts{relays: 1 + r.IntN(4), runs: 1 + r.IntN(40), failures: -1, agentShare: 0.1, queues: r.IntN(2) == 0}
		obs, queues := genHistory(r, o)
		logs := genLogs(r, obs)
		p := DefaultPolicy()
		in := Input{Observations: obs, Queues: queues, Logs: logs}
		replayed := ReplayInput(in, p)
		now := lastTime(obs, queues)
		for _, s := range logs {
			if s.At.After(now) {
				now = s.At
			}
		}
		var prev *Assessment
		var hist []Observation
		for _, run := range roundsOf(obs) {
			hist = append(hist, run.obs...)
			next := EvaluateInput(run.end, Input{Observations: hist, Queues: queues, Logs: logs}, prev, p)
			prev = &next
		}
		inc := EvaluateInput(now, in, prev, p)
		if !reflect.DeepEqual(replayed, inc) {
			t.Fatalf("seed %d: replay differs from incremental evaluation\nreplay:      %+v\nincremental: %+v", seed, replayed, inc)
		}
		if d := Diff(replayed, inc, now); len(d) != 0 {
			t.Fatalf("seed %d: Diff of equal states: %+v", seed, d)
		}
	}
}

// TestLogRulesInDocs keeps docs/architecture.md's "Mail log rules" and the
// README naming the rules' advice and default.
func TestLogRulesInDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "### Mail log rules")
	if !ok {
		t.Fatal("docs/architecture.md has no section \"Mail log rules\"")
	}
	for _, want := range []string{AdviceLogHandshake, AdviceLogConnect, AdviceDeliveredLater, "`log_failures` = 10"} {
		if !strings.Contains(section, want) {
			t.Errorf("docs/architecture.md's mail log rules do not say %q", want)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "delivered later") || !strings.Contains(string(readme), "10 TLS or connection failures") {
		t.Error("README.md's escalation table does not name the mail log rules")
	}
}
