package storage

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/manualclock"
)

func TestEventsPersistAndOrder(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		path := e.fresh(t)
		s := e.open(t, path, manualclock.New(t0))
		if _, ok, err := s.LastEvent(ctx, "relay-1"); ok || err != nil {
			t.Fatalf("no events yet: %v %v", ok, err)
		}
		e1 := Event{Relay: "relay-1", From: "ok", To: "watch", Scope: "one_event", Advice: "let the retry queue work", Evidence: []int64{1}, At: t0}
		e2 := Event{Relay: "relay-1", From: "watch", To: "investigate", Scope: "one_host", Evidence: []int64{1, 2, 3}, At: t0.Add(time.Minute)}
		g := Event{From: "ok", To: "incident", Scope: "all_gmail", At: t0.Add(2 * time.Minute)}
		for _, e := range []Event{e1, e2, g} {
			if _, err := s.AddEvent(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		s = e.open(t, path, nil)
		last, ok, err := s.LastEvent(ctx, "relay-1")
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if last.To != "investigate" || !slices.Equal(last.Evidence, e2.Evidence) || !last.At.Equal(e2.At) || last.Relay != "relay-1" {
			t.Fatalf("last event %+v", last)
		}
		evs, _ := s.Events(ctx, "relay-1", 0)
		if len(evs) != 2 || evs[1].To != "watch" || evs[1].Advice != e1.Advice {
			t.Fatalf("events %+v", evs)
		}
		glob, ok, _ := s.LastEvent(ctx, "")
		if !ok || glob.To != "incident" || glob.Relay != "" || glob.Evidence == nil {
			t.Fatalf("global event %+v", glob)
		}
		if evs, err := s.Events(ctx, "unknown", 5); err != nil || len(evs) != 0 {
			t.Fatalf("unknown relay: %v %v", evs, err)
		}
	})
}

// TestAddEventAfterIsCompareAndAppend checks that a change computed
// against an older newest event is not stored: two replicas that both saw
// relay-1 at ok and both computed ok→watch announce it once.
func TestAddEventAfterIsCompareAndAppend(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		s := e.open(t, "", manualclock.New(t0))
		change := Event{Relay: "relay-1", From: "ok", To: "watch", Scope: "one_event", At: t0}
		id, stored, err := s.AddEventAfter(ctx, change, 0)
		if err != nil || !stored || id == 0 {
			t.Fatalf("first replica: id %d, stored %v, %v; want stored", id, stored, err)
		}
		// The second replica read the events before the first stored its
		// change: it too believes relay-1 has none.
		id2, stored, err := s.AddEventAfter(ctx, change, 0)
		if err != nil || stored || id2 != 0 {
			t.Fatalf("second replica: id %d, stored %v, %v; want not stored", id2, stored, err)
		}
		// A global change is guarded by the global events alone.
		g := Event{From: "ok", To: "incident", Scope: "all_gmail", At: t0}
		if _, stored, err := s.AddEventAfter(ctx, g, 0); err != nil || !stored {
			t.Fatalf("global change after relay-1's: stored %v, %v", stored, err)
		}
		if _, stored, err := s.AddEventAfter(ctx, g, 0); err != nil || stored {
			t.Fatalf("the same global change again: stored %v, %v; want not stored", stored, err)
		}
		// A change computed against the newest event is stored.
		next := Event{Relay: "relay-1", From: "watch", To: "investigate", Scope: "one_host", At: t0.Add(time.Minute)}
		if _, stored, err := s.AddEventAfter(ctx, next, id); err != nil || !stored {
			t.Fatalf("change after the newest event: stored %v, %v", stored, err)
		}
		evs, err := s.Events(ctx, "relay-1", 0)
		if err != nil || len(evs) != 2 {
			t.Fatalf("relay-1 has %d events (%v), want 2: %+v", len(evs), err, evs)
		}
		if _, _, err := s.AddEventAfter(ctx, next, -1); err == nil {
			t.Fatal("a negative newest id was accepted")
		}
	})
}

func TestIncidentLifecycle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		path := e.fresh(t)
		s := e.open(t, path, manualclock.New(t0))
		id, err := s.OpenIncident(ctx, Incident{Relay: "relay-1", Level: "investigate", Scope: "one_host"})
		if err != nil {
			t.Fatal(err)
		}
		gid, err := s.OpenIncident(ctx, Incident{Level: "incident", Scope: "all_gmail", OpenedAt: t0.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		steps := []error{
			s.SetIncidentMessage(ctx, id, "C0456", "1700000000.000100"),
			s.AckIncident(ctx, id, "U1", t0.Add(2*time.Minute)),
			s.AckIncident(ctx, id, "U2", t0.Add(3*time.Minute)), // the first acknowledgement stays
			s.MuteIncident(ctx, id, t0.Add(30*time.Minute), "U1"),
			s.MuteIncident(ctx, id, t0.Add(time.Hour), "U0G9QF9GZ"), // a later mute replaces who and until
			s.SetIncidentLevel(ctx, id, "incident", "all_gmail"),
			s.TouchReminder(ctx, id, t0.Add(4*time.Minute)),
			s.ResolveIncident(ctx, gid, t0.Add(5*time.Minute)),
		}
		if err := errors.Join(steps...); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = e.open(t, path, nil)
		open, err := s.OpenIncidents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(open) != 1 || open[0].ID != id {
			t.Fatalf("open incidents %+v", open)
		}
		i := open[0]
		want := Incident{ID: id, Relay: "relay-1", Level: "incident", Scope: "all_gmail", OpenedAt: t0, AckedAt: t0.Add(2 * time.Minute),
			AckedBy: "U1", MutedUntil: t0.Add(time.Hour), MutedBy: "U0G9QF9GZ", LastReminder: t0.Add(4 * time.Minute),
			AlertChannel: "C0456", AlertTS: "1700000000.000100"}
		if i != want {
			t.Fatalf("incident\n got %+v\nwant %+v", i, want)
		}
		g, err := s.IncidentByID(ctx, gid)
		if err != nil || g.Relay != "" || !g.ResolvedAt.Equal(t0.Add(5*time.Minute)) {
			t.Fatalf("global incident %+v %v", g, err)
		}
		if _, err := s.IncidentByID(ctx, 999); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing incident: %v", err)
		}
		if err := s.AckIncident(ctx, 999, "U1", t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("ack missing incident: %v", err)
		}
		if err := s.MuteIncident(ctx, 999, t0, "U1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("mute missing incident: %v", err)
		}
		if err := s.SetIncidentLevel(ctx, 999, "incident", ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("level of a missing incident: %v", err)
		}
		// An incident opened muted keeps who muted it.
		mid, err := s.OpenIncident(ctx, Incident{Relay: "relay-2", Level: "watch", MutedUntil: t0.Add(time.Hour), MutedBy: "U2"})
		if err != nil {
			t.Fatal(err)
		}
		if m, err := s.IncidentByID(ctx, mid); err != nil || m.MutedBy != "U2" || m.Level != "watch" {
			t.Errorf("incident opened muted: %+v %v", m, err)
		}
	})
}

func TestAudit(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		s := e.open(t, "", manualclock.New(t0))
		a := AuditEntry{UserID: "U1", UserName: "ana", ChannelID: "C1", Text: "/gmailtls check relay-2", Source: "slash", Outcome: "ok"}
		if err := s.Audit(ctx, a); err != nil {
			t.Fatal(err)
		}
		log, err := s.AuditLog(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		a.At = t0
		if len(log) != 1 || log[0] != a {
			t.Fatalf("audit log %+v", log)
		}
	})
}
