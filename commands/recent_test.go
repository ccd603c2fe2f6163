package commands

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/storage"
)

// TestRecentCacheMatchesStorage: after every stored run (random relays,
// sizes, and now and then a run stored late), the cache gives exactly the
// results storage.Recent reads from the database, in the same order.
func TestRecentCacheMatchesStorage(t *testing.T) {
	ctx := context.Background()
	st, err := storage.Open(ctx, filepath.Join(t.TempDir(), "gmailtls.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	relays := []string{"relay-1", "relay-2", "relay-3"}
	var specs []storage.RelaySpec
	for _, r := range relays {
		specs = append(specs, storage.RelaySpec{Name: r, Kind: "local"})
	}
	if err := st.SyncRelays(ctx, specs); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	var c recentCache
	for step := range 300 {
		now = now.Add(time.Duration(rng.IntN(90)) * time.Second)
		at := now
		if rng.IntN(10) == 0 {
			at = now.Add(-time.Duration(rng.IntN(40)) * time.Minute) // stored late
		}
		name := relays[rng.IntN(len(relays))]
		var rs []probe.Result
		for i := range 1 + rng.IntN(4) {
			rs = append(rs, probe.Result{Relay: name, MX: fmt.Sprintf("mx%d.test", i), IP: "192.0.2.1", Port: 25,
				StartedAt: at.Add(time.Duration(i) * time.Millisecond), OK: rng.IntN(4) != 0, Hints: []string{}})
		}
		if _, _, err := st.RecordRun(ctx, storage.Run{Relay: name, Trigger: storage.TriggerSchedule, StartedAt: at}, rs); err != nil {
			t.Fatal(err)
		}
		window, runs := 15*time.Minute, 5
		if step == 200 { // a new lookback (a configuration reload)
			window, runs = 30*time.Minute, 3
		}
		if step > 200 {
			window, runs = 30*time.Minute, 3
		}
		got, err := c.results(ctx, st, now, window, runs, relays)
		if err != nil {
			t.Fatal(err)
		}
		want, err := st.Recent(ctx, now.Add(-window), runs)
		if err != nil {
			t.Fatal(err)
		}
		ids := func(rs []storage.StoredResult) []int64 {
			var out []int64
			for _, r := range rs {
				out = append(out, r.ID)
			}
			return out
		}
		if !slices.Equal(ids(got), ids(want)) {
			t.Fatalf("step %d: cache has %v\nstorage.Recent %v", step, ids(got), ids(want))
		}
		if len(got) > 0 && (got[0].Relay == "" || got[0].MX == "") {
			t.Fatalf("step %d: lean fields missing: %+v", step, got[0])
		}
	}
}
