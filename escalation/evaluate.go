package escalation

import (
	"cmp"
	"slices"
	"time"

	"github.com/gmailtls/gmailtls/probe"
)

// maxEvidence bounds RelayState.Evidence: the newest observation IDs win.
const maxEvidence = 20

// Observation is one stored probe result, reduced to what escalation needs.
type Observation struct {
	ID       int64     // storage id; quoted as evidence
	Relay    string    // relay name
	SourceIP string    // outbound address used ("" for the default)
	MX       string    // MX host name
	IP       string    // MX address
	At       time.Time // when the probe started
	// Duration is how long the probe took (0 when unknown). It only
	// widens the run's span in time, which decides the runs that form one
	// round (see Evaluate).
	Duration time.Duration
	OK       bool
	Failure  string // probe failure class; "" when OK
	RunID    int64  // the probe run it belongs to; 0 groups by Relay and At
	// ControlFailed says that the control destination ([target]
	// control_mx), probed from the same relay in the same run, failed
	// too. A control result is never an Observation itself.
	ControlFailed bool
}

// agentFailure reports whether o is a failure of the relay's agent, which
// never counts toward Gmail.
func (o *Observation) agentFailure() bool {
	return !o.OK && probe.Failure(o.Failure).IsRelayFailure()
}

// QueueSample is the Gmail-bound deferred mail of one relay at one time, as
// reported by its agent (GET /v1/queue).
type QueueSample struct {
	Relay     string
	At        time.Time
	Deferred  int           // deferred messages with a Gmail recipient
	OldestAge time.Duration // age of the oldest of them
}

// RelayState is the escalation state of one relay, or, with Relay "", the
// global state across relays.
type RelayState struct {
	Relay string
	Level Level
	Scope Scope
	// Cause is what the failure classes behind the level point at: the
	// cause of the majority of the failing attempts among the last K when
	// the level was set, each attempt under its most telling failure
	// (MostTelling); CauseMixed without a majority. Across relays at
	// incident: the relays' shared cause. With the scope relay_agent:
	// CauseAgent. CauseNone at ok.
	Cause Cause
	// Advice is Advice(Level, Scope, Cause).
	Advice string
	// Evidence holds the IDs of the failing observations that caused the
	// level, ascending, at most the 20 highest (storage assigns IDs in
	// insertion order, so these are the newest).
	Evidence []int64
	// Streaks of attempts (probe runs) toward Gmail; agent failures neither
	// break nor extend them. Zero in the global state.
	ConsecutiveFailures, ConsecutiveSuccesses int
	// LastSuccess and LastFailure are the newest successful and failing
	// observations (LastFailure includes agent failures, which are shown to
	// people but do not count toward the level); LastFailureClass is the
	// most telling failure class (MostTelling) of the probe run that holds
	// that failure, so that an IPv4 connect_timeout is named rather than
	// the IPv6 connect_unreachable of the same run.
	LastSuccess, LastFailure time.Time
	LastFailureClass         string
	// What the failing attempts behind the level have in common: the MX
	// hosts, MX addresses and outbound addresses that failed (sorted).
	FailingMX, FailingIPs, FailingSources []string
	// AgentDown: the relay's newest run held only agent failures
	// (agent_unreachable, agent_error). In the global state: every relay's
	// agent is down.
	AgentDown bool

	// QueueDeferred is the newest Gmail-bound deferred count reported for
	// the relay (0 without samples); QueueRising says it rose within
	// Policy.Window. In the global state: the sum, and whether the queue
	// rule of an incident holds.
	QueueDeferred int
	QueueRising   bool
	// What the relay's own mail log said in its newest LogSample whose
	// window covers now (zero without one): TLS and connection failures
	// toward the target's MX addresses, Gmail-bound queue IDs deferred and
	// not delivered, and those delivered after a failure.
	LogFailures, LogStuck, LogDeliveredLater int
	// LogRule is set when the level, scope and cause are the mail log
	// rule's (the probes alone say ok; docs/architecture.md, "Mail log
	// rules"). DeliveredLater is set on a watch (one_event) whose failing
	// mail the log shows delivered later: a transient transport event.
	LogRule, DeliveredLater bool
	// PolicyRule is set when the level is investigate only because the
	// relay's TLS policy makes Gmail-bound mail wait (TLS policy rules);
	// like LogRule it is not carried to the next evaluation.
	PolicyRule bool
	// FailingRelays, in the global state, names the relays behind the
	// global level: those that took part in the incident, or those above
	// ok. Empty for a relay.
	FailingRelays []string
	// LastRunAt and LastRunID identify the newest run already counted (the
	// start time and RunID of that probe run, agent failures included);
	// Evaluate uses them to tell new runs from runs the previous assessment
	// has seen. LastAttemptAt is when the newest attempt toward Gmail
	// ended.
	LastRunAt     time.Time
	LastRunID     int64
	LastAttemptAt time.Time
}

// Assessment is the escalation state of every relay and across relays.
type Assessment struct {
	Relays []RelayState // sorted by name
	Global RelayState   // Relay ""
}

// Relay returns the state of the named relay and whether it is known.
func (a *Assessment) Relay(name string) (RelayState, bool) {
	i, ok := slices.BinarySearchFunc(a.Relays, name, func(s RelayState, n string) int { return cmp.Compare(s.Relay, n) })
	if !ok {
		return RelayState{}, false
	}
	return a.Relays[i], true
}

// run is one probe run of one relay: the unit of the attempt counts.
type run struct {
	at      time.Time // earliest observation: the run's key with runID
	runID   int64
	step    time.Time // when the run is taken into account (its latest observation, monotone per relay)
	end     time.Time // end of its span: the latest At+Duration, at least step
	obs     []*Observation
	gmail   bool // holds at least one observation judged toward Gmail: an attempt
	failed  bool // at least one of those failed
	attempt int  // index in relayWalk.attempts, -1 for agent-only runs
}

func (r *run) after(at time.Time, id int64) bool {
	if c := r.at.Compare(at); c != 0 {
		return c > 0
	}
	return r.runID > id
}

// relayWalk is the working state of one relay during Evaluate.
type relayWalk struct {
	st       RelayState
	runs     []*run // every run in the history given, by key
	attempts []*run // the runs judged toward Gmail, by key
	first    int    // index in runs of the first run not yet counted
	queue    []QueueSample
	logs     []LogSample
	policy   *TLSPolicy
	// lastAttemptAt is the step time of the newest counted attempt.
	lastAttemptAt time.Time
}

// Evaluate derives the escalation state at now from history.
//
// obs is the recent history (any order; observations after now are
// ignored). It should hold at least what Policy.Lookback asks for, and
// probe runs should be handed in complete, in the order they ran. queues
// are the agents' queue samples (those after now are ignored); they are
// judged at the end of each run and at now. prev is the previous
// assessment, nil on the first run: the state of each relay continues from
// it, and only runs newer than prev's RelayState.LastRunAt/LastRunID move
// the level; older runs still count for the rules (M of K, windows). A
// relay known to prev but absent from obs keeps its state; drop retired
// relays from prev to forget them.
//
// Runs of several relays whose spans overlap in time (from the start of a
// run's first probe to the end of its last, see Observation.Duration) are
// one round, as when a scheduled round probes every relay at once. The
// relay rules count a round's runs one by one, in the order of their last
// probes; the global rules judge the round once, when all of its runs are
// counted, so that a relay passing in the same round as failing ones is a
// relay with recent results however the runs of the round are ordered.
//
// Calling Evaluate after every complete round (a run that overlaps no
// other is a round of its own; agent failures included), with now at the
// end of the round, gives exactly the state Replay rebuilds from the whole
// history. Calling it at other times is allowed (the global rules look at
// what is recent at now) but a replay cannot reproduce those extra
// evaluations; in particular, evaluating a round before all of its runs
// are stored judges it early.
func Evaluate(now time.Time, obs []Observation, queues []QueueSample, prev *Assessment, p Policy) Assessment {
	return EvaluateInput(now, Input{Observations: obs, Queues: queues}, prev, p)
}

// EvaluateInput is Evaluate with the relays' mail log samples too: log
// samples after now are ignored; the mail log rules (docs/architecture.md,
// "Mail log rules") judge each relay's newest sample at now, and a
// relay's rising count of stuck Gmail-bound queue IDs counts for the
// incident queue rule like a rising queue.
func EvaluateInput(now time.Time, in Input, prev *Assessment, p Policy) Assessment {
	obs, queues := in.Observations, in.Queues
	p = p.withDefaults()
	walks := map[string]*relayWalk{}
	get := func(name string) *relayWalk {
		w := walks[name]
		if w == nil {
			w = &relayWalk{st: RelayState{Relay: name, Level: LevelOK}}
			walks[name] = w
		}
		return w
	}
	if prev != nil {
		for _, rs := range prev.Relays {
			w := get(rs.Relay)
			w.st = cloneState(rs)
			undoLogRule(&w.st)
			if w.st.Level == "" {
				w.st.Level = LevelOK
			}
			w.lastAttemptAt = rs.LastAttemptAt
		}
	}

	groupRuns(now, obs, get)
	for i := range queues {
		q := queues[i]
		if q.At.After(now) {
			continue
		}
		w := get(q.Relay)
		w.queue = append(w.queue, q)
	}
	for _, s := range in.Logs {
		if s.At.After(now) {
			continue
		}
		w := get(s.Relay)
		w.logs = append(w.logs, s)
	}
	for i := range in.TLSPolicies {
		// Only relays with history: a policy alone makes no state.
		if w := walks[in.TLSPolicies[i].Relay]; w != nil {
			w.policy = &in.TLSPolicies[i]
		}
	}

	names := make([]string, 0, len(walks))
	for name := range walks {
		names = append(names, name)
	}
	slices.Sort(names)
	ws := make([]*relayWalk, len(names))
	for i, name := range names {
		ws[i] = walks[name]
	}

	type pending struct {
		w *relayWalk
		r *run
	}
	var todo []pending
	for _, w := range ws {
		slices.SortStableFunc(w.queue, func(a, b QueueSample) int { return a.At.Compare(b.At) })
		slices.SortStableFunc(w.logs, func(a, b LogSample) int { return a.At.Compare(b.At) })
		w.prepare(prev != nil)
		for _, r := range w.runs[w.first:] {
			todo = append(todo, pending{w, r})
		}
	}
	// Runs of all relays, in the order they completed; ties by relay name,
	// then by run key, so the order never depends on the input's.
	slices.SortStableFunc(todo, func(x, y pending) int {
		if c := x.r.step.Compare(y.r.step); c != 0 {
			return c
		}
		if c := cmp.Compare(x.w.st.Relay, y.w.st.Relay); c != 0 {
			return c
		}
		if c := x.r.at.Compare(y.r.at); c != 0 {
			return c
		}
		return cmp.Compare(x.r.runID, y.r.runID)
	})

	g := newGlobal(prev)
	rounds := roundEnds(todo, func(t pending) *run { return t.r })
	for i, t := range todo {
		t.w.count(t.r, p)
		if rounds[i] {
			g.step(t.r.step, ws, p)
		}
	}
	g.step(now, ws, p)

	out := Assessment{Relays: make([]RelayState, len(ws))}
	for i, w := range ws {
		w.finish(now, p)
		out.Relays[i] = w.st
	}
	out.Global = g.finish(now, ws, p)
	return out
}

// roundEnds marks, in runs sorted by step, the last run of every round:
// a round is a maximal set of runs whose spans [at, end] overlap, directly
// or through other runs of the set. Rounds never interleave in step order:
// every run of a later round starts after every run of an earlier one
// ended, so it also steps later.
func roundEnds[T any](runs []T, get func(T) *run) []bool {
	byStart := make([]int, len(runs))
	for i := range byStart {
		byStart[i] = i
	}
	slices.SortStableFunc(byStart, func(a, b int) int { return get(runs[a]).at.Compare(get(runs[b]).at) })
	round := make([]int, len(runs))
	var n int
	var end time.Time
	for k, i := range byStart {
		r := get(runs[i])
		if k > 0 && r.at.After(end) {
			n++
		}
		if k == 0 || r.end.After(end) {
			end = r.end
		}
		round[i] = n
	}
	last := make([]bool, len(runs))
	for i := range runs {
		last[i] = i == len(runs)-1 || round[i+1] != round[i]
	}
	return last
}

// groupRuns sorts the observations (up to now) into runs per relay.
func groupRuns(now time.Time, obs []Observation, get func(string) *relayWalk) {
	type key struct {
		relay string
		id    int64
		at    int64 // UnixNano when id is 0
	}
	byKey := map[key]*run{}
	for i := range obs {
		o := &obs[i]
		if o.At.After(now) {
			continue
		}
		k := key{relay: o.Relay, id: o.RunID}
		if o.RunID == 0 {
			k.at = o.At.UnixNano()
		}
		r := byKey[k]
		if r == nil {
			r = &run{at: o.At, runID: o.RunID}
			byKey[k] = r
			w := get(o.Relay)
			w.runs = append(w.runs, r)
		}
		if o.At.Before(r.at) {
			r.at = o.At
		}
		if o.At.After(r.step) {
			r.step = o.At
		}
		if end := o.At.Add(max(o.Duration, 0)); end.After(r.end) {
			r.end = end
		}
		r.obs = append(r.obs, o)
		if o.agentFailure() {
			continue
		}
		r.gmail = true
		if !o.OK {
			r.failed = true
		}
	}
}

// prepare sorts the relay's runs and finds the first run that prev has not
// counted yet.
func (w *relayWalk) prepare(hasPrev bool) {
	slices.SortFunc(w.runs, func(a, b *run) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.runID, b.runID)
	})
	var step time.Time
	for _, r := range w.runs {
		w.noteTimes(r)
		// Step times are monotone per relay so that the global order keeps
		// each relay's own order.
		if r.step.Before(step) {
			r.step = step
		}
		step = r.step
		if r.end.Before(r.step) {
			r.end = r.step
		}
		r.attempt = -1
		if r.gmail {
			r.attempt = len(w.attempts)
			w.attempts = append(w.attempts, r)
		}
	}
	w.first = 0
	if hasPrev && (!w.st.LastRunAt.IsZero() || w.st.LastRunID != 0) {
		at, id := w.st.LastRunAt, w.st.LastRunID
		w.first = len(w.runs)
		for i, r := range w.runs {
			if r.after(at, id) {
				w.first = i
				break
			}
		}
	}
}

// noteTimes keeps the newest success and failure, and the most telling
// failure class of the run that holds the newest failure.
func (w *relayWalk) noteTimes(r *run) {
	var failAt time.Time
	failed := false
	for _, o := range r.obs {
		if o.OK {
			if o.At.After(w.st.LastSuccess) {
				w.st.LastSuccess = o.At
			}
			continue
		}
		if !failed || o.At.After(failAt) {
			failAt, failed = o.At, true
		}
	}
	if !failed {
		return
	}
	class := mostTelling(r.obs)
	// Runs that end with a failure at the same time are told apart by
	// their classes, so that the input order never matters.
	anyFamily := func(string) bool { return true }
	if c := failAt.Compare(w.st.LastFailure); c > 0 || (c == 0 && moreTelling(class, w.st.LastFailureClass, anyFamily)) {
		w.st.LastFailure, w.st.LastFailureClass = failAt, class
	}
}

// count takes run r into account: streaks, level, scope, evidence.
func (w *relayWalk) count(r *run, p Policy) {
	st := &w.st
	st.LastRunAt, st.LastRunID = r.at, r.runID
	if !r.gmail {
		return // the agent's trouble: no attempt toward Gmail
	}
	j := r.attempt
	w.lastAttemptAt = r.step
	st.LastAttemptAt = r.step
	if !r.failed {
		st.ConsecutiveSuccesses++
		st.ConsecutiveFailures = 0
		if st.ConsecutiveSuccesses >= p.RecoverAfter {
			w.reset()
		}
		return
	}
	st.ConsecutiveFailures++
	st.ConsecutiveSuccesses = 0
	trigger := LevelWatch
	if st.ConsecutiveFailures >= p.Consecutive ||
		w.failedAmong(j, p.K) >= p.M ||
		w.failedWithin(j, p.Window) >= p.WindowCount {
		trigger = LevelInvestigate
	}
	if st.Level == LevelOK || st.Level == "" {
		// A new episode: its evidence is every failing attempt the rules
		// looked at (the last K, and those within the window).
		st.Evidence = nil
		from := r.step.Add(-p.Window)
		for i := j - 1; i >= 0 && (i > j-p.K || w.attempts[i].step.After(from)); i-- {
			if w.attempts[i].failed {
				w.addEvidence(w.attempts[i])
			}
		}
	}
	st.Level = Max(st.Level, trigger)
	w.addEvidence(r)
	scope := w.breadth(j, p.K)
	if st.Level == LevelWatch {
		scope = ScopeOneEvent
	}
	if w.controlFailedToo(j, p.K) {
		scope = ScopeLocalInfra
	}
	st.Scope = scope
	st.Cause = w.dominantCause(j, p.K)
}

// addEvidence adds the failing Gmail observations of run r.
func (w *relayWalk) addEvidence(r *run) {
	for _, o := range r.obs {
		if !o.OK && !o.agentFailure() {
			w.st.Evidence = addEvidence(w.st.Evidence, o.ID)
		}
	}
}

// reset brings the relay back to ok.
func (w *relayWalk) reset() {
	st := &w.st
	st.Level, st.Scope, st.Cause, st.Evidence = LevelOK, ScopeNone, CauseNone, nil
	st.FailingMX, st.FailingIPs, st.FailingSources = nil, nil, nil
}

// failedAmong counts failing attempts among the k ending at j.
func (w *relayWalk) failedAmong(j, k int) int {
	n := 0
	for i := j; i >= 0 && i > j-k; i-- {
		if w.attempts[i].failed {
			n++
		}
	}
	return n
}

// failedWithin counts failing attempts in (step(j)-window, step(j)].
func (w *relayWalk) failedWithin(j int, window time.Duration) int {
	from := w.attempts[j].step.Add(-window)
	n := 0
	for i := j; i >= 0 && w.attempts[i].step.After(from); i-- {
		if w.attempts[i].failed {
			n++
		}
	}
	return n
}

// breadth looks at the failing attempts among the last k ending at j, sets
// the Failing* lists and returns the investigate scope they point to.
func (w *relayWalk) breadth(j, k int) Scope {
	type tally struct{ fail, pass bool }
	sources := map[string]*tally{}
	targets := map[string]*tally{}
	mark := func(m map[string]*tally, key string, ok bool) {
		t := m[key]
		if t == nil {
			t = &tally{}
			m[key] = t
		}
		if ok {
			t.pass = true
		} else {
			t.fail = true
		}
	}
	var mxs, ips, srcs []string
	for i := j; i >= 0 && i > j-k; i-- {
		a := w.attempts[i]
		if !a.failed {
			continue
		}
		for _, o := range a.obs {
			if o.agentFailure() {
				continue
			}
			mark(sources, o.SourceIP, o.OK)
			mark(targets, o.MX+"\x00"+o.IP, o.OK)
			if !o.OK {
				mxs = appendNonEmpty(mxs, o.MX)
				ips = appendNonEmpty(ips, o.IP)
				srcs = appendNonEmpty(srcs, o.SourceIP)
			}
		}
	}
	w.st.FailingMX, w.st.FailingIPs, w.st.FailingSources = sortedSet(mxs), sortedSet(ips), sortedSet(srcs)
	split := func(m map[string]*tally) bool {
		var failing, passing bool
		for _, t := range m {
			if t.fail {
				failing = true
			} else if t.pass {
				passing = true
			}
		}
		return failing && passing
	}
	switch {
	case len(sources) > 1 && split(sources):
		return ScopeOneSourceIP
	case split(targets):
		return ScopeMixedMX
	}
	return ScopeOneHost
}

// finish completes the relay's state at now: agent trouble, queue, advice.
func (w *relayWalk) finish(now time.Time, p Policy) {
	st := &w.st
	if n := len(w.runs); n > 0 {
		st.AgentDown = !w.runs[n-1].gmail
	}
	if n := len(w.queue); n > 0 {
		st.QueueDeferred = w.queue[n-1].Deferred
	}
	st.QueueRising = w.rising(now, p.Window)
	if st.Level == LevelOK || st.Level == "" {
		st.Level, st.Scope, st.Cause = LevelOK, ScopeNone, CauseNone
		if st.AgentDown {
			st.Scope, st.Cause = ScopeRelayAgent, CauseAgent
		}
	}
	st.Advice = Advice(st.Level, st.Scope, st.Cause)
	st.FailingRelays = nil
	if !st.AgentDown {
		w.applyLog(now, p)
		w.applyTLSPolicy()
	}
}

// rising reports whether the relay's Gmail-bound mail is piling up within
// (t-window, t]: its agent's queue samples rise, or its mail log counts
// more stuck Gmail-bound queue IDs (which include Google-hosted domains).
func (w *relayWalk) rising(t time.Time, window time.Duration) bool {
	return w.queueRising(t, window) || w.logRising(t, window)
}

// queueRising reports whether the relay's Gmail-bound queue rose within
// (t-window, t]: at least two samples, the newest above zero and above the
// oldest of them.
func (w *relayWalk) queueRising(t time.Time, window time.Duration) bool {
	from := t.Add(-window)
	var first, last *QueueSample
	for i := range w.queue {
		q := &w.queue[i]
		if !q.At.After(from) {
			continue
		}
		if q.At.After(t) {
			break
		}
		if first == nil {
			first = q
		}
		last = q
	}
	return first != nil && last != first && last.Deferred > 0 && last.Deferred > first.Deferred
}

// global is the working state across relays.
type global struct {
	level    Level
	involved map[string]bool // relays behind an incident
}

func newGlobal(prev *Assessment) *global {
	g := &global{level: LevelOK}
	if prev != nil && prev.Global.Level == LevelIncident {
		g.level = LevelIncident
		g.involved = map[string]bool{}
		for _, r := range prev.Global.FailingRelays {
			g.involved[r] = true
		}
	}
	return g
}

// rule returns the relays that make an incident at t (nil when none does).
func (g *global) rule(t time.Time, ws []*relayWalk, p Policy) map[string]bool {
	var inv, recent, rising []string
	allFailing := true
	// "Recent" is measured from the newest attempt, not from t, so that
	// the rule depends on probe results only, never on when it is asked.
	var newest time.Time
	for _, w := range ws {
		if w.lastAttemptAt.After(newest) && !w.lastAttemptAt.After(t) {
			newest = w.lastAttemptAt
		}
	}
	from := newest.Add(-p.Window)
	for _, w := range ws {
		if w.st.Scope == ScopeLocalInfra {
			// Its control destination fails too: its own network, which
			// says nothing of Gmail and never makes a Gmail incident.
			continue
		}
		if w.st.Level == LevelInvestigate {
			inv = append(inv, w.st.Relay)
		}
		if !w.lastAttemptAt.IsZero() && w.lastAttemptAt.After(from) && !w.lastAttemptAt.After(t) {
			recent = append(recent, w.st.Relay)
			if w.st.ConsecutiveFailures == 0 {
				allFailing = false
			}
		}
		if w.rising(t, p.Window) {
			rising = append(rising, w.st.Relay)
		}
	}
	var why map[string]bool
	add := func(names []string) {
		if why == nil {
			why = map[string]bool{}
		}
		for _, n := range names {
			why[n] = true
		}
	}
	if len(inv) >= p.IncidentRelays {
		add(inv)
	}
	if len(recent) >= 2 && allFailing {
		add(recent)
	}
	if len(rising) >= p.QueueRisingRelays {
		add(rising)
	}
	return why
}

// step re-evaluates the global level at t.
func (g *global) step(t time.Time, ws []*relayWalk, p Policy) {
	if why := g.rule(t, ws, p); why != nil {
		if g.level != LevelIncident {
			g.involved = map[string]bool{}
		}
		g.level = LevelIncident
		for r := range why {
			g.involved[r] = true
		}
		return
	}
	if g.level != LevelIncident {
		return
	}
	// Hysteresis: the incident holds until every relay behind it has
	// RecoverAfter consecutive successes.
	for _, w := range ws {
		if g.involved[w.st.Relay] && w.st.ConsecutiveSuccesses < p.RecoverAfter {
			return
		}
	}
	g.level, g.involved = LevelOK, nil
}

// finish builds the global state.
func (g *global) finish(now time.Time, ws []*relayWalk, p Policy) RelayState {
	st := RelayState{Level: LevelOK}
	agentsDown := len(ws) > 0
	for _, w := range ws {
		r := &w.st
		if r.LastSuccess.After(st.LastSuccess) {
			st.LastSuccess = r.LastSuccess
		}
		if r.LastFailure.After(st.LastFailure) {
			st.LastFailure, st.LastFailureClass = r.LastFailure, r.LastFailureClass
		}
		if !r.AgentDown {
			agentsDown = false
		}
		st.QueueDeferred += r.QueueDeferred
	}
	st.AgentDown = agentsDown
	if g.level == LevelIncident {
		st.Level = LevelIncident
		var mxs, ips, srcs, seenMX, seenIP []string
		var causes []Cause
		for _, w := range ws {
			for _, a := range w.attempts[max(0, len(w.attempts)-p.K):] {
				for _, o := range a.obs {
					if !o.agentFailure() {
						seenMX = appendNonEmpty(seenMX, o.MX)
						seenIP = appendNonEmpty(seenIP, o.IP)
					}
				}
			}
			if !g.involved[w.st.Relay] {
				continue
			}
			st.FailingRelays = append(st.FailingRelays, w.st.Relay)
			if w.st.Level.Rank() > LevelOK.Rank() {
				causes = append(causes, w.st.Cause)
			}
			mxs = append(mxs, w.st.FailingMX...)
			ips = append(ips, w.st.FailingIPs...)
			srcs = append(srcs, w.st.FailingSources...)
			for _, id := range w.st.Evidence {
				st.Evidence = addEvidence(st.Evidence, id)
			}
			if w.rising(now, p.Window) {
				st.QueueRising = true
			}
		}
		st.FailingMX, st.FailingIPs, st.FailingSources = sortedSet(mxs), sortedSet(ips), sortedSet(srcs)
		// Several relays failing toward some MX while other MX pass is a
		// remote path problem; failing toward all of them (or queues
		// rising with no failing probe) is route or policy.
		st.Scope = ScopeAllGmail
		if len(st.FailingIPs)+len(st.FailingMX) > 0 && (notCovered(seenIP, st.FailingIPs) || notCovered(seenMX, st.FailingMX)) {
			st.Scope = ScopeMixedMX
		}
		st.Cause = sharedCause(causes)
		st.Advice = Advice(st.Level, st.Scope, st.Cause)
		return st
	}
	// Below incident the global level mirrors the highest relay (first by
	// name among equals), which is at most investigate.
	var top *RelayState
	for _, w := range ws {
		r := &w.st
		if r.Level.Rank() > LevelOK.Rank() {
			st.FailingRelays = append(st.FailingRelays, r.Relay)
		}
		if top == nil || r.Level.Rank() > top.Level.Rank() {
			top = r
		}
	}
	if top != nil && top.Level.Rank() > LevelOK.Rank() {
		st.Level = Max(LevelOK, top.Level)
		if st.Level == LevelIncident {
			st.Level = LevelInvestigate
		}
		st.Scope, st.Cause = top.Scope, top.Cause
		st.Evidence = slices.Clone(top.Evidence)
		st.FailingMX = slices.Clone(top.FailingMX)
		st.FailingIPs = slices.Clone(top.FailingIPs)
		st.FailingSources = slices.Clone(top.FailingSources)
	}
	st.Advice = Advice(st.Level, st.Scope, st.Cause)
	if top != nil && top.Level.Rank() > LevelOK.Rank() && top.Level == st.Level && top.Advice != "" {
		// The relay's advice, which the mail log rules may have set.
		st.Advice = top.Advice
	}
	return st
}

// Replay rebuilds the assessment from the whole history, as if every
// complete probe run had been fed to Evaluate in the order the runs ran,
// each with now at the end of the run. It is what a restarted process calls
// to recover its state: the result equals the incrementally maintained one.
// now is the newest observation or queue sample.
func Replay(obs []Observation, queues []QueueSample, p Policy) Assessment {
	return ReplayInput(Input{Observations: obs, Queues: queues}, p)
}

// ReplayInput is Replay with the relays' mail log samples too; now is the
// newest observation, queue sample or log sample.
func ReplayInput(in Input, p Policy) Assessment {
	obs, queues := in.Observations, in.Queues
	var now time.Time
	for i := range in.Logs {
		if in.Logs[i].At.After(now) {
			now = in.Logs[i].At
		}
	}
	for i := range obs {
		if obs[i].At.After(now) {
			now = obs[i].At
		}
	}
	for i := range queues {
		if queues[i].At.After(now) {
			now = queues[i].At
		}
	}
	// Evaluate with no previous state counts every run in order, stepping
	// the global rules after each: the same state machine as run-by-run
	// evaluation, in one pass.
	return EvaluateInput(now, in, nil, p)
}

// addEvidence inserts id into the ascending list ev, keeping the newest
// maxEvidence.
func addEvidence(ev []int64, id int64) []int64 {
	i, found := slices.BinarySearch(ev, id)
	if found {
		return ev
	}
	if len(ev) >= maxEvidence && i == 0 {
		return ev
	}
	ev = slices.Insert(ev, i, id)
	if len(ev) > maxEvidence {
		ev = slices.Delete(ev, 0, len(ev)-maxEvidence)
	}
	return ev
}

// notCovered reports whether some element of seen is missing from the
// sorted set failing.
func notCovered(seen, failing []string) bool {
	for _, s := range seen {
		if _, ok := slices.BinarySearch(failing, s); !ok {
			return true
		}
	}
	return false
}

func appendNonEmpty(s []string, v string) []string {
	if v == "" {
		return s
	}
	return append(s, v)
}

// sortedSet sorts s and drops duplicates; nil for an empty list.
func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

func cloneState(s RelayState) RelayState {
	s.Evidence = slices.Clone(s.Evidence)
	s.FailingMX = slices.Clone(s.FailingMX)
	s.FailingIPs = slices.Clone(s.FailingIPs)
	s.FailingSources = slices.Clone(s.FailingSources)
	s.FailingRelays = slices.Clone(s.FailingRelays)
	return s
}

// controlFailedToo reports whether, in every failing run among the last k
// up to j, the control destination failed too (a failing observation of
// the run says ControlFailed): every destination fails, not only Gmail.
func (w *relayWalk) controlFailedToo(j, k int) bool {
	found := false
	for i := j; i >= 0 && i > j-k; i-- {
		a := w.attempts[i]
		if !a.failed {
			continue
		}
		control := false
		for _, o := range a.obs {
			control = control || (!o.OK && o.ControlFailed)
		}
		if !control {
			return false
		}
		found = true
	}
	return found
}
