package alerts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/outbox"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/storage"
)

type clock = manualclock.Clock

// env is an alerter on a real SQLite file, with scripted probe history.
type env struct {
	t     *testing.T
	clock *clock
	path  string
	store *storage.Store
	al    *Alerter
	logs  *bytes.Buffer

	// reprobe says whether a confirming re-probe of a relay fails.
	reprobe  map[string]bool
	confirms []string
	notified int
	// mon is the Alerter's monitor: evaluate rebuilds the assessment
	// from storage, check re-probes (both replaceable by a test).
	mon *fakeMonitor
}

// fakeMonitor plays monitor.Monitor for the Alerter, over the env's store.
type fakeMonitor struct {
	evaluate func(ctx context.Context) (escalation.Assessment, error)
	check    func(ctx context.Context, relay string, mx []string) ([]probe.Result, error)
	active   []string
	// evaluations counts Evaluate calls.
	evaluations int
}

func (f *fakeMonitor) Evaluate(ctx context.Context) (monitor.Evaluation, error) {
	f.evaluations++
	a, err := f.evaluate(ctx)
	return monitor.Evaluation{Seq: uint64(f.evaluations), Assessment: a}, err
}

func (f *fakeMonitor) CheckRelay(ctx context.Context, c monitor.Check) (monitor.CheckResult, error) {
	if c.Trigger != message.SourceConfirm {
		return monitor.CheckResult{}, fmt.Errorf("re-probe of %s with trigger %q", c.Relay, c.Trigger)
	}
	rs, err := f.check(ctx, c.Relay, c.MX)
	return monitor.CheckResult{Relay: c.Relay, Trigger: c.Trigger, Report: probe.Report{Relay: c.Relay, Results: rs}}, err
}

func (f *fakeMonitor) ActiveRelays(context.Context) ([]string, error) { return f.active, nil }

func newEnv(t *testing.T, configure ...func(*Alerter)) *env {
	t.Helper()
	e := &env{t: t, clock: manualclock.New(time.Date(2026, 3, 2, 11, 0, 0, 0, time.UTC)),
		path: filepath.Join(t.TempDir(), "gmailtls.db"), reprobe: map[string]bool{}, logs: &bytes.Buffer{}}
	e.open(configure...)
	return e
}

// open opens (or reopens, as after a restart) the store and a new Alerter.
func (e *env) open(configure ...func(*Alerter)) {
	e.t.Helper()
	s, err := storage.Open(context.Background(), e.path, storage.Options{Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { s.Close() })
	e.store = s
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		e.t.Fatal(err)
	}
	e.mon = &fakeMonitor{evaluate: evaluator(s, e.clock.Now), check: e.check, active: []string{"relay-9"}}
	e.al = &Alerter{
		Store:    s,
		Channel:  "CALERTS",
		Now:      e.clock.Now,
		Location: berlin,
		Logger:   slog.New(slog.NewTextHandler(e.logs, nil)),
		Notify:   func() { e.notified++ },
		Monitor:  e.mon,
	}
	for _, f := range configure {
		f(e.al)
	}
}

// restart closes the store and opens a new one and a new Alerter on the
// same file.
func (e *env) restart(configure ...func(*Alerter)) {
	e.t.Helper()
	if err := e.store.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open(configure...)
}

// check plays the monitor's confirming re-probe: the relay itself
// (scripted by reprobe) is probed toward the whole target and its run
// stored with trigger "confirm"; relay-9, the active second relay, passes
// toward the failing MX hosts it is asked for.
func (e *env) check(ctx context.Context, relay string, mx []string) ([]probe.Result, error) {
	if relay == "relay-9" {
		if len(mx) == 0 {
			e.t.Errorf("the second relay was asked for the whole target, not the failing MX hosts")
		}
		return results("relay-9", true, e.clock.Now()), nil
	}
	e.confirms = append(e.confirms, relay)
	if len(mx) != 0 {
		e.t.Errorf("the re-probe of %s was narrowed to %v", relay, mx)
	}
	again := results(relay, !e.reprobe[relay], e.clock.Now())
	if _, _, err := e.store.RecordRun(ctx, storage.Run{Relay: relay, Trigger: message.SourceConfirm, StartedAt: e.clock.Now()}, again); err != nil {
		return nil, err
	}
	return again, nil
}

// results is one run of a relay toward two MX hosts.
func results(relay string, ok bool, at time.Time) []probe.Result {
	var out []probe.Result
	for i, mx := range []string{"gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com"} {
		r := probe.Result{Relay: relay, Engine: probe.EngineNative, SourceIP: "192.0.2.10", MX: mx, Preference: uint16(5 + 5*i),
			IP: fmt.Sprintf("142.250.102.%d", 26+i), Port: 25, StartedAt: at, OK: ok}
		if ok {
			r.TLS = &probe.TLSInfo{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", Verified: true}
			r.Timings = probe.Timings{Connect: 10, Banner: 20, EHLO: 5, StartTLS: 5, Handshake: 40, PostTLS: 5, Total: 85}
		} else {
			r.Stage, r.Failure = probe.StageHandshake, probe.FailTLSReset
			r.Error = "read tcp 192.0.2.10:40000->" + r.IP + ":25: read: connection reset by peer"
			r.Timings = probe.Timings{Connect: 10, Banner: 20, EHLO: 5, StartTLS: 5, Handshake: 3, Total: 43}
			r.Transcript = []string{"S: 220 mx.google.com ESMTP - gsmtp", "C: EHLO relay.example.net",
				"S: 250-mx.google.com at your service", "S: 250-SIZE 157286400", "S: 250-8BITMIME", "S: 250-STARTTLS",
				"S: 250-ENHANCEDSTATUSCODES", "S: 250-PIPELINING", "S: 250-CHUNKING", "S: 250 SMTPUTF8", "C: STARTTLS",
				"S: 220 2.0.0 Ready to start TLS", "!! TLS handshake: connection reset by peer"}
		}
		out = append(out, r)
	}
	return out
}

// probeRound records one scheduled run per relay (ok or failing), five
// minutes after the previous round, then syncs the alerter.
func (e *env) probeRound(outcomes map[string]bool) {
	e.t.Helper()
	e.clock.Advance(5 * time.Minute)
	names := make([]string, 0, len(outcomes))
	for n := range outcomes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if _, _, err := e.store.RecordRun(context.Background(), storage.Run{Relay: n, Trigger: message.SourceSchedule, StartedAt: e.clock.Now()},
			results(n, outcomes[n], e.clock.Now())); err != nil {
			e.t.Fatal(err)
		}
	}
	e.sync()
}

func (e *env) sync() {
	e.t.Helper()
	if err := e.al.Sync(context.Background()); err != nil {
		e.t.Fatalf("Sync: %v", err)
	}
}

// messages returns every outbox message (nothing is delivered here, so
// all are pending), in order.
func (e *env) messages() []storage.OutboxMessage {
	e.t.Helper()
	ms, err := e.store.PendingMessages(context.Background(), 0, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return ms
}

func (e *env) keys() []string {
	var out []string
	for _, m := range e.messages() {
		out = append(out, m.Key)
	}
	return out
}

func (e *env) message(key string) (storage.OutboxMessage, outbox.Payload) {
	e.t.Helper()
	m, ok, err := e.store.MessageByKey(context.Background(), key)
	if err != nil || !ok {
		e.t.Fatalf("no message %s (%v); have %v", key, err, e.keys())
	}
	p, err := outbox.DecodePayload(m.Payload)
	if err != nil {
		e.t.Fatal(err)
	}
	return m, p
}

// twoRelayIncident fails relay-1 and relay-2 three rounds in a row, both
// confirmed by their re-probes, while relay-3 passes: alerts 1 and 2 for the
// relays and 3 for the global incident.
func (e *env) twoRelayIncident() {
	e.t.Helper()
	e.reprobe["relay-1"], e.reprobe["relay-2"] = true, true
	e.probeRound(map[string]bool{"relay-1": true, "relay-2": true, "relay-3": true})
	for range 3 {
		e.probeRound(map[string]bool{"relay-1": false, "relay-2": false, "relay-3": true})
	}
	e.wantKeys("alert:1", "alert:2", "alert:3")
}

func (e *env) wantKeys(want ...string) {
	e.t.Helper()
	if got := e.keys(); !slices.Equal(got, want) {
		e.t.Fatalf("outbox keys:\n got %v\nwant %v", got, want)
	}
}

func (e *env) open1() []storage.Incident {
	e.t.Helper()
	inc, err := e.store.OpenIncidents(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return inc
}

// evaluator is what monitor.Monitor.Evaluate does, in small: rebuild the
// assessment from stored history and store each level change as an event.
func evaluator(s *storage.Store, now func() time.Time) func(ctx context.Context) (escalation.Assessment, error) {
	return func(ctx context.Context) (escalation.Assessment, error) {
		stored, err := s.Recent(ctx, now().Add(-24*time.Hour), 1000)
		if err != nil {
			return escalation.Assessment{}, err
		}
		obs := make([]escalation.Observation, len(stored))
		for i, r := range stored {
			obs[i] = escalation.Observation{ID: r.ID, Relay: r.Relay, SourceIP: r.SourceIP, MX: r.MX, IP: r.IP,
				At: r.StartedAt, OK: r.OK, Failure: string(r.Failure), RunID: r.RunID}
		}
		next := escalation.Replay(obs, nil, escalation.DefaultPolicy())
		var prev escalation.Assessment
		announced := func(relay string) escalation.RelayState {
			st := escalation.RelayState{Relay: relay, Level: escalation.LevelOK}
			if ev, ok, _ := s.LastEvent(ctx, relay); ok {
				st.Level = ev.To
			}
			return st
		}
		for _, r := range next.Relays {
			prev.Relays = append(prev.Relays, announced(r.Relay))
		}
		prev.Global = announced("")
		for _, c := range escalation.Diff(prev, next, now()) {
			if _, err := s.AddEvent(ctx, storage.Event{Relay: c.Relay, From: c.From, To: c.To,
				Scope: c.Scope, Advice: c.Advice, Evidence: c.Evidence, At: c.At}); err != nil {
				return next, err
			}
		}
		return next, nil
	}
}

// TestOneFailureIsABlip: a relay failing once is at watch: no alert, no
// re-probe.
func TestOneFailureIsABlip(t *testing.T) {
	e := newEnv(t)
	e.probeRound(map[string]bool{"relay-1": true, "relay-2": true})
	e.probeRound(map[string]bool{"relay-1": false, "relay-2": true})
	e.probeRound(map[string]bool{"relay-1": true, "relay-2": true})
	e.wantKeys()
	if len(e.confirms) != 0 || len(e.open1()) != 0 {
		t.Fatalf("confirms %v, incidents %v", e.confirms, e.open1())
	}
}

// TestThreeFailuresOneAlertThenResolution: three failures in a row are
// confirmed by a re-probe and make exactly one alert; syncing again, or
// after a restart, adds nothing; two successes resolve it with one note in
// the alert's thread.
func TestThreeFailuresOneAlertThenResolution(t *testing.T) {
	e := newEnv(t)
	e.reprobe["relay-1"] = true
	e.probeRound(map[string]bool{"relay-1": false, "relay-2": true})
	e.probeRound(map[string]bool{"relay-1": false, "relay-2": true})
	e.wantKeys()
	e.probeRound(map[string]bool{"relay-1": false, "relay-2": true})
	e.wantKeys("alert:1")
	if !slices.Equal(e.confirms, []string{"relay-1"}) {
		t.Fatalf("confirms = %v, want one re-probe of relay-1", e.confirms)
	}
	if e.notified != 1 {
		t.Errorf("worker woken %d times, want 1", e.notified)
	}
	m, p := e.message("alert:1")
	if m.Kind != storage.KindAlert || m.Channel != "CALERTS" || m.ThreadKey != "" || m.UpdateKey != "" {
		t.Errorf("alert message = %+v", m)
	}
	if !strings.Contains(p.Title, "relay-1") || !strings.Contains(p.Title, "investigate") || p.Verdict != message.VerdictFail {
		t.Errorf("alert title %q verdict %s", p.Title, p.Verdict)
	}
	var actions []string
	for _, b := range p.Buttons {
		actions = append(actions, b.Action+"="+b.Value)
	}
	if want := []string{message.ActionRerun + "=relay=relay-1", message.ActionAcknowledge + "=1", message.ActionMute + "=1"}; !slices.Equal(actions, want) {
		t.Errorf("buttons %v, want %v", actions, want)
	}
	text := render(t, p.Response)
	for _, want := range []string{"Re-probe from relay-1", "Second relay relay-9", "tls_reset", "connection reset by peer", "C: STARTTLS", "test STARTTLS"} {
		if !strings.Contains(text, want) {
			t.Errorf("alert lacks %q:\n%s", want, text)
		}
	}

	// Nothing twice: again, and after a restart.
	e.sync()
	e.restart()
	e.sync()
	e.probeRound(map[string]bool{"relay-1": false, "relay-2": true})
	e.wantKeys("alert:1")
	if len(e.confirms) != 1 || len(e.open1()) != 1 {
		t.Fatalf("confirms %v, open incidents %d", e.confirms, len(e.open1()))
	}

	// Recovery after two successes (R = 2).
	e.probeRound(map[string]bool{"relay-1": true, "relay-2": true})
	e.wantKeys("alert:1")
	e.probeRound(map[string]bool{"relay-1": true, "relay-2": true})
	e.wantKeys("alert:1", "resolution:1", "alert:1:resolved")
	res, rp := e.message("resolution:1")
	if res.ThreadKey != "alert:1" || res.Kind != storage.KindResolution {
		t.Errorf("resolution = %+v", res)
	}
	if !strings.Contains(rp.Title, "resolved after 15m") {
		t.Errorf("resolution title %q, want the duration", rp.Title)
	}
	up, upp := e.message("alert:1:resolved")
	if up.UpdateKey != "alert:1" || len(upp.Buttons) != 0 || !strings.HasPrefix(upp.Title, "Resolved") {
		t.Errorf("resolved update = %+v %+v", up, upp.Response)
	}
	if len(e.open1()) != 0 {
		t.Errorf("incident still open")
	}
	e.sync()
	e.restart()
	e.sync()
	e.wantKeys("alert:1", "resolution:1", "alert:1:resolved")
}

// TestConfirmationPasses: three failures, but the re-probe passes: a blip,
// no alert.
func TestConfirmationPasses(t *testing.T) {
	e := newEnv(t)
	e.reprobe["relay-1"] = false
	for range 3 {
		e.probeRound(map[string]bool{"relay-1": false})
	}
	if len(e.confirms) != 1 {
		t.Fatalf("confirms = %v", e.confirms)
	}
	e.wantKeys()
	if !strings.Contains(e.logs.String(), "blip") {
		t.Errorf("the blip is not logged:\n%s", e.logs.String())
	}
}

// TestTwoRelaysMakeAnIncident: two relays failing make a global incident;
// it is confirmed by the relays' own re-probes and alerted once; nobody
// acknowledges it, so it is reminded every hour (once per hour, also across
// a restart); Acknowledge updates the alert and stops the reminders.
func TestTwoRelaysMakeAnIncident(t *testing.T) {
	e := newEnv(t)
	e.twoRelayIncident()
	if !slices.Equal(e.confirms, []string{"relay-1", "relay-2"}) {
		t.Fatalf("confirms = %v", e.confirms)
	}
	_, g := e.message("alert:3")
	text := render(t, g.Response)
	for _, want := range []string{"All relays", "incident", "relay-1, relay-2", "Confirmed by the re-probes of the alerts of relay-1 (#1), relay-2 (#2)"} {
		if !strings.Contains(text, want) {
			t.Errorf("global alert lacks %q:\n%s", want, text)
		}
	}
	var global storage.Incident
	for _, inc := range e.open1() {
		if inc.Relay == "" {
			global = inc
		}
	}
	if global.ID != 3 || global.Level != "incident" {
		t.Fatalf("global incident = %+v", global)
	}

	remind := func() {
		t.Helper()
		if err := e.al.Remind(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	remind()
	e.clock.Advance(59 * time.Minute)
	remind()
	e.wantKeys("alert:1", "alert:2", "alert:3")
	e.clock.Advance(time.Minute)
	remind()
	remind()
	e.wantKeys("alert:1", "alert:2", "alert:3", "remind:3:1")
	rm, _ := e.message("remind:3:1")
	if rm.ThreadKey != "alert:3" || rm.Kind != storage.KindReminder {
		t.Errorf("reminder = %+v", rm)
	}
	e.restart()
	remind()
	e.clock.Advance(time.Hour)
	remind()
	e.wantKeys("alert:1", "alert:2", "alert:3", "remind:3:1", "remind:3:2")

	resp, err := e.al.Acknowledge(context.Background(), 3, "U024BE7LH")
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Ephemeral || !strings.Contains(resp.Title, "acknowledged by <@U024BE7LH>") {
		t.Errorf("ack response = %+v", resp)
	}
	again, _ := e.al.Acknowledge(context.Background(), 3, "U999")
	if !strings.Contains(again.Title, "already acknowledged by <@U024BE7LH>") {
		t.Errorf("second ack = %q", again.Title)
	}
	ack, ap := e.message("alert:3:ack")
	if ack.UpdateKey != "alert:3" || ack.Kind != storage.KindUpdate {
		t.Errorf("ack update = %+v", ack)
	}
	// 13:20 UTC is 14:20 CET.
	if text := render(t, ap.Response); !strings.Contains(text, "Acknowledged by <@U024BE7LH> at 14:20 CET") {
		t.Errorf("updated alert lacks who and when:\n%s", text)
	}
	for _, b := range ap.Buttons {
		if b.Action == message.ActionAcknowledge {
			t.Error("acknowledged alert still has an Acknowledge button")
		}
	}
	for range 3 {
		e.clock.Advance(time.Hour)
		remind()
	}
	e.wantKeys("alert:1", "alert:2", "alert:3", "remind:3:1", "remind:3:2", "alert:3:ack")
}

// TestMuteSuppresses: a muted incident gets no reminders, and its
// resolution waits until the mute ends; the button is audited.
func TestMuteSuppresses(t *testing.T) {
	e := newEnv(t)
	e.twoRelayIncident()
	ctx := context.Background()

	resp := e.press(message.ActionMute, "3", "U024BE7LH")
	if !strings.Contains(resp.Title, "muted by <@U024BE7LH> until") || !resp.Ephemeral {
		t.Fatalf("mute = %+v", resp)
	}
	mute1 := MuteKey(3, e.clock.Now().Add(MuteFor))
	mu, mp := e.message(mute1)
	if mu.UpdateKey != "alert:3" || !strings.Contains(render(t, mp.Response), "Muted by <@U024BE7LH> until") {
		t.Errorf("mute update = %+v", mu)
	}
	if _, err := e.al.Mute(ctx, 3, "U0G9QF9GZ", 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	mute2 := MuteKey(3, e.clock.Now().Add(2*time.Hour))

	// Past the reminder interval, still muted: no reminder.
	e.clock.Advance(65 * time.Minute)
	if err := e.al.Remind(ctx); err != nil {
		t.Fatal(err)
	}
	// Both relays recover: their own incidents resolve, the muted global
	// one waits for the end of the mute.
	e.probeRound(map[string]bool{"relay-1": true, "relay-2": true, "relay-3": true})
	e.probeRound(map[string]bool{"relay-1": true, "relay-2": true, "relay-3": true})
	base := []string{"alert:1", "alert:2", "alert:3", mute1, mute2, "resolution:1", "alert:1:resolved", "resolution:2", "alert:2:resolved"}
	e.wantKeys(base...)
	e.clock.Advance(50 * time.Minute)
	e.sync()
	e.wantKeys(append(base, "resolution:3", "alert:3:resolved")...)

	audit, err := e.store.AuditLog(ctx, 10)
	if err != nil || len(audit) != 1 || audit[0].Text != message.ActionMute+" incident 3" || audit[0].Outcome != "ok" || audit[0].UserID != "U024BE7LH" {
		t.Errorf("audit = %+v, %v", audit, err)
	}
	if r := e.press(message.ActionAcknowledge, "42", "U024BE7LH"); r.Verdict != message.VerdictRefused {
		t.Errorf("unknown incident: %+v", r)
	}
	if r := e.press(message.ActionAcknowledge, "x", "U024BE7LH"); !strings.Contains(r.Title, "could not be read") {
		t.Errorf("bad value: %+v", r)
	}
	if r, _ := e.al.Acknowledge(ctx, 3, "U1"); !strings.Contains(r.Title, "already resolved") {
		t.Errorf("ack of a resolved incident: %q", r.Title)
	}
}

// TestLevelRiseUpdatesTheAlert: with PostWatch, a relay is alerted at watch;
// when it reaches investigate the alert is updated and the rise noted in
// its thread, once.
func TestLevelRiseUpdatesTheAlert(t *testing.T) {
	e := newEnv(t, func(a *Alerter) { a.PostWatch = true })
	e.reprobe["relay-1"] = true
	e.probeRound(map[string]bool{"relay-1": false})
	e.wantKeys("alert:1")
	if _, p := e.message("alert:1"); !strings.Contains(p.Title, "watch") || p.Verdict != message.VerdictWarn {
		t.Errorf("watch alert = %q %s", p.Title, p.Verdict)
	}
	e.probeRound(map[string]bool{"relay-1": false})
	e.probeRound(map[string]bool{"relay-1": false})
	e.sync()
	e.wantKeys("alert:1", "alert:1:level:investigate:note", "alert:1:level:investigate")
	note, np := e.message("alert:1:level:investigate:note")
	if note.ThreadKey != "alert:1" || !strings.Contains(np.Title, "rose from watch to investigate") {
		t.Errorf("note = %+v %q", note, np.Title)
	}
	up, upp := e.message("alert:1:level:investigate")
	if up.UpdateKey != "alert:1" || !strings.Contains(upp.Title, "investigate") {
		t.Errorf("update = %+v %q", up, upp.Title)
	}
	if len(e.confirms) != 1 {
		t.Errorf("confirms = %v; a rise needs no new re-probe", e.confirms)
	}
	// The incident records its new level.
	inc, err := e.store.IncidentByID(context.Background(), 1)
	if err != nil || inc.Level != "investigate" || inc.Scope != "one_host" {
		t.Fatalf("incident after the rise = %+v %v", inc, err)
	}

	// The process stopped after writing the messages of the rise but
	// before recording the level: the next Sync writes nothing twice and
	// records it.
	if err := e.store.SetIncidentLevel(context.Background(), 1, "watch", "one_event"); err != nil {
		t.Fatal(err)
	}
	e.restart(func(a *Alerter) { a.PostWatch = true })
	e.sync()
	e.wantKeys("alert:1", "alert:1:level:investigate:note", "alert:1:level:investigate")
	if inc, _ := e.store.IncidentByID(context.Background(), 1); inc.Level != "investigate" {
		t.Errorf("level after the restart = %q, want investigate", inc.Level)
	}
	// An acknowledgement rebuilt from the incident keeps the risen level.
	if _, err := e.al.Acknowledge(context.Background(), 1, "U024BE7LH"); err != nil {
		t.Fatal(err)
	}
	if _, ap := e.message("alert:1:ack"); !strings.Contains(ap.Title, "investigate") {
		t.Errorf("acknowledged alert title %q, want the risen level", ap.Title)
	}
}

// TestMutedByIsKept: who muted an incident is stored with it, so that a
// later update of the alert (here the acknowledgement, after a restart)
// still says who muted it, and the acknowledgement says who acknowledged.
func TestMutedByIsKept(t *testing.T) {
	e := newEnv(t)
	e.reprobe["relay-1"] = true
	for range 3 {
		e.probeRound(map[string]bool{"relay-1": false, "relay-2": true})
	}
	e.wantKeys("alert:1")
	ctx := context.Background()
	if _, err := e.al.Mute(ctx, 1, "U0G9QF9GZ", 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	e.restart()
	inc, err := e.store.IncidentByID(ctx, 1)
	if err != nil || inc.MutedBy != "U0G9QF9GZ" || !inc.MutedUntil.Equal(e.clock.Now().Add(2*time.Hour)) {
		t.Fatalf("muted incident = %+v %v", inc, err)
	}
	if _, err := e.al.Acknowledge(ctx, 1, "U024BE7LH"); err != nil {
		t.Fatal(err)
	}
	_, ap := e.message("alert:1:ack")
	text := render(t, ap.Response)
	for _, want := range []string{"Acknowledged by <@U024BE7LH> at", "Muted by <@U0G9QF9GZ> until"} {
		if !strings.Contains(text, want) {
			t.Errorf("acknowledged alert lacks %q:\n%s", want, text)
		}
	}
}

// TestFlappingReportedOnce: a relay going up and down more than FlapLimit
// times within an hour is reported once as flapping and its further alerts
// are held back while it flaps.
func TestFlappingReportedOnce(t *testing.T) {
	e := newEnv(t, func(a *Alerter) { a.PostWatch = true; a.FlapLimit = 3 })
	e.reprobe["relay-1"] = true
	// Start at the top of an hour so that everything below falls in it.
	e.clock.Advance(55 * time.Minute)
	for range 3 {
		e.probeRound(map[string]bool{"relay-1": false}) // → watch
		e.probeRound(map[string]bool{"relay-1": true})
		e.probeRound(map[string]bool{"relay-1": true}) // → ok
	}
	var flaps, alertsAfter int
	seenFlap := false
	for _, k := range e.keys() {
		switch {
		case strings.HasPrefix(k, "flap:"):
			flaps++
			seenFlap = true
		case seenFlap && strings.HasPrefix(k, "alert:") && !strings.Contains(k, ":resolved") && !strings.Contains(k, ":level:"):
			alertsAfter++
		}
	}
	if flaps != 1 || alertsAfter != 0 {
		t.Fatalf("flap reports %d, alerts after it %d; keys %v", flaps, alertsAfter, e.keys())
	}
	// The episode began with the first level change, at 12:00.
	key := "flap:relay-1:2026-03-02T12:00:00Z"
	_, fp := e.message(key)
	if !strings.Contains(fp.Title, "relay-1 is flapping") {
		t.Errorf("flap title %q", fp.Title)
	}
	e.sync()
	e.restart(func(a *Alerter) { a.PostWatch = true; a.FlapLimit = 3 })
	e.sync()
	n := 0
	for _, k := range e.keys() {
		if strings.HasPrefix(k, "flap:") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d flap reports after more syncs and a restart", n)
	}
}

// flapKeys returns the keys of the flapping reports in the outbox.
func (e *env) flapKeys() []string {
	var out []string
	for _, k := range e.keys() {
		if strings.HasPrefix(k, "flap:") {
			out = append(out, k)
		}
	}
	return out
}

// TestFlappingEpisodeReportedOnce: a relay flapping without a pause for
// three hours, across clock hours and a restart, is reported as flapping
// once; after an hour and more without a level change it flaps again, a
// new episode, and that is reported again, once.
func TestFlappingEpisodeReportedOnce(t *testing.T) {
	cfg := func(a *Alerter) { a.PostWatch = true; a.FlapLimit = 3 }
	e := newEnv(t, cfg)
	e.reprobe["relay-1"] = true
	flap := func(cycles int) {
		t.Helper()
		for i := range cycles {
			e.probeRound(map[string]bool{"relay-1": false}) // → watch
			e.probeRound(map[string]bool{"relay-1": true})
			e.probeRound(map[string]bool{"relay-1": true}) // → ok
			if i == cycles/2 {
				e.restart(cfg)
			}
		}
	}
	// 11:05 to 14:00: twelve cycles of 15 minutes, eight level changes an
	// hour, over four clock hours.
	flap(12)
	first := []string{"flap:relay-1:2026-03-02T11:05:00Z"}
	if got := e.flapKeys(); !slices.Equal(got, first) {
		t.Fatalf("flap reports after 3h of flapping: %v, want %v", got, first)
	}
	// Stable for 65 minutes: the episode is over.
	for range 13 {
		e.probeRound(map[string]bool{"relay-1": true})
	}
	if got := e.flapKeys(); !slices.Equal(got, first) {
		t.Fatalf("flap reports while stable: %v", got)
	}
	// 15:05: flapping again is a new episode.
	flap(4)
	want := append(first, "flap:relay-1:2026-03-02T15:10:00Z")
	if got := e.flapKeys(); !slices.Equal(got, want) {
		t.Fatalf("flap reports after a new episode: %v, want %v", got, want)
	}
}

// TestEndlessFlappingReportedDaily: an episode longer than flapping reads
// back (here 30 changes) is reported again at most once a day, not at
// every change.
func TestEndlessFlappingReportedDaily(t *testing.T) {
	e := newEnv(t, func(a *Alerter) { a.PostWatch = true; a.FlapLimit = 3; a.flapReadMax = 30 })
	e.reprobe["relay-1"] = true
	for range 20 { // 11:05 to 16:00, 40 level changes
		e.probeRound(map[string]bool{"relay-1": false})
		e.probeRound(map[string]bool{"relay-1": true})
		e.probeRound(map[string]bool{"relay-1": true})
	}
	want := []string{"flap:relay-1:2026-03-02T11:05:00Z", "flap:relay-1:2026-03-02T00:00:00Z"}
	if got := e.flapKeys(); !slices.Equal(got, want) {
		t.Fatalf("flap reports %v, want %v", got, want)
	}
}

// TestWatchBlipsDoNotFlap: without PostWatch, a relay going fail, ok, ok
// (watch and back, never alerted) four times within an hour posts
// nothing, no flapping report either; a relay going up to investigate and
// back that often is still reported as flapping.
func TestWatchBlipsDoNotFlap(t *testing.T) {
	e := newEnv(t)
	e.reprobe["relay-1"], e.reprobe["relay-2"] = true, true
	for range 4 {
		e.probeRound(map[string]bool{"relay-1": false}) // → watch
		e.probeRound(map[string]bool{"relay-1": true})
		e.probeRound(map[string]bool{"relay-1": true}) // → ok
	}
	if evs, err := e.store.Events(context.Background(), "relay-1", 100); err != nil || len(evs) != 8 {
		t.Fatalf("relay-1 changed level %d times (%v), want 8", len(evs), err)
	}
	e.wantKeys()

	e.al.FlapLimit = 3
	for range 3 {
		for range 3 {
			e.probeRound(map[string]bool{"relay-2": false}) // → watch, → investigate
		}
		for range 2 {
			e.probeRound(map[string]bool{"relay-2": true}) // → ok
		}
	}
	if got := e.flapKeys(); len(got) != 1 || !strings.HasPrefix(got[0], "flap:relay-2:") {
		t.Errorf("flap reports %v, want one for relay-2", got)
	}
}

// TestSyncStopsTheReprobe: cancelling Sync's context (shutdown) stops a
// confirming re-probe that is under way; nothing is alerted on its cut
// short results, and the next Sync confirms again and alerts.
func TestSyncStopsTheReprobe(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.clock.Advance(5 * time.Minute)
		if _, _, err := e.store.RecordRun(context.Background(), storage.Run{Relay: "relay-1", Trigger: message.SourceSchedule, StartedAt: e.clock.Now()},
			results("relay-1", false, e.clock.Now())); err != nil {
			t.Fatal(err)
		}
	}
	const slow = 3 * time.Second
	started := make(chan struct{})
	e.mon.check = func(ctx context.Context, relay string, _ []string) ([]probe.Result, error) {
		close(started)
		// A probe cut short still returns results: failures, with no error.
		select {
		case <-ctx.Done():
		case <-time.After(slow):
		}
		return results(relay, false, e.clock.Now()), nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	begin := time.Now()
	err := e.al.Sync(ctx)
	if took := time.Since(begin); took >= slow {
		t.Errorf("Sync took %s: the re-probe was not cancelled", took)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Sync = %v, want context.Canceled", err)
	}
	e.wantKeys()
	if n := len(e.open1()); n != 0 {
		t.Fatalf("%d incidents opened on a cancelled re-probe", n)
	}

	// After the restart the failure is confirmed again, and alerted.
	e.restart()
	e.reprobe["relay-1"] = true
	e.sync()
	e.wantKeys("alert:1")
	if !slices.Equal(e.confirms, []string{"relay-1"}) {
		t.Errorf("confirms = %v", e.confirms)
	}
}

// TestAcknowledgeBelowIncidentPromisesNoReminders: reminders are for level
// incident only, so acknowledging an alert at investigate does not say that
// reminders stop (there are none), while at incident it does.
func TestAcknowledgeBelowIncidentPromisesNoReminders(t *testing.T) {
	e := newEnv(t)
	e.reprobe["relay-1"], e.reprobe["relay-2"] = true, true
	for range 3 {
		e.probeRound(map[string]bool{"relay-1": false, "relay-2": true})
	}
	e.wantKeys("alert:1")
	e.clock.Advance(2 * time.Hour)
	if err := e.al.Remind(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.wantKeys("alert:1") // investigate is not reminded
	resp, err := e.al.Acknowledge(context.Background(), 1, "U024BE7LH")
	if err != nil {
		t.Fatal(err)
	}
	_, ap := e.message("alert:1:ack")
	for what, text := range map[string]string{"ack note": resp.Title, "acknowledged alert": render(t, ap.Response)} {
		if !strings.Contains(text, "cknowledged by <@U024BE7LH>") || strings.Contains(text, "reminders stop") {
			t.Errorf("%s promises reminders that never come:\n%s", what, text)
		}
	}

	// At level incident acknowledging does stop reminders, and says so.
	for range 3 {
		e.probeRound(map[string]bool{"relay-1": false, "relay-2": false})
	}
	var global int64
	for _, inc := range e.open1() {
		if inc.Relay == "" {
			global = inc.ID
		}
	}
	if global == 0 {
		t.Fatalf("no global incident; keys %v", e.keys())
	}
	resp, err = e.al.Acknowledge(context.Background(), global, "U024BE7LH")
	if err != nil {
		t.Fatal(err)
	}
	_, ap = e.message(AckKey(global))
	for what, text := range map[string]string{"ack note": resp.Title, "acknowledged alert": render(t, ap.Response)} {
		if !strings.Contains(text, "reminders stop") {
			t.Errorf("%s at incident does not say reminders stop:\n%s", what, text)
		}
	}
}

// TestRestartBetweenIncidentAndAlert: the process stopped after opening
// the incident but before writing its alert; the next Sync writes it.
func TestRestartBetweenIncidentAndAlert(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.clock.Advance(5 * time.Minute)
		if _, _, err := e.store.RecordRun(context.Background(), storage.Run{Relay: "relay-1", StartedAt: e.clock.Now()}, results("relay-1", false, e.clock.Now())); err != nil {
			t.Fatal(err)
		}
	}
	id, err := e.store.OpenIncident(context.Background(), storage.Incident{Relay: "relay-1", Level: "investigate", Scope: "one_host", OpenedAt: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.wantKeys(AlertKey(id))
	if len(e.confirms) != 0 {
		t.Errorf("re-probed although the incident was open: %v", e.confirms)
	}
	_, p := e.message(AlertKey(id))
	if !strings.Contains(render(t, p.Response), "restarted") {
		t.Errorf("recovered alert does not explain itself: %+v", p.Response)
	}
}

func TestNoChannelNoAlerts(t *testing.T) {
	e := newEnv(t, func(a *Alerter) { a.Channel = "" })
	for range 3 {
		e.probeRound(map[string]bool{"relay-1": false})
	}
	if err := e.al.Remind(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.wantKeys()
}

func TestConfirmErrorIsReported(t *testing.T) {
	e := newEnv(t)
	e.mon.check = func(context.Context, string, []string) ([]probe.Result, error) {
		return nil, errors.New("relay-1: runner not configured")
	}
	for range 2 {
		e.probeRound(map[string]bool{"relay-1": false})
	}
	e.clock.Advance(5 * time.Minute)
	if _, _, err := e.store.RecordRun(context.Background(), storage.Run{Relay: "relay-1", StartedAt: e.clock.Now()}, results("relay-1", false, e.clock.Now())); err != nil {
		t.Fatal(err)
	}
	err := e.al.Sync(context.Background())
	if err == nil || !strings.Contains(err.Error(), "confirming the failure of relay-1") {
		t.Fatalf("Sync = %v", err)
	}
	e.wantKeys()
}

func render(t *testing.T, r message.Response) string {
	t.Helper()
	var b bytes.Buffer
	if err := commands.RenderText(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestRemovedRelayClosesItsIncident: a relay removed from the
// configuration disappears from the assessment; its open incident is
// closed with a note saying why.
func TestRemovedRelayClosesItsIncident(t *testing.T) {
	e := newEnv(t)
	e.reprobe["relay-1"] = true
	for range 3 {
		e.probeRound(map[string]bool{"relay-1": false})
	}
	e.wantKeys("alert:1")
	inner := e.mon.evaluate
	e.mon.evaluate = func(ctx context.Context) (escalation.Assessment, error) {
		a, err := inner(ctx)
		a.Relays = slices.DeleteFunc(a.Relays, func(st escalation.RelayState) bool { return st.Relay == "relay-1" })
		return a, err
	}
	e.sync()
	e.sync()
	e.wantKeys("alert:1", "resolution:1", "alert:1:resolved")
	if _, p := e.message("resolution:1"); !strings.Contains(render(t, p.Response), "no longer in the configuration") {
		t.Errorf("resolution does not say why: %+v", p.Response)
	}
	if len(e.open1()) != 0 {
		t.Error("incident still open")
	}
}

// press presses an alert button as Slack would, through the real command
// handler (which routes, authorizes and audits it), by the admin userID.
func (e *env) press(action, value, userID string) message.Response {
	e.t.Helper()
	cfg := config.Default()
	cfg.Access.Admins = []string{userID}
	mon := monitor.New(monitor.Deps{Store: e.store, Config: cfg, Now: e.clock.Now})
	h := commands.New(commands.Deps{Service: mon, Alerts: e.al, Now: e.clock.Now})
	return h.Do(context.Background(), message.Request{Action: action, Value: value, UserID: userID, ChannelID: "CALERTS", Source: message.SourceButton})
}
