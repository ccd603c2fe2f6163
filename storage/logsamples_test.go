package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/manualclock"
)

func TestLogSamples(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		path := e.fresh(t)
		s := e.open(t, path, manualclock.New(t0))
		if err := s.SyncRelays(ctx, []RelaySpec{{Name: "relay-1", Kind: "agent"}, {Name: "relay-2", Kind: "local"}}); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			at := t0.Add(time.Duration(i) * 5 * time.Minute)
			for _, l := range []LogSample{
				{Relay: "relay-1", At: at, Window: time.Hour, TLSFailures: 10 * i, ConnectFailures: i, Delivered: 2 * i, Stuck: 3 * i, DeliveredLater: i % 2},
				{Relay: "relay-2", At: at, Window: 90 * time.Minute, Delivered: 1},
			} {
				if err := s.RecordLogSample(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.RecordLogSample(ctx, LogSample{Relay: "nosuch"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("sample of an unknown relay: %v", err)
		}
		got, err := s.LogSamples(ctx, "relay-1", t0, 3)
		if err != nil {
			t.Fatal(err)
		}
		want := LogSample{Relay: "relay-1", At: t0.Add(20 * time.Minute), Window: time.Hour, TLSFailures: 40, ConnectFailures: 4,
			Delivered: 8, Stuck: 12, DeliveredLater: 0}
		if len(got) != 3 || got[0].TLSFailures != 20 || got[1].DeliveredLater != 1 || !got[2].At.Equal(want.At) {
			t.Fatalf("relay-1 samples %+v", got)
		}
		got[2].At = want.At
		if got[2] != want {
			t.Fatalf("newest sample %+v, want %+v", got[2], want)
		}
		s.Close()
		s = e.open(t, path, manualclock.New(t0))
		all, err := s.LogSamples(ctx, "", t0.Add(10*time.Minute), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 6 || all[0].At.Before(t0.Add(10*time.Minute)) || all[1].Window != 90*time.Minute && all[0].Window != 90*time.Minute {
			t.Fatalf("all samples since +10m: %+v", all)
		}
		st, err := s.Rollup(ctx, t0.Add(time.Hour), t0)
		if err != nil || st.LogSamplesDeleted != 10 {
			t.Fatalf("retention: %+v %v", st, err)
		}
		if left, _ := s.LogSamples(ctx, "", time.Time{}, 0); len(left) != 0 {
			t.Fatalf("%d samples left after retention", len(left))
		}
	})
}
