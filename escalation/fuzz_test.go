package escalation

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/probe"
)

// historyFromBytes decodes a fuzzer's bytes into a history: each byte is
// one probe run. Bits 0-1 pick the relay, bits 2-4 the outcome, bits 5-7
// the minutes since the previous run (0 makes runs of several relays share
// a time). Runs of relay-4 carry no RunID.
func historyFromBytes(data []byte) []Observation {
	var obs []Observation
	at := t0
	var id, runID int64
	for _, b := range data {
		relay := fmt.Sprintf("relay-%d", b&3+1)
		at = at.Add(time.Duration(b>>5) * time.Minute)
		runID++
		rid := runID
		if b&3 == 3 {
			rid = 0
		}
		emit := func(src string, mx int, ok bool, f probe.Failure) {
			id++
			o := Observation{ID: id, Relay: relay, SourceIP: src, At: at, OK: ok, RunID: rid}
			if mx >= 0 {
				o.MX, o.IP = testMX[mx].host, testMX[mx].ip
			}
			if !ok {
				o.Failure = string(f)
			}
			obs = append(obs, o)
		}
		kind := (b >> 2) & 7
		switch kind {
		case 6:
			emit("", -1, false, probe.FailAgentUnreachable)
			continue
		case 7:
			emit("", -1, false, probe.FailAgentError)
		}
		for si, src := range testSources {
			for mi := range testMX {
				ok := true
				switch kind {
				case 1, 2:
					ok = false
				case 3:
					ok = si != 0
				case 4:
					ok = mi != 0
				}
				emit(src, mi, ok, probe.FailTLSReset)
			}
		}
	}
	return obs
}

// FuzzEvaluate checks the invariants on histories the fuzzer makes up:
// Replay equals run-by-run evaluation (on the whole history and on the
// lookback window), levels only fall after RecoverAfter
// successes, and Diff never reports a change that did not happen.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x24, 0x24, 0x24, 0x20, 0x20})
	f.Add([]byte{0x04, 0x05, 0x24, 0x25, 0x24, 0x25, 0x20, 0x21, 0x20, 0x21})
	f.Add([]byte{0x0c, 0x2c, 0x2c, 0x10, 0x30, 0x30, 0x38, 0x3b, 0x1b})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 200 {
			data = data[:200]
		}
		obs := historyFromBytes(data)
		p := DefaultPolicy()
		inc := incremental(obs, nil, p, false, func(step int, before, after Assessment, run testRun) {
			for _, a := range after.Relays {
				b, ok := before.Relay(a.Relay)
				if !ok || a.Level.Rank() >= b.Level.Rank() || (a.Level == LevelOK && a.ConsecutiveSuccesses >= p.RecoverAfter) {
					continue
				}
				// Several runs of the relay in one round: it may have
				// recovered and failed again inside the round.
				if runs, passed := relayRuns(run, a.Relay); runs > 1 && passed {
					continue
				}
				t.Fatalf("step %d: %s fell from %s to %s after %d successes", step, a.Relay, b.Level, a.Level, a.ConsecutiveSuccesses)
			}
			for _, c := range Diff(before, after, run.end) {
				if c.From == c.To {
					t.Fatalf("step %d: Diff reported a non-change %+v", step, c)
				}
			}
		})
		if len(obs) == 0 {
			return
		}
		r := Replay(obs, nil, p)
		if !reflect.DeepEqual(r, inc) {
			t.Fatalf("replay differs from incremental evaluation\nreplay:      %+v\nincremental: %+v", r, inc)
		}
		if w := incremental(obs, nil, p, true, nil); !reflect.DeepEqual(r, w) {
			t.Fatalf("replay differs from evaluation on the lookback window\nreplay: %+v\nwindow: %+v", r, w)
		}
	})
}

// relayRuns counts the runs of relay in a round and says whether one of
// them passed toward Gmail.
func relayRuns(round testRun, relay string) (runs int, passed bool) {
	for _, r := range runsOf(round.obs) {
		if r.relay != relay {
			continue
		}
		runs++
		gmail, failed := false, false
		for _, o := range r.obs {
			if o.agentFailure() {
				continue
			}
			gmail = true
			failed = failed || !o.OK
		}
		passed = passed || (gmail && !failed)
	}
	return runs, passed
}
