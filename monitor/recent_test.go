package monitor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/message"
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
		// A run starts before its results, by up to 30 s (DNS, the bound
		// on probes at once), so that runs of one relay can overlap.
		runAt := at.Add(-time.Duration(rng.IntN(30)) * time.Second)
		if _, _, err := st.RecordRun(ctx, storage.Run{Relay: name, Trigger: message.SourceSchedule, StartedAt: runAt}, rs); err != nil {
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

// TestRecentCacheAfterIDsAreReused: once retention has deleted every raw
// result, SQLite gives new results the old ids again; the cache still
// sees them.
func TestRecentCacheAfterIDsAreReused(t *testing.T) {
	ctx := context.Background()
	st, err := storage.Open(ctx, filepath.Join(t.TempDir(), "gmailtls.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SyncRelays(ctx, []storage.RelaySpec{{Name: "relay-1", Kind: "local"}}); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	record := func(n int) {
		t.Helper()
		for range n {
			now = now.Add(5 * time.Minute)
			r := probe.Result{Relay: "relay-1", MX: "mx.test", IP: "192.0.2.1", Port: 25, StartedAt: now, Hints: []string{}}
			if _, _, err := st.RecordRun(ctx, storage.Run{Relay: "relay-1", Trigger: message.SourceSchedule, StartedAt: now}, []probe.Result{r}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var c recentCache
	record(10)
	if got, err := c.results(ctx, st, now, 15*time.Minute, 5, []string{"relay-1"}); err != nil || len(got) != 5 {
		t.Fatalf("before retention: %d results, %v", len(got), err)
	}
	// Forty days without probes, then retention rolls everything up.
	now = now.Add(40 * 24 * time.Hour)
	if _, err := st.Rollup(ctx, now, now.AddDate(-1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	record(3)
	got, err := c.results(ctx, st, now, 15*time.Minute, 5, []string{"relay-1"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := st.Recent(ctx, now.Add(-15*time.Minute), 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 3 || len(got) != len(want) || got[len(got)-1].ID != want[len(want)-1].ID {
		t.Fatalf("after ids were reused: cache %d results, storage.Recent %d", len(got), len(want))
	}
}
