package escalation

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/probe"
)

// genOpts shapes a random history.
type genOpts struct {
	relays, runs int
	// failures bounds the failing attempts per relay (-1: no bound).
	failures int
	// agentShare is the chance of a run that only reaches the agent.
	agentShare float64
	queues     bool
}

// genHistory draws a random history: relays with one or two outbound IPs
// and one to three MX hosts of one or two addresses, probed at irregular
// times on a one-minute grid (so relays often share a time), with passing,
// failing, partly failing and agent-only runs, RunIDs or none, and queue
// samples.
func genHistory(r *rand.Rand, o genOpts) ([]Observation, []QueueSample) {
	var obs []Observation
	var queues []QueueSample
	var id, runID int64
	classes := []probe.Failure{probe.FailTLSReset, probe.FailConnectTimeout, probe.FailCertUntrusted, probe.FailStartTLSMasked, "",
		probe.FailConnectUnreachable, probe.FailSMTPRejected, probe.FailDNSError}
	for ri := range o.relays {
		relay := fmt.Sprintf("relay-%d", ri+1)
		sources := []string{""}
		if r.IntN(2) == 0 {
			sources = []string{"198.51.100.1", "198.51.100.2"}
		}
		type tgt struct{ mx, ip string }
		var targets []tgt
		for m := range 1 + r.IntN(3) {
			for i := range 1 + r.IntN(2) {
				ip := fmt.Sprintf("192.0.2.%d", 10*m+i)
				if i == 1 && r.IntN(2) == 0 { // the MX's IPv6 address
					ip = fmt.Sprintf("2001:db8::%d", 10*m+i)
				}
				targets = append(targets, tgt{fmt.Sprintf("mx%d.example", m), ip})
			}
		}
		useRunID := r.IntN(2) == 0
		failShare := []float64{0.1, 0.3, 0.6}[r.IntN(3)]
		failures := 0
		at := t0.Add(time.Duration(r.IntN(5)) * time.Minute)
		for range o.runs {
			at = at.Add(time.Duration(1+r.IntN(12)) * time.Minute)
			var rid int64
			if useRunID {
				runID++
				rid = runID
			}
			emit := func(src, mx, ip string, ok bool, f probe.Failure) {
				id++
				ob := Observation{ID: id, Relay: relay, SourceIP: src, MX: mx, IP: ip, At: at, OK: ok, RunID: rid}
				if useRunID {
					ob.At = at.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
				}
				if !ok {
					ob.Failure = string(f)
				}
				obs = append(obs, ob)
			}
			if r.Float64() < o.agentShare {
				f := probe.FailAgentUnreachable
				if r.IntN(2) == 0 {
					f = probe.FailAgentError
				}
				emit("", "", "", false, f)
				continue
			}
			fail := r.Float64() < failShare && (o.failures < 0 || failures < o.failures)
			if fail {
				failures++
			}
			partial := r.IntN(2) == 0
			badSource, badTarget := r.IntN(len(sources)), r.IntN(len(targets))
			// IPv6 addresses sometimes fail differently in the same run
			// (an IPv4 timeout beside an IPv6 without a route).
			class, class6 := classes[r.IntN(len(classes))], classes[r.IntN(len(classes))]
			for si, src := range sources {
				for ti, t := range targets {
					ok := !fail
					if fail && partial {
						ok = si != badSource && ti != badTarget
					}
					f := class
					if addrFamily(t.ip) == 6 {
						f = class6
					}
					emit(src, t.mx, t.ip, ok, f)
				}
			}
			if r.IntN(10) == 0 { // an agent hiccup inside a real run
				emit("", "", "", false, probe.FailAgentError)
			}
		}
		if o.queues {
			qat, deferred := t0, r.IntN(5)
			for range o.runs / 2 {
				qat = qat.Add(time.Duration(1+r.IntN(10)) * time.Minute)
				deferred = max(0, deferred+r.IntN(9)-3)
				queues = append(queues, QueueSample{Relay: relay, At: qat, Deferred: deferred, OldestAge: time.Duration(deferred) * time.Minute})
			}
		}
	}
	// Storage hands rows back in its own order: shuffle.
	r.Shuffle(len(obs), func(i, j int) { obs[i], obs[j] = obs[j], obs[i] })
	return obs, queues
}

// testRun is a complete probe run as a caller records it, or a round of
// such runs (relay "" when it holds several relays).
type testRun struct {
	relay string
	// start and end are the earliest and latest observation times; span
	// is the latest observation end (At+Duration).
	start, end, span time.Time
	obs              []Observation
}

// runsOf groups observations into runs ordered by their end, as the
// scheduler would record and evaluate them.
func runsOf(obs []Observation) []testRun {
	type key struct {
		relay string
		id    int64
		at    time.Time
	}
	idx := map[key]int{}
	var runs []testRun
	for _, o := range obs {
		k := key{relay: o.Relay, id: o.RunID}
		if o.RunID == 0 {
			k.at = o.At
		}
		i, ok := idx[k]
		if !ok {
			i = len(runs)
			idx[k] = i
			runs = append(runs, testRun{relay: o.Relay})
		}
		r := &runs[i]
		r.obs = append(r.obs, o)
		if len(r.obs) == 1 || o.At.Before(r.start) {
			r.start = o.At
		}
		if o.At.After(r.end) {
			r.end = o.At
		}
		if e := o.At.Add(max(o.Duration, 0)); e.After(r.span) {
			r.span = e
		}
	}
	slices.SortStableFunc(runs, func(a, b testRun) int {
		if c := a.end.Compare(b.end); c != 0 {
			return c
		}
		return cmp.Compare(a.relay, b.relay)
	})
	return runs
}

// roundsOf groups the runs into rounds, as a scheduler that probes every
// relay at once and then evaluates records them: runs whose spans (first
// start to last end) overlap, directly or through other runs, form one
// round. Rounds are ordered by time; a round's end is its latest
// observation.
func roundsOf(obs []Observation) []testRun {
	runs := runsOf(obs)
	for i := range runs {
		runs[i].span = maxTime(runs[i].span, runs[i].end)
	}
	slices.SortStableFunc(runs, func(a, b testRun) int { return a.start.Compare(b.start) })
	var rounds []testRun
	for _, r := range runs {
		if n := len(rounds); n > 0 && !r.start.After(rounds[n-1].span) {
			cur := &rounds[n-1]
			cur.obs = append(cur.obs, r.obs...)
			cur.end, cur.span = maxTime(cur.end, r.end), maxTime(cur.span, r.span)
			if cur.relay != r.relay {
				cur.relay = ""
			}
			continue
		}
		r.obs = slices.Clone(r.obs)
		rounds = append(rounds, r)
	}
	return rounds
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// incremental evaluates round by round the way a long-running process
// does (a round of runs that overlap in time, often a single run), calling
// visit after each round. With window, each evaluation only gets what
// Policy.Lookback asks for.
func incremental(obs []Observation, queues []QueueSample, p Policy, window bool, visit func(step int, before, after Assessment, run testRun)) Assessment {
	var prev *Assessment
	var hist []Observation
	var cur Assessment
	for i, run := range roundsOf(obs) {
		hist = append(hist, run.obs...)
		in := hist
		if window {
			in = lookback(hist, run.start, run.end, p)
		}
		next := Evaluate(run.end, in, queues, prev, p)
		if visit != nil {
			before := Assessment{}
			if prev != nil {
				before = *prev
			}
			visit(i, before, next, run)
		}
		cur = next
		prev = &cur
	}
	return cur
}

// lookback keeps what Policy.Lookback asks for at now, when the runs that
// started at or after since are new to the evaluation.
func lookback(hist []Observation, since, now time.Time, p Policy) []Observation {
	n, window := p.Lookback()
	keep := map[int]bool{}
	byRelay := map[string][]int{}
	runs := runsOf(hist)
	for i, run := range runs {
		byRelay[run.relay] = append(byRelay[run.relay], i)
		if run.end.After(now.Add(-window)) {
			keep[i] = true
		}
	}
	for _, idx := range byRelay {
		count := 0
		for k := len(idx) - 1; k >= 0 && count < n; k-- {
			keep[idx[k]] = true
			if !runs[idx[k]].start.Before(since) {
				continue // new: on top of the n
			}
			for _, o := range runs[idx[k]].obs {
				if !probe.Failure(o.Failure).IsRelayFailure() || o.OK {
					count++
					break
				}
			}
		}
	}
	var out []Observation
	for i, run := range runs {
		if keep[i] {
			out = append(out, run.obs...)
		}
	}
	return out
}

// lastTime is the newest observation or queue sample.
func lastTime(obs []Observation, queues []QueueSample) time.Time {
	var t time.Time
	for _, o := range obs {
		if o.At.After(t) {
			t = o.At
		}
	}
	for _, q := range queues {
		if q.At.After(t) {
			t = q.At
		}
	}
	return t
}

const seeds = 300

func TestPropertyReplayEqualsIncremental(t *testing.T) {
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 0xe5ca1a7e))
		o := genOpts{relays: 1 + r.IntN(4), runs: 1 + r.IntN(40), failures: -1, agentShare: 0.1, queues: r.IntN(2) == 0}
		obs, queues := genHistory(r, o)
		p := DefaultPolicy()
		now := lastTime(obs, queues)
		replayed := Replay(obs, queues, p)
		for _, window := range []bool{false, true} {
			inc := incremental(obs, queues, p, window, nil)
			// The process evaluates once more at now (the queue samples
			// after the last run).
			inc = Evaluate(now, obs, queues, &inc, p)
			if !reflect.DeepEqual(replayed, inc) {
				t.Fatalf("seed %d (window %v): replay differs from incremental evaluation\nreplay:      %+v\nincremental: %+v", seed, window, replayed, inc)
			}
		}
		// Restart: the replayed state, handed back to Evaluate with the
		// same history, stays what it is.
		again := Evaluate(now, obs, queues, &replayed, p)
		if !reflect.DeepEqual(replayed, again) {
			t.Fatalf("seed %d: re-evaluating the replayed state changed it\nbefore: %+v\nafter:  %+v", seed, replayed, again)
		}
		if d := Diff(replayed, again, now); len(d) != 0 {
			t.Fatalf("seed %d: Diff of an unchanged state: %+v", seed, d)
		}
	}
}

func TestPropertyNoDropWithoutRecovery(t *testing.T) {
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 0x0d20f))
		p := DefaultPolicy()
		p.RecoverAfter = 1 + r.IntN(4)
		obs, queues := genHistory(r, genOpts{relays: 1 + r.IntN(3), runs: 1 + r.IntN(50), failures: -1, agentShare: 0.1, queues: true})
		incremental(obs, queues, p, false, func(step int, before, after Assessment, run testRun) {
			for _, a := range after.Relays {
				b, ok := before.Relay(a.Relay)
				if !ok || a.Level.Rank() >= b.Level.Rank() {
					continue
				}
				if a.Level != LevelOK || a.ConsecutiveSuccesses < p.RecoverAfter {
					t.Fatalf("seed %d step %d: %s fell from %s to %s after %d successes (recover after %d)", seed, step, a.Relay, b.Level, a.Level, a.ConsecutiveSuccesses, p.RecoverAfter)
				}
			}
			if before.Global.Level == LevelIncident && after.Global.Level != LevelIncident {
				for _, name := range before.Global.FailingRelays {
					if rs, ok := after.Relay(name); ok && rs.ConsecutiveSuccesses < p.RecoverAfter {
						t.Fatalf("seed %d step %d: incident ended while %s had %d successes", seed, step, name, rs.ConsecutiveSuccesses)
					}
				}
			}
			if d := Diff(after, after, run.end); len(d) != 0 {
				t.Fatalf("seed %d step %d: Diff of a state with itself: %+v", seed, step, d)
			}
		})
	}
}

func TestPropertySingleFailureNeverAboveWatch(t *testing.T) {
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 0x5119))
		relays := 1 + r.IntN(3)
		obs, queues := genHistory(r, genOpts{relays: relays, runs: 1 + r.IntN(30), failures: 1, agentShare: 0.15})
		incremental(obs, queues, DefaultPolicy(), false, func(step int, _, after Assessment, _ testRun) {
			for _, a := range after.Relays {
				if a.Level.Rank() > LevelWatch.Rank() {
					t.Fatalf("seed %d step %d: %s at %s after a single failure", seed, step, a.Relay, a.Level)
				}
			}
			if relays == 1 && after.Global.Level.Rank() > LevelWatch.Rank() {
				t.Fatalf("seed %d step %d: global %s with one relay that failed once", seed, step, after.Global.Level)
			}
		})
	}
}

func TestPropertyAgentFailuresNeverRaise(t *testing.T) {
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 0xa9e))
		o := genOpts{relays: 1 + r.IntN(3), runs: 1 + r.IntN(30), failures: -1}
		obs, queues := genHistory(r, o)
		// The same history with agent failures added: inside existing runs
		// and as runs of their own.
		noisy := slices.Clone(obs)
		id := int64(1 << 40)
		for _, ob := range obs {
			if r.IntN(4) != 0 {
				continue
			}
			id++
			extra := Observation{ID: id, Relay: ob.Relay, At: ob.At, RunID: ob.RunID, Failure: string(probe.FailAgentError)}
			if r.IntN(2) == 0 {
				extra.At = ob.At.Add(-30 * time.Second)
				extra.RunID = 0
				extra.Failure = string(probe.FailAgentUnreachable)
			}
			noisy = append(noisy, extra)
		}
		now := lastTime(noisy, queues)
		clean, dirty := Evaluate(now, obs, queues, nil, DefaultPolicy()), Evaluate(now, noisy, queues, nil, DefaultPolicy())
		for _, d := range dirty.Relays {
			c := mustRelay(t, clean, d.Relay)
			if d.Level != c.Level || !slices.Equal(d.Evidence, c.Evidence) {
				t.Fatalf("seed %d: agent failures changed %s from %s %v to %s %v", seed, d.Relay, c.Level, c.Evidence, d.Level, d.Evidence)
			}
		}
		if dirty.Global.Level.Rank() > clean.Global.Level.Rank() {
			t.Fatalf("seed %d: agent failures raised the global level from %s to %s", seed, clean.Global.Level, dirty.Global.Level)
		}
	}
}
