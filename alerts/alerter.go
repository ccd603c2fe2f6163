// Package alerts turns escalation levels into Slack alerts that are never
// lost and never doubled.
//
// It reconciles instead of reacting to events: Sync compares the current
// assessment with the incidents stored in SQLite and writes what is missing
// to the outbox, each message under its own idempotency key. Running Sync
// twice, or after a restart, therefore writes nothing twice. For every
// relay, and for the level across relays (relay ""):
//
//  1. a level at or above the alert threshold (investigate; watch too with
//     PostWatch; incident for the global level) without an open incident is
//     first confirmed by an automatic re-probe through the Monitor (the
//     same relay again and, where one exists, an active second relay
//     toward the same MX addresses; runs stored with trigger confirm).
//     Still failing: an incident is opened and one alert is enqueued
//     (key "alert:<id>") with the level, scope, advice, both
//     confirmation results, the end of the failing transcript and the
//     buttons Re-run, Acknowledge and Mute 1h. Passing: a blip, logged only;
//  2. a level that rises while its incident is open updates the alert
//     (chat.update), notes the rise in its thread, and records the new
//     level in the incident (storage.SetIncidentLevel);
//  3. a level back below the threshold (escalation falls to ok only after R
//     successes) resolves the incident with a note in the alert's thread
//     saying how long it lasted, and updates the alert to resolved;
//  4. a relay whose level changed more than FlapLimit times within an hour
//     is reported as flapping once per episode (an episode ends when the
//     level has not changed for an hour), and its new alerts and rises are
//     held back while it changes that often. Only changes that reach the
//     alert threshold count: watch blips without PostWatch never flap.
//
// Every later message about an alert (acknowledged, muted, risen,
// resolved, reminded) is rebuilt from its alert model (Alert), which is
// recorded in storage beside the incident (storage.Store.SetAlertModel)
// when the alert is written and when its level rises, and from the
// incident's own state. The outbox payloads carry only what Slack shows.
//
// Remind reminds of incidents at level incident that nobody acknowledged,
// every RemindEvery (issue 5: "an incident not acknowledged is reminded");
// alerts below that level are not, so acknowledging them does not speak
// of reminders stopping. Acknowledge and Mute are the buttons' actions
// (routed and authorized by package commands). The messages are
// message.Response values built by pure functions (AlertResponse,
// ResolutionResponse, ReminderResponse, FlapResponse) and delivered by the
// outbox worker.
//
// In `gmailtls serve` the alerter runs its own loop (Run): it subscribes to
// the monitor's evaluations (Observe), and reconciles, one Sync at a time
// and outside the request that caused it, with the newest evaluation
// whenever a level changed or a scheduled round ended (so a round is
// evaluated once, by the round itself), and looks for due reminders on its
// own timer.
package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/outbox"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/storage"
)

// ErrButton marks an Acknowledge or Mute button whose value is unreadable.
var ErrButton = errors.New("alerts: unreadable button")

// ErrNoChannel answers Acknowledge and Mute when no alerts channel is set.
var ErrNoChannel = errors.New("alerts are not configured: set [alerts] channel")

// Monitor is what the Alerter needs of the monitoring service
// (*monitor.Monitor).
type Monitor interface {
	// Evaluate evaluates escalation from storage and stores the level
	// changes as events (Sync without an evaluation at hand).
	Evaluate(ctx context.Context) (monitor.Evaluation, error)
	// CheckRelay probes a relay and stores the run: the confirming
	// re-probes, with trigger confirm.
	CheckRelay(ctx context.Context, c monitor.Check) (monitor.CheckResult, error)
	// ActiveRelays lists the configured relays that are not paused: where
	// a second opinion may come from.
	ActiveRelays(ctx context.Context) ([]string, error)
}

// Defaults of the Alerter's optional fields.
const (
	DefaultRemindEvery = time.Hour
	DefaultFlapLimit   = 4
	// FlapWindow is the window of the flapping rule.
	FlapWindow = time.Hour
)

// Alerter keeps Slack alerts in step with the escalation levels. Set the
// fields before the first call; it is safe for concurrent use (one Sync,
// Remind, Acknowledge or Mute at a time).
type Alerter struct {
	Store *storage.Store
	// Channel is the alerts channel ([alerts] channel). Without one,
	// Sync and Remind do nothing.
	Channel string
	// PostWatch alerts at watch too (default: investigate and above).
	PostWatch bool
	// RemindEvery is the reminder interval (default 1h).
	RemindEvery time.Duration
	// FlapLimit is the number of level changes within an hour above which
	// a relay is flapping (default 4).
	FlapLimit int
	Now       func() time.Time
	// Location is the zone of the times in messages (default time.Local).
	Location *time.Location
	Logger   *slog.Logger
	// Notify wakes the outbox worker after messages were enqueued.
	Notify func()
	// Monitor evaluates and re-probes; without one, Sync needs an
	// evaluation handed to it (Observe) and alerts are not confirmed.
	Monitor Monitor
	// RemindCheck is how often Run looks for due reminders (default
	// DefaultRemindCheck).
	RemindCheck time.Duration
	// NoReminders keeps Run from reminding ([alerts] remind_every = "0s").
	NoReminders bool

	// loop is Run's state: the wake-up and the newest evaluation.
	loop loopState

	// flapReadMax replaces maxFlapEvents in tests.
	flapReadMax int

	mu sync.Mutex
}

func (a *Alerter) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Alerter) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (a *Alerter) remindEvery() time.Duration {
	if a.RemindEvery > 0 {
		return a.RemindEvery
	}
	return DefaultRemindEvery
}

func (a *Alerter) flapLimit() int {
	if a.FlapLimit > 0 {
		return a.FlapLimit
	}
	return DefaultFlapLimit
}

// threshold is the lowest level that alerts for relay ("" = global: only
// incident, since below it the global level repeats a relay's).
func (a *Alerter) threshold(relay string) escalation.Level {
	switch {
	case relay == "":
		return escalation.LevelIncident
	case a.PostWatch:
		return escalation.LevelWatch
	}
	return escalation.LevelInvestigate
}

// syncRun is the state of one Sync.
type syncRun struct {
	now      time.Time
	as       escalation.Assessment
	openBy   map[string]storage.Incident
	enqueued bool
	// probeCtx is the caller's context, for the confirming re-probes
	// (the writes use one that is not cancelled).
	probeCtx context.Context
}

// Sync evaluates the current levels and brings the incidents and the
// outbox in line with them (see the package documentation). It returns the
// errors of the relays it could not handle, joined; the others are handled.
func (a *Alerter) Sync(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Channel == "" {
		return nil
	}
	if a.Monitor == nil {
		return errors.New("alerts: no Monitor to evaluate with")
	}
	ev, err := a.Monitor.Evaluate(ctx)
	if err != nil {
		return fmt.Errorf("alerts: evaluating escalation: %w", err)
	}
	return a.reconcile(ctx, ev.Assessment)
}

// syncWith is Sync with an assessment already evaluated (by the round or
// check that ended): nothing is evaluated again.
func (a *Alerter) syncWith(ctx context.Context, as escalation.Assessment) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Channel == "" {
		return nil
	}
	return a.reconcile(ctx, as)
}

// reconcile brings the incidents and the outbox in line with as. Must
// hold mu.
func (a *Alerter) reconcile(ctx context.Context, as escalation.Assessment) error {
	// What is decided below is written even if the caller goes away; the
	// confirming re-probes, which take network time, are not: they end
	// with the caller's context (shutdown), and a relay whose re-probe was
	// cut short is left for the next Sync.
	run := &syncRun{now: a.now(), as: as, openBy: map[string]storage.Incident{}, probeCtx: ctx}
	ctx = context.WithoutCancel(ctx)
	open, err := a.Store.OpenIncidents(ctx)
	if err != nil {
		return fmt.Errorf("alerts: reading open incidents: %w", err)
	}
	for _, inc := range open { // oldest first: the newest per relay wins
		run.openBy[inc.Relay] = inc
	}
	var errs []error
	states := append(slices.Clone(as.Relays), as.Global)
	states[len(states)-1].Relay = ""
	seen := map[string]bool{}
	for _, st := range states {
		seen[st.Relay] = true
		if err := a.syncOne(ctx, run, st); err != nil {
			errs = append(errs, err)
		}
	}
	// Incidents of relays no longer assessed (removed from the
	// configuration) are closed: nothing will resolve them otherwise.
	var gone []string
	for relay := range run.openBy {
		if !seen[relay] {
			gone = append(gone, relay)
		}
	}
	slices.Sort(gone)
	for _, relay := range gone {
		inc := run.openBy[relay]
		a.log().Info("alerts: relay no longer configured; closing its incident", "relay", relay, "incident", inc.ID)
		if err := a.resolveAs(ctx, run, inc, "The relay is no longer in the configuration; the incident is closed."); err != nil {
			errs = append(errs, err)
		}
	}
	if run.enqueued && a.Notify != nil {
		a.Notify()
	}
	return errors.Join(errs...)
}

func (a *Alerter) syncOne(ctx context.Context, run *syncRun, st escalation.RelayState) error {
	log := a.log().With("relay", relayLabel(st.Relay))
	alertable := st.Level.Rank() >= a.threshold(st.Relay).Rank()
	flapping, err := a.flapping(ctx, run, st)
	if err != nil {
		return err
	}
	inc, has := run.openBy[st.Relay]
	if !has {
		if !alertable {
			return nil
		}
		if flapping {
			log.Info("alerts: relay is flapping; alert held back while it flaps", "level", st.Level)
			return nil
		}
		return a.open(ctx, run, st)
	}
	if err := a.ensureAlert(ctx, run, inc, st); err != nil {
		return err
	}
	muted := inc.MutedUntil.After(run.now)
	if !alertable {
		if muted {
			log.Info("alerts: level back to normal; the resolution waits for the mute to end", "incident", inc.ID, "muted_until", inc.MutedUntil)
			return nil
		}
		return a.resolve(ctx, run, inc)
	}
	if cur := inc.Level; st.Level.Rank() > cur.Rank() {
		if muted || flapping {
			log.Info("alerts: level rose while muted or flapping; not posted yet", "incident", inc.ID, "from", cur, "to", st.Level)
			return nil
		}
		return a.rise(ctx, run, inc, cur, st)
	}
	return nil
}

// flapping reports a relay whose level changed more than FlapLimit times
// within FlapWindow, once per flapping episode, and says whether its
// alerts are held back (while it keeps changing that often).
func (a *Alerter) flapping(ctx context.Context, run *syncRun, st escalation.RelayState) (bool, error) {
	n := 4*a.flapLimit() + 10
	changes, complete, err := a.flapChanges(ctx, st.Relay, n)
	if err != nil {
		return false, err
	}
	flaps := escalation.Flapping(changes, run.now, FlapWindow, a.flapLimit())
	if len(flaps) == 0 {
		return false, nil
	}
	// The episode began after the last quiet FlapWindow: read further back
	// until that gap, or the first change, is in view.
	start, found := episodeStart(changes)
	most := maxFlapEvents
	if a.flapReadMax > 0 {
		most = a.flapReadMax
	}
	for !found && !complete && n < most {
		n = min(4*n, most)
		if changes, complete, err = a.flapChanges(ctx, st.Relay, n); err != nil {
			return false, err
		}
		start, found = episodeStart(changes)
	}
	if !found && !complete {
		// Longer than can be read back: the oldest change read moves on
		// with every new one, so key on its day, one report a day at most.
		start = start.UTC().Truncate(24 * time.Hour)
	}
	f := flaps[0]
	created, err := a.put(ctx, run, outbox.Message{Key: FlapKey(st.Relay, start), Kind: storage.KindAlert, Channel: a.Channel,
		Payload: outbox.Payload{Response: FlapResponse(f, st.Level, run.now, a.Location)}})
	if err != nil {
		return false, err
	}
	if created {
		a.log().Warn("alerts: relay is flapping; reported once for this episode, its alerts held back while it flaps",
			"relay", relayLabel(st.Relay), "changes", f.Changes, "since", f.Since, "episode", start)
	}
	return true, nil
}

// maxFlapEvents bounds how far back flapping reads a relay's level
// changes to find where an episode began. An episode of more changes
// than that (two weeks of a change every five-minute round) is reported
// again once a day.
const maxFlapEvents = 4096

// flapChanges returns the newest n level changes of relay (newest first)
// that count toward flapping, and whether they are all there are. Only
// changes that reach the alert threshold count: below it (watch without
// PostWatch; below incident for the global level, which there only
// repeats a relay's changes) a level going up and down posts nothing, so
// it must not post a flapping report either.
func (a *Alerter) flapChanges(ctx context.Context, relay string, n int) ([]escalation.Change, bool, error) {
	events, err := a.Store.Events(ctx, relay, n)
	if err != nil {
		return nil, false, fmt.Errorf("alerts: reading the level changes of %s: %w", relayLabel(relay), err)
	}
	floor := a.threshold(relay).Rank()
	var changes []escalation.Change
	for _, e := range events {
		if max(e.From.Rank(), e.To.Rank()) < floor {
			continue
		}
		changes = append(changes, escalation.Change{Relay: e.Relay, From: e.From, To: e.To, At: e.At})
	}
	return changes, len(events) < n, nil
}

// episodeStart returns when the flapping episode that changes (newest
// first) end in began: the oldest change reached without a quiet gap of
// FlapWindow or more. found is false when the changes run out first, so
// the episode may have begun earlier.
func episodeStart(changes []escalation.Change) (start time.Time, found bool) {
	for i, c := range changes {
		if i > 0 && start.Sub(c.At) >= FlapWindow {
			return start, true
		}
		start = c.At
	}
	return start, false
}

// open confirms a failure and, if it holds, opens an incident and enqueues
// its alert.
func (a *Alerter) open(ctx context.Context, run *syncRun, st escalation.RelayState) error {
	log := a.log().With("relay", relayLabel(st.Relay), "level", st.Level, "scope", st.Scope)
	failing, err := a.failing(ctx, st)
	if err != nil {
		return err
	}
	al := Alert{Relay: st.Relay, Level: st.Level, Scope: st.Scope, Advice: st.Advice, OpenedAt: run.now,
		FailingRelays: st.FailingRelays, Evidence: st.Evidence}
	for _, r := range newestRun(failing) {
		al.Failing = append(al.Failing, strip(r.Result))
	}
	if st.Relay == "" {
		if err := a.confirmGlobal(ctx, run, st, &al); err != nil {
			return err
		}
	} else if err := a.confirm(run, st.Relay, failing, &al); err != nil {
		return err
	}
	if !al.Confirmed {
		log.Info("alerts: the re-probe passed; a blip, no alert", "again", len(al.Again))
		return nil
	}
	if len(al.Transcript) == 0 {
		al.Transcript = transcriptOf(failing)
	}
	id, err := a.Store.OpenIncident(ctx, storage.Incident{Relay: st.Relay, Level: st.Level, Scope: st.Scope, OpenedAt: run.now})
	if err != nil {
		return fmt.Errorf("alerts: opening an incident for %s: %w", relayLabel(st.Relay), err)
	}
	al.IncidentID = id
	if err := a.putAlert(ctx, run, al); err != nil {
		return err
	}
	run.openBy[st.Relay] = storage.Incident{ID: id, Relay: st.Relay, Level: st.Level, Scope: st.Scope, OpenedAt: run.now}
	log.Warn("alerts: incident opened and alert enqueued", "incident", id, "channel", a.Channel)
	return nil
}

// putAlert stores al as its incident's alert model and enqueues the
// alert. The model goes first: a restart in between finds the incident
// without its alert and posts the stored model (ensureAlert).
func (a *Alerter) putAlert(ctx context.Context, run *syncRun, al Alert) error {
	if err := a.storeModel(ctx, al); err != nil {
		return err
	}
	_, err := a.put(ctx, run, outbox.Message{Key: AlertKey(al.IncidentID), Kind: storage.KindAlert, Channel: a.Channel,
		Payload: outbox.Payload{Response: AlertResponse(al, a.Location)}})
	return err
}

// storeModel records al as the alert model of its incident, from which
// the later updates are rebuilt (alertOf).
func (a *Alerter) storeModel(ctx context.Context, al Alert) error {
	model, err := json.Marshal(al)
	if err != nil {
		return fmt.Errorf("alerts: encoding alert %d: %w", al.IncidentID, err)
	}
	if err := a.Store.SetAlertModel(ctx, al.IncidentID, model); err != nil {
		return fmt.Errorf("alerts: recording the alert of incident %d: %w", al.IncidentID, err)
	}
	return nil
}

// confirm re-probes relay, under the caller's context (run.probeCtx), and
// records the outcome in al. A re-probe cut short by that context is an
// error: its results (timeouts, most likely) confirm nothing either way.
func (a *Alerter) confirm(run *syncRun, relay string, failing []storage.StoredResult, al *Alert) error {
	if a.Monitor == nil {
		al.Confirmed = true
		al.ConfirmNote = "No automatic re-probe is configured; not confirmed."
		return nil
	}
	ctx := run.probeCtx
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("alerts: not confirming the failure of %s; stopping: %w", relay, context.Cause(ctx))
	}
	again, second, secondRelay, err := a.reprobe(ctx, relay, failing)
	if ctx.Err() != nil {
		return fmt.Errorf("alerts: the re-probe confirming the failure of %s was stopped; the next sync repeats it: %w", relay, context.Cause(ctx))
	}
	if err != nil {
		return fmt.Errorf("alerts: confirming the failure of %s by a re-probe: %w", relay, err)
	}
	for _, r := range again {
		al.Again = append(al.Again, strip(r))
	}
	for _, r := range second {
		al.Second = append(al.Second, strip(r))
	}
	al.SecondRelay = secondRelay
	al.Confirmed = gmailFailure(again)
	for _, r := range again {
		if !r.OK && len(r.Transcript) > 0 {
			al.Transcript = Tail(r.Transcript, TranscriptLines)
			break
		}
	}
	return nil
}

// confirmGlobal confirms the level across relays: by the relays' own
// (confirmed) incidents, else by re-probing the first failing relay.
func (a *Alerter) confirmGlobal(ctx context.Context, run *syncRun, st escalation.RelayState, al *Alert) error {
	var by []string
	for _, r := range st.FailingRelays {
		if inc, ok := run.openBy[r]; ok {
			by = append(by, fmt.Sprintf("%s (#%d)", r, inc.ID))
		}
	}
	switch {
	case len(by) > 0:
		al.Confirmed = true
		al.ConfirmNote = "Confirmed by the re-probes of the alerts of " + strings.Join(by, ", ") + "."
		return nil
	case len(st.FailingRelays) > 0:
		r := st.FailingRelays[0]
		failing, err := a.failing(ctx, relayState(run.as, r))
		if err != nil {
			return err
		}
		if err := a.confirm(run, r, failing, al); err != nil {
			return err
		}
		if len(al.Again) > 0 {
			al.ConfirmNote = "Re-probe from " + r + ":"
		}
		return nil
	}
	al.Confirmed = true
	al.ConfirmNote = "Raised by Gmail-bound mail queues rising on several relays; there is no failing probe to repeat."
	return nil
}

func relayState(as escalation.Assessment, relay string) escalation.RelayState {
	if st, ok := as.Relay(relay); ok {
		return st
	}
	return escalation.RelayState{Relay: relay}
}

// failing loads the stored results behind a level (the newest few of its
// evidence, with transcripts where kept).
func (a *Alerter) failing(ctx context.Context, st escalation.RelayState) ([]storage.StoredResult, error) {
	ids := st.Evidence
	if len(ids) > 10 {
		ids = ids[len(ids)-10:]
	}
	var out []storage.StoredResult
	for _, id := range ids {
		r, err := a.Store.Result(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("alerts: reading result %d: %w", id, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// ensureAlert enqueues the alert of an open incident that has none: the
// process stopped between opening the incident and writing its alert.
func (a *Alerter) ensureAlert(ctx context.Context, run *syncRun, inc storage.Incident, st escalation.RelayState) error {
	_, found, err := a.Store.MessageByKey(ctx, AlertKey(inc.ID))
	if err != nil || found {
		return err
	}
	if al, stored, err := a.storedAlert(ctx, inc.ID); err != nil {
		return err
	} else if stored {
		// The model was recorded, the alert not yet: post the model, with
		// its confirmation results.
		a.log().Warn("alerts: incident had no alert (restart); enqueuing its recorded alert now", "incident", inc.ID, "relay", relayLabel(inc.Relay))
		_, err := a.put(ctx, run, outbox.Message{Key: AlertKey(inc.ID), Kind: storage.KindAlert, Channel: a.Channel,
			Payload: outbox.Payload{Response: AlertResponse(al, a.Location)}})
		return err
	}
	al := Alert{IncidentID: inc.ID, Relay: inc.Relay, Level: inc.Level, Scope: inc.Scope,
		Advice: escalation.AdviceFor(inc.Level, inc.Scope), OpenedAt: inc.OpenedAt,
		FailingRelays: st.FailingRelays, Evidence: st.Evidence, Confirmed: true,
		ConfirmNote: "gmailtls restarted before this alert was written; the confirmation results are in the history."}
	a.log().Warn("alerts: incident had no alert (restart); enqueuing it now", "incident", inc.ID, "relay", relayLabel(inc.Relay))
	return a.putAlert(ctx, run, al)
}

// resolve closes an incident: a note in the alert's thread, the alert
// updated to resolved. The messages are written before the incident is
// closed, so a restart in between writes them again (a no-op) and closes it.
func (a *Alerter) resolve(ctx context.Context, run *syncRun, inc storage.Incident) error {
	return a.resolveAs(ctx, run, inc, "")
}

// resolveAs is resolve with a note saying why, when it is not the level
// back to ok.
func (a *Alerter) resolveAs(ctx context.Context, run *syncRun, inc storage.Incident, why string) error {
	al, err := a.alertOf(ctx, inc)
	if err != nil {
		return err
	}
	al.ResolvedAt = run.now
	al.ResolvedNote = why
	if _, err := a.put(ctx, run, outbox.Message{Key: ResolutionKey(inc.ID), Kind: storage.KindResolution, Channel: a.Channel,
		ThreadKey: AlertKey(inc.ID), Payload: outbox.Payload{Response: ResolutionResponse(al, run.now, a.Location)}}); err != nil {
		return err
	}
	if _, err := a.put(ctx, run, outbox.Message{Key: ResolvedKey(inc.ID), Kind: storage.KindUpdate, Channel: a.Channel,
		UpdateKey: AlertKey(inc.ID), Payload: outbox.Payload{Response: AlertResponse(al, a.Location)}}); err != nil {
		return err
	}
	if err := a.Store.ResolveIncident(ctx, inc.ID, run.now); err != nil {
		return fmt.Errorf("alerts: resolving incident %d: %w", inc.ID, err)
	}
	delete(run.openBy, inc.Relay)
	a.log().Info("alerts: incident resolved", "incident", inc.ID, "relay", relayLabel(inc.Relay), "after", Duration(run.now.Sub(inc.OpenedAt)))
	return nil
}

// rise updates the alert of an open incident to a higher level, notes it
// in the thread, and then records the level in the incident: a restart in
// between writes the messages again (a no-op) and records it.
func (a *Alerter) rise(ctx context.Context, run *syncRun, inc storage.Incident, from escalation.Level, st escalation.RelayState) error {
	al, err := a.alertOf(ctx, inc)
	if err != nil {
		return err
	}
	al.Level, al.Scope, al.Advice = st.Level, st.Scope, st.Advice
	if len(st.FailingRelays) > 0 {
		al.FailingRelays = st.FailingRelays
	}
	if _, err := a.put(ctx, run, outbox.Message{Key: LevelNoteKey(inc.ID, st.Level), Kind: storage.KindAlert, Channel: a.Channel,
		ThreadKey: AlertKey(inc.ID), Payload: outbox.Payload{Response: LevelNoteResponse(al, from, run.now, a.Location)}}); err != nil {
		return err
	}
	if _, err := a.put(ctx, run, outbox.Message{Key: LevelKey(inc.ID, st.Level), Kind: storage.KindUpdate, Channel: a.Channel,
		UpdateKey: AlertKey(inc.ID), Payload: outbox.Payload{Response: AlertResponse(al, a.Location)}}); err != nil {
		return err
	}
	// The model takes the new level once the update announcing it is
	// written, so that it never shows a level that was not announced.
	if err := a.storeModel(ctx, al); err != nil {
		return err
	}
	if err := a.Store.SetIncidentLevel(ctx, inc.ID, st.Level, st.Scope); err != nil {
		return fmt.Errorf("alerts: recording the level of incident %d: %w", inc.ID, err)
	}
	inc.Level, inc.Scope = st.Level, st.Scope
	run.openBy[inc.Relay] = inc
	a.log().Warn("alerts: level rose", "incident", inc.ID, "relay", relayLabel(inc.Relay), "from", from, "to", st.Level)
	return nil
}

// storedAlert reads the alert model recorded for incident id; stored is
// false when there is none or it cannot be read (it is logged then).
func (a *Alerter) storedAlert(ctx context.Context, id int64) (al Alert, stored bool, err error) {
	model, found, err := a.Store.AlertModel(ctx, id)
	if err != nil {
		return Alert{}, false, fmt.Errorf("alerts: %w", err)
	}
	if !found {
		return Alert{}, false, nil
	}
	if err := json.Unmarshal(model, &al); err != nil {
		a.log().Warn("alerts: the recorded alert of an incident is unreadable; rebuilding it from the incident", "incident", id, "err", err)
		return Alert{}, false, nil
	}
	al.IncidentID = id
	return al, true, nil
}

// alertOf rebuilds an incident's alert: the alert model recorded (at the
// alert, or at its latest rise) and the incident's state.
func (a *Alerter) alertOf(ctx context.Context, inc storage.Incident) (Alert, error) {
	al, stored, err := a.storedAlert(ctx, inc.ID)
	if err != nil {
		return Alert{IncidentID: inc.ID}, err
	}
	if !stored {
		al = Alert{Relay: inc.Relay, Level: inc.Level, Scope: inc.Scope,
			Advice: escalation.AdviceFor(inc.Level, inc.Scope), OpenedAt: inc.OpenedAt}
	}
	al.IncidentID = inc.ID
	// The incident's level is the truth; the model only lags behind it
	// when its update message is gone.
	if inc.Level.Rank() > al.Level.Rank() {
		al.Level, al.Scope = inc.Level, inc.Scope
		al.Advice = escalation.AdviceFor(al.Level, al.Scope)
	}
	al.AckedBy, al.AckedAt = inc.AckedBy, inc.AckedAt
	al.MutedBy, al.MutedUntil = inc.MutedBy, inc.MutedUntil
	al.ResolvedAt = inc.ResolvedAt
	return al, nil
}

func (a *Alerter) put(ctx context.Context, run *syncRun, m outbox.Message) (bool, error) {
	created, err := outbox.Put(ctx, a.Store, m)
	if err != nil {
		return false, fmt.Errorf("alerts: %w", err)
	}
	if created && run != nil {
		run.enqueued = true
	}
	return created, nil
}

// Remind enqueues a reminder, in the alert's thread, for every open
// incident at level incident that is neither acknowledged nor muted and
// whose last reminder (or opening) is RemindEvery old. Reminder n of an
// incident has its own key, so a restart never repeats one; after a long
// stop only the due one is sent, not every missed one.
func (a *Alerter) Remind(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Channel == "" {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	now := a.now()
	every := a.remindEvery()
	open, err := a.Store.OpenIncidents(ctx)
	if err != nil {
		return fmt.Errorf("alerts: reading open incidents: %w", err)
	}
	run := &syncRun{now: now}
	var errs []error
	for _, inc := range open {
		if !inc.AckedAt.IsZero() || inc.MutedUntil.After(now) {
			continue
		}
		last := inc.OpenedAt
		if inc.LastReminder.After(last) {
			last = inc.LastReminder
		}
		if now.Sub(last) < every {
			continue
		}
		if inc.Level != escalation.LevelIncident {
			continue
		}
		al, err := a.alertOf(ctx, inc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n := int(now.Sub(inc.OpenedAt) / every)
		if _, err := a.put(ctx, run, outbox.Message{Key: RemindKey(inc.ID, n), Kind: storage.KindReminder, Channel: a.Channel,
			ThreadKey: AlertKey(inc.ID), Payload: outbox.Payload{Response: ReminderResponse(al, now, a.Location)}}); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := a.Store.TouchReminder(ctx, inc.ID, now); err != nil {
			errs = append(errs, fmt.Errorf("alerts: recording the reminder of incident %d: %w", inc.ID, err))
			continue
		}
		a.log().Info("alerts: reminder enqueued", "incident", inc.ID, "relay", relayLabel(inc.Relay), "n", n)
	}
	if run.enqueued && a.Notify != nil {
		a.Notify()
	}
	return errors.Join(errs...)
}

// Acknowledge records that userID took incident incidentID on (no
// reminders, now or if it rises to level incident) and updates the alert
// to say who and when. The Response, for the
// person who pressed the button, is always meaningful; err is for the log
// (storage failures; storage.ErrNotFound for an unknown incident).
func (a *Alerter) Acknowledge(ctx context.Context, incidentID int64, userID string) (message.Response, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Channel == "" {
		return note(ErrNoChannel.Error()), ErrNoChannel
	}
	ctx = context.WithoutCancel(ctx)
	now := a.now()
	inc, err := a.Store.IncidentByID(ctx, incidentID)
	if err != nil {
		return buttonError(incidentID, err), err
	}
	if !inc.ResolvedAt.IsZero() {
		return note(fmt.Sprintf("Incident #%d (%s) was already resolved at %s.", inc.ID, who(inc.Relay), clockTime(inc.ResolvedAt, a.Location))), nil
	}
	if !inc.AckedAt.IsZero() {
		return note(fmt.Sprintf("Incident #%d (%s) was already acknowledged by %s at %s.", inc.ID, who(inc.Relay), userRef(inc.AckedBy), clockTime(inc.AckedAt, a.Location))), nil
	}
	if err := a.Store.AckIncident(ctx, incidentID, userID, now); err != nil {
		return buttonError(incidentID, err), fmt.Errorf("alerts: acknowledging incident %d: %w", incidentID, err)
	}
	if inc, err = a.Store.IncidentByID(ctx, incidentID); err != nil {
		return buttonError(incidentID, err), err
	}
	al, err := a.alertOf(ctx, inc)
	if err != nil {
		return buttonError(incidentID, err), err
	}
	run := &syncRun{now: now}
	if _, err := a.put(ctx, run, outbox.Message{Key: AckKey(inc.ID), Kind: storage.KindUpdate, Channel: a.Channel,
		UpdateKey: AlertKey(inc.ID), Payload: outbox.Payload{Response: AlertResponse(al, a.Location)}}); err != nil {
		return buttonError(incidentID, err), err
	}
	if run.enqueued && a.Notify != nil {
		a.Notify()
	}
	a.log().Info("alerts: incident acknowledged", "incident", inc.ID, "relay", relayLabel(inc.Relay), "by", inc.AckedBy)
	// Reminders are for level incident only (Remind); below it there are
	// none to stop, and the note must not promise that there were.
	after := "; no reminders will follow, even if it rises to incident."
	if inc.Level == escalation.LevelIncident {
		after = "; reminders stop."
	}
	return note(fmt.Sprintf("Incident #%d (%s) acknowledged by %s at %s%s", inc.ID, who(inc.Relay), userRef(inc.AckedBy), clockTime(inc.AckedAt, a.Location), after)), nil
}

// Mute silences incident incidentID for d (MuteFor when d <= 0): no
// reminders and no level updates until then, and a resolution waits for
// the mute to end. The alert is updated to say until when.
func (a *Alerter) Mute(ctx context.Context, incidentID int64, userID string, d time.Duration) (message.Response, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Channel == "" {
		return note(ErrNoChannel.Error()), ErrNoChannel
	}
	ctx = context.WithoutCancel(ctx)
	if d <= 0 {
		d = MuteFor
	}
	now := a.now()
	until := now.Add(d)
	inc, err := a.Store.IncidentByID(ctx, incidentID)
	if err != nil {
		return buttonError(incidentID, err), err
	}
	if !inc.ResolvedAt.IsZero() {
		return note(fmt.Sprintf("Incident #%d (%s) was already resolved at %s.", inc.ID, who(inc.Relay), clockTime(inc.ResolvedAt, a.Location))), nil
	}
	if err := a.Store.MuteIncident(ctx, incidentID, until, userID); err != nil {
		return buttonError(incidentID, err), fmt.Errorf("alerts: muting incident %d: %w", incidentID, err)
	}
	inc.MutedUntil, inc.MutedBy = until, userID
	al, err := a.alertOf(ctx, inc)
	if err != nil {
		return buttonError(incidentID, err), err
	}
	run := &syncRun{now: now}
	if _, err := a.put(ctx, run, outbox.Message{Key: MuteKey(inc.ID, until), Kind: storage.KindUpdate, Channel: a.Channel,
		UpdateKey: AlertKey(inc.ID), Payload: outbox.Payload{Response: AlertResponse(al, a.Location)}}); err != nil {
		return buttonError(incidentID, err), err
	}
	if run.enqueued && a.Notify != nil {
		a.Notify()
	}
	a.log().Info("alerts: incident muted", "incident", inc.ID, "relay", relayLabel(inc.Relay), "by", userID, "until", until)
	return note(fmt.Sprintf("Incident #%d (%s) muted by %s until %s: no reminders or updates until then.", inc.ID, who(inc.Relay), userRef(userID), clockTime(until, a.Location))), nil
}

func note(text string) message.Response {
	return message.Response{Title: text, Summary: text, Verdict: message.VerdictInfo, Ephemeral: true}
}

func buttonError(id int64, err error) message.Response {
	if errors.Is(err, storage.ErrNotFound) {
		return message.Response{Title: fmt.Sprintf("There is no incident #%d.", id), Verdict: message.VerdictRefused,
			Summary: fmt.Sprintf("no incident #%d", id), Ephemeral: true}
	}
	return message.Response{Title: fmt.Sprintf("Incident #%d could not be updated; the bot's log has the details.", id),
		Verdict: message.VerdictFail, Summary: "the incident could not be updated", Ephemeral: true}
}

// gmailFailure reports whether a result failed toward Gmail (not an agent
// failure).
func gmailFailure(rs []probe.Result) bool {
	for _, r := range rs {
		if !r.OK && !r.Failure.IsRelayFailure() {
			return true
		}
	}
	return false
}

// strip drops what an alert does not show (the transcript travels apart).
func strip(r probe.Result) probe.Result {
	r.Transcript = nil
	return r
}

// newestRun returns the results of the newest run among rs.
func newestRun(rs []storage.StoredResult) []storage.StoredResult {
	var newest int64
	for _, r := range rs {
		newest = max(newest, r.RunID)
	}
	var out []storage.StoredResult
	for _, r := range rs {
		if r.RunID == newest {
			out = append(out, r)
		}
	}
	return out
}

// transcriptOf is the tail of the newest failing transcript kept.
func transcriptOf(rs []storage.StoredResult) []string {
	for i := len(rs) - 1; i >= 0; i-- {
		if !rs[i].OK && len(rs[i].Transcript) > 0 {
			return Tail(rs[i].Transcript, TranscriptLines)
		}
	}
	return nil
}
