package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/manualclock"
)

func TestQueueSamples(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		path := e.fresh(t)
		s := e.open(t, path, manualclock.New(t0))
		if err := s.SyncRelays(ctx, []RelaySpec{{Name: "relay-1", Kind: "agent"}, {Name: "relay-2", Kind: "agent"}}); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			at := t0.Add(time.Duration(i) * 5 * time.Minute)
			for _, q := range []QueueSample{
				{Relay: "relay-1", At: at, Deferred: 10 * i, OldestAge: time.Duration(i) * time.Minute, Recipients: 11 * i, TopReason: "lost connection with <mx>[<ip>] while performing the TLS handshake"},
				{Relay: "relay-2", At: at, Deferred: 1},
			} {
				if err := s.RecordQueueSample(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.RecordQueueSample(ctx, QueueSample{Relay: "nosuch", Deferred: 1}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("sample of an unknown relay: %v", err)
		}

		// The newest three of relay-1, oldest first, every field back.
		got, err := s.QueueSamples(ctx, "relay-1", t0, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0].Deferred != 20 || got[2].Deferred != 40 || got[2].OldestAge != 4*time.Minute ||
			got[2].Recipients != 44 || got[2].TopReason == "" || !got[2].At.Equal(t0.Add(20*time.Minute)) || got[2].Relay != "relay-1" {
			t.Fatalf("relay-1 samples %+v", got)
		}
		// Every relay, since a time, survives reopening the file.
		s.Close()
		s = e.open(t, path, manualclock.New(t0))
		all, err := s.QueueSamples(ctx, "", t0.Add(10*time.Minute), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 6 || all[0].At.Before(t0.Add(10*time.Minute)) || all[5].At.Before(all[0].At) {
			t.Fatalf("all samples since +10m: %+v", all)
		}

		// Retention drops samples with the raw results.
		st, err := s.Rollup(ctx, t0.Add(time.Hour), t0)
		if err != nil || st.QueueSamplesDeleted != 10 {
			t.Fatalf("retention: %+v %v", st, err)
		}
		if left, _ := s.QueueSamples(ctx, "", time.Time{}, 0); len(left) != 0 {
			t.Fatalf("%d samples left after retention", len(left))
		}
	})
}
