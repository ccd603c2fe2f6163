package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/manualclock"
)

// TestAlertModels: an incident's alert model is stored, replaced, read
// back after a reopen, refused for an unknown incident or when it is not
// JSON, and removed by retention once its incident was resolved before
// the rollup retention, not sooner.
func TestAlertModels(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		path := e.fresh(t)
		clock := manualclock.New(t0)
		s := e.open(t, path, clock)
		open, err := s.OpenIncident(ctx, Incident{Relay: "relay-1", Level: "watch", Scope: "one_event"})
		if err != nil {
			t.Fatal(err)
		}
		resolved, err := s.OpenIncident(ctx, Incident{Level: "incident", Scope: "all_gmail"})
		if err != nil {
			t.Fatal(err)
		}
		if _, found, err := s.AlertModel(ctx, open); found || err != nil {
			t.Fatalf("model before any was stored: %v %v", found, err)
		}
		for _, m := range []string{`{"Level":"watch"}`, `{"Level":"investigate","Again":[{"ok":false}]}`} {
			if err := s.SetAlertModel(ctx, open, []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetAlertModel(ctx, resolved, []byte(`{"Level":"incident"}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAlertModel(ctx, 99, []byte(`{}`)); !errors.Is(err, ErrNotFound) {
			t.Errorf("model of an unknown incident: %v, want ErrNotFound", err)
		}
		if err := s.SetAlertModel(ctx, open, []byte(`{"Level":`)); err == nil {
			t.Error("a model that is not JSON was stored")
		}
		s.Close()
		s = e.open(t, path, clock)
		if m, found, err := s.AlertModel(ctx, open); !found || err != nil || string(m) != `{"Level":"investigate","Again":[{"ok":false}]}` {
			t.Fatalf("model after a reopen = %s %v %v, want the second one", m, found, err)
		}

		if err := s.ResolveIncident(ctx, resolved, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		st, err := s.Rollup(ctx, t0, t0.Add(time.Hour))
		if err != nil || st.AlertModelsDeleted != 0 {
			t.Fatalf("retention before the incident was resolved long enough: %+v %v", st, err)
		}
		st, err = s.Rollup(ctx, t0, t0.Add(time.Hour+time.Millisecond))
		if err != nil || st.AlertModelsDeleted != 1 {
			t.Fatalf("retention after: %+v %v", st, err)
		}
		if _, found, _ := s.AlertModel(ctx, resolved); found {
			t.Error("model of the long resolved incident kept")
		}
		if _, found, _ := s.AlertModel(ctx, open); !found {
			t.Error("model of the open incident removed")
		}
		if _, err := s.IncidentByID(ctx, resolved); err != nil {
			t.Errorf("retention removed the incident itself: %v", err)
		}
	})
}
