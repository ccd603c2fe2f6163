package monitor

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// Evaluation is one evaluation of escalation, handed to the subscribers.
type Evaluation struct {
	// Seq numbers the evaluations of this Monitor, from 1: the higher is
	// the newer.
	Seq        uint64
	At         time.Time
	Assessment escalation.Assessment
	// Changes are the level changes it found, stored as events whose ids
	// are EventIDs, in the same order.
	Changes  []escalation.Change
	EventIDs []int64
	// Checks are the runs that led to it (empty when Evaluate was called
	// on its own), and Trigger their trigger.
	Checks  []CheckResult
	Trigger message.Source
}

// maxQueueSamples bounds the stored queue samples per relay that
// escalation reads.
const maxQueueSamples = 24

// replayWindow and replayRuns bound the history a cold start replays to
// rebuild the state: the last replayRuns runs of each relay, none older
// than replayWindow.
const (
	replayWindow = 24 * time.Hour
	replayRuns   = 50
)

// Evaluate re-evaluates escalation from storage under the configuration in
// force, stores every level change as an event and hands the Evaluation to
// the subscribers. It is restart-safe: the levels come from the stored
// history and the levels already announced from the stored events, so a
// change is stored (and alerted) once, even across restarts.
func (m *Monitor) Evaluate(ctx context.Context) (Evaluation, error) {
	return m.evaluate(ctx, m.Snapshot(), nil, "")
}

// evaluate is Evaluate under snap; it fills each check's State, Global and
// Changes. The subscribers are called after the evaluation lock is
// released, so that they may themselves check a relay.
func (m *Monitor) evaluate(ctx context.Context, snap *Snapshot, checks []CheckResult, trigger message.Source) (Evaluation, error) {
	// Events are written even if the caller goes away half-way: a change
	// that was computed must be stored, or it would be announced again.
	ctx = context.WithoutCancel(ctx)
	ev, err := m.evaluateLocked(ctx, snap)
	if err != nil {
		return ev, err
	}
	for i := range checks {
		checks[i].State = stateOf(ev.Assessment, checks[i].Relay)
		checks[i].Global = ev.Assessment.Global
		for _, c := range ev.Changes {
			if c.Relay == checks[i].Relay || c.Relay == "" {
				checks[i].Changes = append(checks[i].Changes, c)
			}
		}
	}
	ev.Checks, ev.Trigger = checks, trigger
	m.publish(ev)
	return ev, nil
}

// evaluateLocked assesses, diffs against the announced levels and stores
// the changes, holding evalMu.
func (m *Monitor) evaluateLocked(ctx context.Context, snap *Snapshot) (Evaluation, error) {
	m.evalMu.Lock()
	defer m.evalMu.Unlock()
	now := m.now()
	next, err := m.assess(ctx, now, snap)
	if err != nil {
		return Evaluation{At: now, Assessment: next}, err
	}
	announced, newest, err := m.announced(ctx, next)
	if err != nil {
		return Evaluation{At: now, Assessment: next}, err
	}
	diff := escalation.Diff(announced, next, now)
	if m.beforeStore != nil {
		m.beforeStore()
	}
	changes := make([]escalation.Change, 0, len(diff))
	ids := make([]int64, 0, len(diff))
	for _, c := range diff {
		// Stored only if no other replica announced a change of this
		// relay since the events were read: a change is announced once
		// however many replicas evaluate at the same time.
		id, stored, err := m.store.AddEventAfter(ctx, storage.Event{
			Relay:    c.Relay,
			From:     c.From,
			To:       c.To,
			Scope:    c.Scope,
			Advice:   c.Advice,
			Evidence: c.Evidence,
			At:       c.At,
		}, newest[c.Relay])
		if err != nil {
			return Evaluation{At: now, Assessment: next}, fmt.Errorf("storing the escalation change of %s: %w", relayOrGlobal(c.Relay), err)
		}
		if !stored {
			m.log.Info("escalation change left to another replica, which announced a change of this relay first",
				"relay", relayOrGlobal(c.Relay), "from", c.From, "to", c.To)
			continue
		}
		changes = append(changes, c)
		ids = append(ids, id)
		m.log.Info("escalation level changed", "relay", relayOrGlobal(c.Relay), "from", c.From, "to", c.To, "scope", c.Scope)
	}
	m.seq++
	return Evaluation{Seq: m.seq, At: now, Assessment: next, Changes: changes, EventIDs: ids}, nil
}

// Assess computes the current escalation state from storage without
// storing anything, under snap (nil: the configuration in force): status
// and reports use it, so that looking never changes what was announced.
func (m *Monitor) Assess(ctx context.Context, snap *Snapshot) (escalation.Assessment, error) {
	if snap == nil {
		snap = m.Snapshot()
	}
	m.evalMu.Lock()
	defer m.evalMu.Unlock()
	return m.assess(ctx, m.now(), snap)
}

// assess derives the assessment at now from stored history, with snap's
// relays and policy. Must hold evalMu. The state is carried from one
// evaluation to the next in memory, as escalation.Evaluate expects (only
// new runs move a level); after a restart it is rebuilt by replaying the
// stored history, which gives the same state (escalation.Replay's
// guarantee).
func (m *Monitor) assess(ctx context.Context, now time.Time, snap *Snapshot) (escalation.Assessment, error) {
	runners, p := snap.Runners, snap.Policy
	queues := m.queueSamples(ctx, now, runners)
	logs := m.logSamples(ctx, now, runners)
	policies := m.tlsPolicies(runners)
	if m.state == nil {
		// The last replayRuns runs of each relay, none older than the
		// replay window: bounded however many results a run has.
		stored, err := m.store.Recent(ctx, time.Time{}, replayRuns)
		if err != nil {
			return escalation.Assessment{}, fmt.Errorf("reading recent results: %w", err)
		}
		from := now.Add(-replayWindow)
		stored = slices.DeleteFunc(stored, func(r storage.StoredResult) bool { return r.StartedAt.Before(from) })
		st := escalation.ReplayInput(escalation.Input{Observations: observations(stored, runners), Queues: queues, Logs: logs, TLSPolicies: policies}, p)
		m.state = &st
	}
	runs, window := p.Lookback()
	stored, err := m.recent.results(ctx, m.store, now, window, runs, snap.Names())
	if err != nil {
		return escalation.Assessment{}, fmt.Errorf("reading recent results: %w", err)
	}
	// Relays removed from the configuration are forgotten (their history
	// stays in storage).
	prev := *m.state
	prev.Relays = slices.DeleteFunc(slices.Clone(prev.Relays), func(r escalation.RelayState) bool {
		_, ok := runners[r.Relay]
		return !ok
	})
	next := escalation.EvaluateInput(now, escalation.Input{Observations: observations(stored, runners), Queues: queues, Logs: logs, TLSPolicies: policies}, &prev, p)
	m.state = &next
	return next, nil
}

// queueSamples are the stored queue samples escalation reads: the newest
// maxQueueSamples per configured relay within the replay window before
// now (a relay removed from the configuration no longer counts). A read
// failure is logged and leaves the queue rule without samples.
func (m *Monitor) queueSamples(ctx context.Context, now time.Time, runners map[string]relay.Runner) []escalation.QueueSample {
	stored, err := m.store.QueueSamples(ctx, "", now.Add(-replayWindow), maxQueueSamples)
	if err != nil {
		m.log.Warn("could not read queue samples", "error", err)
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

// logSamples are the stored mail log samples escalation reads: the newest
// maxQueueSamples per configured relay within the replay window before
// now. A read failure is logged and leaves the mail log rules without
// samples.
func (m *Monitor) logSamples(ctx context.Context, now time.Time, runners map[string]relay.Runner) []escalation.LogSample {
	stored, err := m.store.LogSamples(ctx, "", now.Add(-replayWindow), maxQueueSamples)
	if err != nil {
		m.log.Warn("could not read mail log samples", "error", err)
		return nil
	}
	out := make([]escalation.LogSample, 0, len(stored))
	for _, l := range stored {
		if _, ok := runners[l.Relay]; !ok {
			continue
		}
		out = append(out, escalation.LogSample{Relay: l.Relay, At: l.At, Window: l.Window, TLSFailures: l.TLSFailures,
			ConnectFailures: l.ConnectFailures, Delivered: l.Delivered, Stuck: l.Stuck, DeliveredLater: l.DeliveredLater})
	}
	return out
}

// announced rebuilds the levels already announced (stored as events) for
// every relay of next and for the global state.
func (m *Monitor) announced(ctx context.Context, next escalation.Assessment) (escalation.Assessment, map[string]int64, error) {
	var a escalation.Assessment
	last, err := m.store.LastEvents(ctx)
	if err != nil {
		return a, nil, fmt.Errorf("reading the last escalation events: %w", err)
	}
	newest := make(map[string]int64, len(last))
	for relay, e := range last {
		newest[relay] = e.ID
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
	return a, newest, nil
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
			// The control MX failed in the same run: scope
			// local_infrastructure when every failing run says so.
			ControlFailed: r.ControlFailed,
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

// Levels returns the level of every relay the evaluation assessed, and the
// global level under "": what /metrics shows after it.
func (ev Evaluation) Levels() map[string]escalation.Level {
	levels := map[string]escalation.Level{"": ev.Assessment.Global.Level}
	for _, r := range ev.Assessment.Relays {
		levels[r.Relay] = r.Level
	}
	return levels
}

// StoredLevels returns the level of every configured relay, and the global
// level under "", as the stored escalation events left them (ok without
// one): what /metrics shows from the first scrape, before the first
// evaluation. Relays no longer configured are left out.
func (m *Monitor) StoredLevels(ctx context.Context) (map[string]escalation.Level, error) {
	last, err := m.store.LastEvents(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the stored escalation levels for /metrics: %w", err)
	}
	levels := map[string]escalation.Level{"": escalation.LevelOK}
	for _, r := range m.Snapshot().Config.Relays {
		levels[r.Name] = escalation.LevelOK
	}
	for name, e := range last {
		if _, ok := levels[name]; ok {
			levels[name] = e.To
		}
	}
	return levels, nil
}
