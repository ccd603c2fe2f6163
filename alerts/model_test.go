package alerts

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/storage"
)

// model reads the alert model stored for incident id.
func (e *env) model(id int64) Alert {
	e.t.Helper()
	b, found, err := e.store.AlertModel(context.Background(), id)
	if err != nil || !found {
		e.t.Fatalf("no alert model for incident %d (%v)", id, err)
	}
	var al Alert
	if err := json.Unmarshal(b, &al); err != nil {
		e.t.Fatal(err)
	}
	return al
}

// TestAlertModelIsStoredApart: the alert model lives in storage's
// alert_models, not in the outbox payloads: written with the alert, with
// its confirmation; moved to the new level by a rise; and what the
// updates are rebuilt from.
func TestAlertModelIsStoredApart(t *testing.T) {
	e := newEnv(t, func(a *Alerter) { a.PostWatch = true })
	e.reprobe["relay-1"] = true
	e.probeRound(map[string]bool{"relay-1": false})
	e.wantKeys("alert:1")
	al := e.model(1)
	if al.IncidentID != 1 || al.Level != escalation.LevelWatch || al.SecondRelay != "relay-9" || len(al.Again) != 2 || len(al.Transcript) == 0 {
		t.Fatalf("model after the alert = %+v", al)
	}
	e.probeRound(map[string]bool{"relay-1": false})
	e.probeRound(map[string]bool{"relay-1": false})
	e.wantKeys("alert:1", "alert:1:level:investigate:note", "alert:1:level:investigate")
	if al := e.model(1); al.Level != escalation.LevelInvestigate || al.Scope != escalation.ScopeOneHost || al.SecondRelay != "relay-9" {
		t.Fatalf("model after the rise = %+v", al)
	}
	for _, m := range e.messages() {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(m.Payload, &raw); err != nil {
			t.Fatal(err)
		}
		if _, ok := raw["meta"]; ok {
			t.Errorf("message %s still carries the alert model in its payload", m.Key)
		}
	}
	// The acknowledgement is rebuilt from the stored model (its second
	// relay is nowhere else).
	if _, err := e.al.Acknowledge(context.Background(), 1, "U024BE7LH"); err != nil {
		t.Fatal(err)
	}
	_, p := e.message("alert:1:ack")
	if text := render(t, p.Response); !strings.Contains(text, "relay-9") || !strings.Contains(text, "investigate") {
		t.Errorf("acknowledged alert not rebuilt from the model:\n%s", text)
	}
}

// TestRestartBetweenModelAndAlert: the process stopped after recording
// the alert model of a new incident but before enqueuing its alert; the
// next Sync posts the recorded alert, confirmation and all, without a new
// re-probe.
func TestRestartBetweenModelAndAlert(t *testing.T) {
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
	recorded := Alert{IncidentID: id, Relay: "relay-1", Level: escalation.LevelInvestigate, Scope: escalation.ScopeOneHost,
		Advice: escalation.AdviceFor(escalation.LevelInvestigate, escalation.ScopeOneHost), OpenedAt: e.clock.Now(),
		Confirmed: true, Again: results("relay-1", false, e.clock.Now()), SecondRelay: "relay-7", Second: results("relay-7", true, e.clock.Now())}
	b, err := json.Marshal(recorded)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetAlertModel(context.Background(), id, b); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.wantKeys(AlertKey(id))
	if len(e.confirms) != 0 {
		t.Errorf("re-probed although the incident was open: %v", e.confirms)
	}
	_, p := e.message(AlertKey(id))
	if text := render(t, p.Response); !strings.Contains(text, "Second relay relay-7") || strings.Contains(text, "restarted") {
		t.Errorf("the recorded alert was not posted:\n%s", text)
	}
}

// TestReleaseDatabaseAlerts: on a database made by the release that kept
// alert models only in outbox payloads (storage/testdata/release7.db, see
// storage/testdata/release7), migrated by this code, the alerts of the
// open incidents are rebuilt with everything their models held: the
// acknowledgement of the muted incident 3 and the resolutions of
// incidents 2 (acknowledged) and 4 (global) show the confirmation of
// their alerts.
func TestReleaseDatabaseAlerts(t *testing.T) {
	ctx := context.Background()
	b, err := os.ReadFile(filepath.Join("..", "storage", "testdata", "release7.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gmailtls.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	clock := manualclock.New(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC))
	s, err := storage.Open(ctx, path, storage.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	calm := escalation.Assessment{Global: escalation.RelayState{Level: escalation.LevelOK}}
	for _, r := range []string{"relay-1", "relay-2", "relay-3", "relay-4"} {
		calm.Relays = append(calm.Relays, escalation.RelayState{Relay: r, Level: escalation.LevelOK})
	}
	mon := &fakeMonitor{evaluate: func(context.Context) (escalation.Assessment, error) { return calm, nil }}
	a := &Alerter{Store: s, Channel: "CALERTS", PostWatch: true, Now: clock.Now, Location: time.UTC, Monitor: mon}
	e := &env{t: t, store: s, al: a}

	if _, err := a.Acknowledge(ctx, 3, "U0DAY"); err != nil {
		t.Fatal(err)
	}
	_, p := e.message("alert:3:ack")
	text := render(t, p.Response)
	for _, want := range []string{"relay-2", "investigate", "Second relay relay-4", "connection reset by peer", "U0DAY"} {
		if !strings.Contains(text, want) {
			t.Errorf("acknowledged alert of incident 3 lacks %q:\n%s", want, text)
		}
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	open, err := s.OpenIncidents(ctx)
	if err != nil || len(open) != 0 {
		t.Fatalf("open incidents after the levels fell: %+v %v", open, err)
	}
	_, p = e.message("alert:2:resolved")
	text = render(t, p.Response)
	for _, want := range []string{"Resolved", "relay-1", "Second relay relay-4", "U0OPS"} {
		if !strings.Contains(text, want) {
			t.Errorf("resolved alert of incident 2 lacks %q:\n%s", want, text)
		}
	}
	_, p = e.message("alert:4:resolved")
	if text := render(t, p.Response); !strings.Contains(text, "Confirmed by the re-probes of the alerts of relay-1 (#2), relay-2 (#3)") {
		t.Errorf("resolved global alert lost its confirmation:\n%s", text)
	}
}
