package storage

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/manualclock"
)

func relayNames(rs []Relay) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func TestSyncRelaysRetireAndReturn(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		c := manualclock.New(t0)
		s := e.open(t, "", c)
		specs := []RelaySpec{
			{Name: "relay-1", Kind: "local", SourceIPs: []string{"192.0.2.10", "192.0.2.11"}},
			{Name: "relay-2", Kind: "agent", URL: "https://relay-2.internal:9426"},
		}
		if err := s.SyncRelays(ctx, specs); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.RecordRun(ctx, Run{Relay: "relay-2"}, nil); err != nil {
			t.Fatal(err)
		}
		rs, err := s.Relays(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := relayNames(rs); !slices.Equal(got, []string{"relay-1", "relay-2"}) {
			t.Fatalf("relays %v", got)
		}
		if !slices.Equal(rs[0].SourceIPs, specs[0].SourceIPs) || rs[1].URL != specs[1].URL || rs[1].Kind != "agent" || !rs[0].CreatedAt.Equal(t0) {
			t.Fatalf("relay fields: %+v", rs)
		}
		id2 := rs[1].ID

		// relay-2 leaves the configuration: retired, history kept.
		if err := s.SyncRelays(ctx, specs[:1]); err != nil {
			t.Fatal(err)
		}
		rs, _ = s.Relays(ctx, false)
		if got := relayNames(rs); !slices.Equal(got, []string{"relay-1"}) {
			t.Fatalf("active relays %v", got)
		}
		all, _ := s.Relays(ctx, true)
		if len(all) != 2 || !all[1].Retired {
			t.Fatalf("all relays %+v", all)
		}
		if _, _, err := s.LastRun(ctx, "relay-2"); err != nil {
			t.Fatalf("history of a retired relay: %v", err)
		}

		// It comes back, with a new URL: same id, no longer retired.
		specs[1].URL = "https://relay-2b.internal:9426"
		if err := s.SyncRelays(ctx, specs); err != nil {
			t.Fatal(err)
		}
		r2, err := s.Relay(ctx, "relay-2")
		if err != nil {
			t.Fatal(err)
		}
		if r2.ID != id2 || r2.Retired || r2.URL != specs[1].URL {
			t.Fatalf("returning relay %+v", r2)
		}
		if err := s.SyncRelays(ctx, []RelaySpec{{Name: "a"}, {Name: "a"}}); err == nil {
			t.Error("duplicate names accepted")
		}
	})
}

func TestPauseResume(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		s := e.open(t, "", manualclock.New(t0))
		if err := s.SyncRelays(ctx, []RelaySpec{{Name: "relay-1"}}); err != nil {
			t.Fatal(err)
		}
		until := t0.Add(time.Hour)
		if err := s.PauseRelay(ctx, "relay-1", until, "U123"); err != nil {
			t.Fatal(err)
		}
		r, _ := s.Relay(ctx, "relay-1")
		if !r.PausedUntil.Equal(until) || r.PausedBy != "U123" || !r.Paused(t0) || r.Paused(until) {
			t.Fatalf("paused relay %+v", r)
		}
		if err := s.ResumeRelay(ctx, "relay-1", "U456"); err != nil {
			t.Fatal(err)
		}
		r, _ = s.Relay(ctx, "relay-1")
		if !r.PausedUntil.IsZero() || r.Paused(t0) || r.PausedBy != "U456" {
			t.Fatalf("resumed relay %+v", r)
		}
		if err := s.PauseRelay(ctx, "nope", until, "U1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown relay: %v", err)
		}
	})
}
