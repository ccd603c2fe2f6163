package commands

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// CheckResult is one relay probed, stored and evaluated.
type CheckResult struct {
	Relay string
	// Kind is the relay's kind (local or agent).
	Kind        string
	Trigger     message.Source
	RequestedBy string
	// Options are the probe options used (MX narrowed to configured
	// target entries).
	Options relay.Options
	// RunID and ResultIDs are the stored ids; ResultIDs[i] belongs to
	// Report.Results[i].
	RunID     int64
	ResultIDs []int64
	Report    probe.Report
	// State is the relay's escalation state after this run, Global the
	// state across relays.
	State  escalation.RelayState
	Global escalation.RelayState
	// Changes are the level changes this run caused (stored as events).
	Changes []escalation.Change
}

// OK reports whether every result of the run succeeded.
func (c CheckResult) OK() bool { return c.Report.OK() }

// Failed returns the failing results with their ids.
func (c CheckResult) Failed() (results []probe.Result, ids []int64) {
	for i, r := range c.Report.Results {
		if !r.OK {
			results = append(results, r)
			if i < len(c.ResultIDs) {
				ids = append(ids, c.ResultIDs[i])
			}
		}
	}
	return results, ids
}

// AgentOnly reports whether every failure of the run is the relay agent's
// (agent_unreachable, agent_error): Gmail was not judged.
func (c CheckResult) AgentOnly() bool {
	failed, _ := c.Failed()
	if len(failed) == 0 {
		return false
	}
	for _, r := range failed {
		if !r.Failure.IsRelayFailure() {
			return false
		}
	}
	return true
}

// Evaluation is one re-evaluation of escalation, handed to OnChange with
// its changes.
type Evaluation struct {
	At         time.Time
	Assessment escalation.Assessment
	// Checks are the runs that led to the evaluation (empty when it was
	// called on its own, e.g. on a timer).
	Checks []CheckResult
	// EventIDs are the stored events, in the order of the changes.
	EventIDs []int64
}

// CheckRelay probes one relay, stores the run (with its trigger and who
// asked), re-evaluates escalation from storage, stores the level changes as
// events and hands them to OnChange. Failed probes are results, not
// errors: the error means the check could not run or not be stored.
func (h *Handler) CheckRelay(ctx context.Context, relayName string, trigger message.Source, requestedBy string, opts relay.Options) (CheckResult, error) {
	res, err := h.probeAndRecord(ctx, relayName, trigger, requestedBy, opts)
	if err != nil {
		return CheckResult{}, err
	}
	checks := []CheckResult{res}
	if _, _, err := h.evaluate(ctx, checks); err != nil {
		return res, err
	}
	return checks[0], nil
}

// CheckAll probes every configured relay at once (bounded by
// Deps.Concurrency), stores each run, then evaluates escalation once. With
// skipPaused (the scheduler), relays paused in storage are left out. The
// results come back sorted by relay name; a relay that could not be
// probed at all is logged and left out, and the error reports it.
func (h *Handler) CheckAll(ctx context.Context, trigger message.Source, requestedBy string, opts relay.Options, skipPaused bool) ([]CheckResult, error) {
	names := h.relayNames()
	if skipPaused {
		rels, err := h.store.Relays(ctx, false)
		if err != nil {
			return nil, err
		}
		now := h.now()
		paused := map[string]bool{}
		for _, r := range rels {
			if r.Paused(now) {
				paused[r.Name] = true
			}
		}
		names = slices.DeleteFunc(names, func(n string) bool { return paused[n] })
	}
	results := make([]*CheckResult, len(names))
	errs := make([]error, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(h.concurrency)
	for i, name := range names {
		g.Go(func() error {
			defer func() {
				if p := recover(); p != nil {
					errs[i] = fmt.Errorf("relay %s: internal error: %v", name, p)
					h.log.Error("commands: panic while probing a relay", "relay", name, "panic", p)
				}
			}()
			res, err := h.probeAndRecord(gctx, name, trigger, requestedBy, opts)
			if err != nil {
				errs[i] = err
				h.log.Warn("commands: relay check failed", "relay", name, "err", err)
				return nil // one relay never cancels the others
			}
			results[i] = &res
			return nil
		})
	}
	_ = g.Wait()
	var out []CheckResult
	for _, r := range results {
		if r != nil {
			out = append(out, *r)
		}
	}
	if len(out) > 0 {
		if _, _, err := h.evaluate(ctx, out); err != nil {
			return out, err
		}
	}
	return out, errors.Join(errs...)
}

// probeAndRecord probes one relay and stores the run, without evaluating.
func (h *Handler) probeAndRecord(ctx context.Context, relayName string, trigger message.Source, requestedBy string, opts relay.Options) (CheckResult, error) {
	r, err := h.runner(relayName)
	if err != nil {
		return CheckResult{}, err
	}
	if len(opts.MX) > 0 {
		narrowed := make([]string, 0, len(opts.MX))
		for _, mx := range opts.MX {
			entry, err := h.resolveMX(mx)
			if err != nil {
				return CheckResult{}, err
			}
			narrowed = append(narrowed, entry)
		}
		opts.MX = narrowed
	}
	if r.Kind() == relay.KindAgent {
		// On the relay itself, compare with the MTA's own TLS stack (the
		// agent runs it when its [agent] mta_stack allows).
		opts.MTAStack = true
	}
	started := h.now()
	var wg sync.WaitGroup
	if iq, ok := r.(relay.InfoQueuer); ok && r.Kind() == relay.KindAgent {
		wg.Go(func() { h.sampleQueue(ctx, relayName, iq) })
	}
	rep, err := r.Probe(ctx, opts)
	wg.Wait()
	if err != nil {
		if errors.Is(err, relay.ErrNotConfigured) {
			return CheckResult{}, fmt.Errorf("%w: %w", ErrTarget, err)
		}
		return CheckResult{}, fmt.Errorf("check %s: %w", relayName, err)
	}
	if rep.Relay == "" {
		rep.Relay = relayName
	}
	if rep.StartedAt.IsZero() {
		rep.StartedAt = started
	}
	for i := range rep.Results {
		if rep.Results[i].Relay == "" {
			rep.Results[i].Relay = relayName
		}
	}
	run := storage.Run{Relay: relayName, Trigger: trigger, RequestedBy: requestedBy, StartedAt: rep.StartedAt}
	// The run is stored even when the caller has gone away: the probe ran.
	runID, ids, err := h.store.RecordRun(context.WithoutCancel(ctx), run, rep.Results)
	if err != nil {
		return CheckResult{}, fmt.Errorf("check %s: storing the results: %w", relayName, err)
	}
	h.log.Debug("relay checked", "relay", relayName, "run", runID, "results", len(rep.Results), "ok", rep.OK(), "trigger", trigger)
	return CheckResult{
		Relay:       relayName,
		Kind:        r.Kind(),
		Trigger:     trigger,
		RequestedBy: requestedBy,
		Options:     opts,
		RunID:       runID,
		ResultIDs:   ids,
		Report:      rep,
	}, nil
}

// queueTimeout bounds the queue request made beside an agent's probe.
const queueTimeout = 15 * time.Second

// sampleQueue asks an agent for its Gmail-bound queue and stores the
// sample, for the queue rule of escalation and for evidence. Failures are
// logged only.
func (h *Handler) sampleQueue(ctx context.Context, relayName string, iq relay.InfoQueuer) {
	ctx, cancel := context.WithTimeout(ctx, queueTimeout)
	defer cancel()
	q, err := iq.Queue(ctx)
	if err != nil || !q.Available {
		h.log.Debug("no queue sample from relay", "relay", relayName, "err", err, "reason", q.Error)
		return
	}
	s := storage.QueueSample{Relay: relayName, At: h.now(), Deferred: q.Deferred, OldestAge: q.OldestAge,
		Recipients: q.Recipients, TopReason: q.TopReason}
	if err := h.store.RecordQueueSample(context.WithoutCancel(ctx), s); err != nil {
		h.log.Warn("could not store a queue sample", "relay", relayName, "error", err)
	}
}

// queueSamples are the stored queue samples escalation reads: the newest
// maxQueueSamples per configured relay within the replay window before
// now (a relay removed from the configuration no longer counts). A read
// failure is logged and leaves the queue rule without samples.
func (h *Handler) queueSamples(ctx context.Context, now time.Time, runners map[string]relay.Runner) []escalation.QueueSample {
	stored, err := h.store.QueueSamples(ctx, "", now.Add(-replayWindow), maxQueueSamples)
	if err != nil {
		h.log.Warn("could not read queue samples", "error", err)
		return nil
	}
	out := make([]escalation.QueueSample, 0, len(stored))
	for _, q := range stored {
		if _, ok := runners[q.Relay]; !ok {
			continue
		}
		out = append(out, escalation.QueueSample{Relay: q.Relay, At: q.At, Deferred: q.Deferred, OldestAge: q.OldestAge})
	}
	return out
}

// Evaluate re-evaluates escalation from storage, stores every level change
// as an event and hands the changes to OnChange. It is restart-safe: the
// levels come from the stored history and the levels already announced
// from the stored events, so a change is stored (and alerted) once, even
// across restarts.
func (h *Handler) Evaluate(ctx context.Context) (escalation.Assessment, []escalation.Change, error) {
	return h.evaluate(ctx, nil)
}

// evaluate is Evaluate; it fills each check's State, Global and Changes.
// OnChange is called after the evaluation lock is released, so that it may
// itself check a relay (a confirming re-probe) without deadlock.
func (h *Handler) evaluate(ctx context.Context, checks []CheckResult) (escalation.Assessment, []escalation.Change, error) {
	// Events are written even if the caller goes away half-way: a change
	// that was computed must be stored, or it would be announced again.
	ctx = context.WithoutCancel(ctx)
	next, changes, ids, now, err := h.evaluateLocked(ctx)
	if err != nil {
		return next, nil, err
	}
	for i := range checks {
		checks[i].State = stateOf(next, checks[i].Relay)
		checks[i].Global = next.Global
		for _, c := range changes {
			if c.Relay == checks[i].Relay || c.Relay == "" {
				checks[i].Changes = append(checks[i].Changes, c)
			}
		}
	}
	if len(changes) > 0 && h.onChange != nil {
		h.onChange(ctx, changes, Evaluation{At: now, Assessment: next, Checks: checks, EventIDs: ids})
	}
	return next, changes, nil
}

// evaluateLocked assesses, diffs against the announced levels and stores
// the changes, holding evalMu.
func (h *Handler) evaluateLocked(ctx context.Context) (next escalation.Assessment, changes []escalation.Change, ids []int64, now time.Time, err error) {
	h.evalMu.Lock()
	defer h.evalMu.Unlock()
	now = h.now()
	next, err = h.assess(ctx, now)
	if err != nil {
		return next, nil, nil, now, err
	}
	announced, err := h.announced(ctx, next)
	if err != nil {
		return next, nil, nil, now, err
	}
	changes = escalation.Diff(announced, next, now)
	ids = make([]int64, 0, len(changes))
	for _, c := range changes {
		id, err := h.store.AddEvent(ctx, storage.Event{
			Relay:    c.Relay,
			From:     c.From,
			To:       c.To,
			Scope:    c.Scope,
			Advice:   c.Advice,
			Evidence: c.Evidence,
			At:       c.At,
		})
		if err != nil {
			return next, nil, nil, now, fmt.Errorf("storing the escalation change of %s: %w", relayOrGlobal(c.Relay), err)
		}
		ids = append(ids, id)
		h.log.Info("escalation level changed", "relay", relayOrGlobal(c.Relay), "from", c.From, "to", c.To, "scope", c.Scope)
	}
	return next, changes, ids, now, nil
}

// Assess computes the current escalation state from storage without
// storing anything: status and reports use it, so that looking never
// changes what was announced.
func (h *Handler) Assess(ctx context.Context) (escalation.Assessment, error) {
	h.evalMu.Lock()
	defer h.evalMu.Unlock()
	return h.assess(ctx, h.now())
}

// replayWindow and replayRuns bound the history a cold start replays to
// rebuild the state: the last replayRuns runs of each relay, none older
// than replayWindow.
const (
	replayWindow = 24 * time.Hour
	replayRuns   = 50
)

// assess derives the assessment at now from stored history. Must hold
// evalMu. The state is carried from one evaluation to the next in memory,
// as escalation.Evaluate expects (only new runs move a level); after a
// restart it is rebuilt by replaying the stored history, which gives the
// same state (escalation.Replay's guarantee).
func (h *Handler) assess(ctx context.Context, now time.Time) (escalation.Assessment, error) {
	_, runners, p := h.snapshot()
	queues := h.queueSamples(ctx, now, runners)
	if h.state == nil {
		// The last replayRuns runs of each relay, none older than the
		// replay window: bounded however many results a run has.
		stored, err := h.store.Recent(ctx, time.Time{}, replayRuns)
		if err != nil {
			return escalation.Assessment{}, fmt.Errorf("reading recent results: %w", err)
		}
		from := now.Add(-replayWindow)
		stored = slices.DeleteFunc(stored, func(r storage.StoredResult) bool { return r.StartedAt.Before(from) })
		st := escalation.Replay(observations(stored, runners), queues, p)
		h.state = &st
	}
	runs, window := p.Lookback()
	names := slices.Sorted(maps.Keys(runners))
	stored, err := h.recent.results(ctx, h.store, now, window, runs, names)
	if err != nil {
		return escalation.Assessment{}, fmt.Errorf("reading recent results: %w", err)
	}
	// Relays removed from the configuration are forgotten (their history
	// stays in storage).
	prev := *h.state
	prev.Relays = slices.DeleteFunc(slices.Clone(prev.Relays), func(r escalation.RelayState) bool {
		_, ok := runners[r.Relay]
		return !ok
	})
	next := escalation.Evaluate(now, observations(stored, runners), queues, &prev, p)
	h.state = &next
	return next, nil
}

// announced rebuilds the levels already announced (stored as events) for
// every relay of next and for the global state.
func (h *Handler) announced(ctx context.Context, next escalation.Assessment) (escalation.Assessment, error) {
	var a escalation.Assessment
	last, err := h.store.LastEvents(ctx)
	if err != nil {
		return a, fmt.Errorf("reading the last escalation events: %w", err)
	}
	level := func(relayName string) escalation.RelayState {
		st := escalation.RelayState{Relay: relayName, Level: escalation.LevelOK}
		if e, ok := last[relayName]; ok {
			st.Level = e.To
			st.Scope = e.Scope
		}
		return st
	}
	for _, r := range next.Relays {
		a.Relays = append(a.Relays, level(r.Relay))
	}
	a.Global = level("")
	return a, nil
}

// observations converts stored results of the configured relays.
func observations(stored []storage.StoredResult, runners map[string]relay.Runner) []escalation.Observation {
	obs := make([]escalation.Observation, 0, len(stored))
	for _, r := range stored {
		if _, ok := runners[r.Relay]; !ok {
			continue
		}
		obs = append(obs, escalation.Observation{
			ID:       r.ID,
			Relay:    r.Relay,
			SourceIP: r.SourceIP,
			MX:       r.MX,
			IP:       r.IP,
			At:       r.StartedAt,
			OK:       r.OK,
			Failure:  string(r.Failure),
			RunID:    r.RunID,
			// The probe's span lets escalation see the runs of one round
			// (relays probed together) as one.
			Duration: time.Duration(r.Timings.Total * float64(time.Millisecond)),
		})
	}
	return obs
}

func stateOf(a escalation.Assessment, relayName string) escalation.RelayState {
	for _, r := range a.Relays {
		if r.Relay == relayName {
			return r
		}
	}
	return escalation.RelayState{Relay: relayName, Level: escalation.LevelOK}
}

func relayOrGlobal(name string) string {
	if name == "" {
		return "all relays"
	}
	return name
}
