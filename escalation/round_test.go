package escalation

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestPassingRelayInTheSameRoundCounts: a relay that passes in the same
// round as the failing ones is a relay with recent results, so "every
// relay with recent results failing" does not hold, whatever the relays'
// names and whether the round is the very first one or the first after a
// pause longer than the window. Replay and evaluation round by round agree.
func TestPassingRelayInTheSameRoundCounts(t *testing.T) {
	p := DefaultPolicy()
	tests := []struct {
		name  string
		lines []string
		want  Level
	}{
		{"first round, the passing relay sorts last", []string{"relay-1: ✗", "relay-2: ✗", "relay-3: ✓"}, LevelWatch},
		{"first round, the passing relay sorts first", []string{"relay-0: ✓", "relay-1: ✗", "relay-2: ✗"}, LevelWatch},
		{"first round, the passing relay sorts between", []string{"relay-1: ✗", "relay-2: ✓", "relay-3: ✗"}, LevelWatch},
		{"first round after a pause longer than the window", []string{"relay-1: ✓·····✗", "relay-2: ✓·····✗", "relay-3: ✓·····✓"}, LevelWatch},
		{"every relay of the first round fails", []string{"relay-1: ✗", "relay-2: ✗"}, LevelIncident},
		{"every relay of the first round fails, a third relay only later", []string{"relay-1: ✗·", "relay-2: ✗·", "relay-3: ·✓"}, LevelIncident},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHistory(5*time.Minute, tc.lines...)
			replayed := Replay(h.obs, nil, p)
			if replayed.Global.Level != tc.want {
				t.Errorf("replay: global %s %s (relays %v), want %s", replayed.Global.Level, replayed.Global.Scope, replayed.Global.FailingRelays, tc.want)
			}
			inc := incremental(h.obs, nil, p, false, nil)
			if !reflect.DeepEqual(replayed, inc) {
				t.Errorf("replay differs from incremental evaluation\nreplay:      %+v\nincremental: %+v", replayed, inc)
			}
		})
	}
}

// timedRun is one run toward the two test MX hosts from one source: one
// observation per MX, started at t0 plus the offsets, each taking took.
func timedRun(relay string, runID int64, ok bool, took time.Duration, offsets ...time.Duration) []Observation {
	var out []Observation
	for i, off := range offsets {
		mx := testMX[i%len(testMX)]
		o := Observation{ID: runID*10 + int64(i), Relay: relay, MX: mx.host, IP: mx.ip, At: t0.Add(off),
			Duration: took, OK: ok, RunID: runID}
		if !ok {
			o.Failure = "tls_reset"
		}
		out = append(out, o)
	}
	return out
}

// TestRoundsOfOverlappingRuns: in a real round the relays' runs neither
// start nor end at the same instant. Runs whose spans overlap are one
// round; a run that starts after the others ended is a round of its own.
func TestRoundsOfOverlappingRuns(t *testing.T) {
	p := DefaultPolicy()
	s := time.Second
	tests := []struct {
		name string
		obs  [][]Observation
		want Level
	}{
		{"the passing relay ends last, its run overlapping the failing ones", [][]Observation{
			timedRun("relay-1", 1, false, 0, 0, 2*s),
			timedRun("relay-2", 2, false, 0, 1*s, 3*s),
			timedRun("relay-3", 3, true, 0, 2500*time.Millisecond, 4*s),
		}, LevelWatch},
		{"overlap through a third run", [][]Observation{
			timedRun("relay-1", 1, false, 0, 0, 2*s),
			timedRun("relay-2", 2, false, 0, 1*s, 5*s),
			timedRun("relay-3", 3, true, 0, 4*s, 6*s),
		}, LevelWatch},
		{"probes that took time: the spans overlap although the starts do not", [][]Observation{
			timedRun("relay-1", 1, false, 5*s, 0),
			timedRun("relay-2", 2, false, 5*s, 1*s),
			timedRun("relay-3", 3, true, 1*s, 4*s),
		}, LevelWatch},
		{"the passing relay starts after both failures ended", [][]Observation{
			timedRun("relay-1", 1, false, 0, 0, 2*s),
			timedRun("relay-2", 2, false, 0, 1*s, 3*s),
			timedRun("relay-3", 3, true, 0, 10*s, 11*s),
		}, LevelIncident},
		{"without durations, instants apart are separate rounds", [][]Observation{
			timedRun("relay-1", 1, false, 0, 0),
			timedRun("relay-2", 2, false, 0, 1*s),
			timedRun("relay-3", 3, true, 0, 4*s),
		}, LevelIncident},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var obs []Observation
			for _, r := range tc.obs {
				obs = append(obs, r...)
			}
			replayed := Replay(obs, nil, p)
			if replayed.Global.Level != tc.want {
				t.Errorf("replay: global %s %s (relays %v), want %s", replayed.Global.Level, replayed.Global.Scope, replayed.Global.FailingRelays, tc.want)
			}
			if inc := incremental(obs, nil, p, false, nil); !reflect.DeepEqual(replayed, inc) {
				t.Errorf("replay differs from incremental evaluation\nreplay:      %+v\nincremental: %+v", replayed, inc)
			}
			// The input order never matters.
			slices.Reverse(obs)
			if again := Replay(obs, nil, p); !reflect.DeepEqual(replayed, again) {
				t.Errorf("the input order changed the replay")
			}
		})
	}
}

// TestRoundEnds checks the grouping itself: rounds are contiguous in step
// order and end where no later run started before the round ended.
func TestRoundEnds(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	runs := []*run{
		{at: at(0), step: at(1), end: at(1)},
		{at: at(1), step: at(2), end: at(2)},
		{at: at(5), step: at(5), end: at(5)},
		{at: at(0), step: at(6), end: at(9)}, // long: joins everything before it
		{at: at(10), step: at(10), end: at(10)},
		{at: at(10), step: at(10), end: at(10)}, // the same instant
		{at: at(12), step: at(12), end: at(12)},
	}
	got := roundEnds(runs, func(r *run) *run { return r })
	want := []bool{false, false, false, true, false, true, true}
	if !slices.Equal(got, want) {
		t.Errorf("round ends %v, want %v", got, want)
	}
	if got := roundEnds([]*run{}, func(r *run) *run { return r }); len(got) != 0 {
		t.Errorf("no runs: %v", got)
	}
}
