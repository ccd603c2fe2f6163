package schedule

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/storage"
)

// countingStore counts the rollups retention asks for.
type countingStore struct {
	*storage.Store
	rollups atomic.Int32
}

func (c *countingStore) Rollup(ctx context.Context, rawBefore, rollupBefore time.Time) (storage.RollupStats, error) {
	c.rollups.Add(1)
	return c.Store.Rollup(ctx, rawBefore, rollupBefore)
}

// TestRetentionIsAScheduledJob: built from the configuration beside the
// probing round, retention runs at Start (results older than [retention]
// raw become hourly rollups at once, newer ones stay) and then every hour,
// on the scheduler's clock, until Stop.
func TestRetentionIsAScheduledJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st, err := storage.Open(ctx, filepath.Join(t.TempDir(), "gmailtls.db"), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.SyncRelays(ctx, []storage.RelaySpec{{Name: "relay-1", Kind: "local"}}); err != nil {
			t.Fatal(err)
		}
		record := func(at time.Time) {
			t.Helper()
			r := probe.Result{Relay: "relay-1", MX: "mx.test", IP: "192.0.2.1", Port: 25, StartedAt: at, OK: true, Hints: []string{}}
			if _, _, err := st.RecordRun(ctx, storage.Run{Relay: "relay-1", Trigger: message.SourceSchedule, StartedAt: at}, []probe.Result{r}); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now()
		record(now.Add(-40 * 24 * time.Hour)) // older than raw (30 days)
		record(now.Add(-time.Hour))

		cfg := config.Default()
		cfg.Probing.Schedule = "off"
		cs := &countingStore{Store: st}
		s, err := FromConfig(cfg, Jobs{Store: cs, Round: noop})
		if err != nil {
			t.Fatal(err)
		}
		if jobs := s.Jobs(); len(jobs) != 1 || jobs[0].Name != "retention" || jobs[0].Spec != DefaultRetention {
			t.Fatalf("jobs %+v, want retention alone", jobs)
		}
		s.Start()
		synctest.Wait()
		if n := cs.rollups.Load(); n != 1 {
			t.Fatalf("%d rollups at start, want 1", n)
		}
		kept, err := st.History(ctx, storage.HistoryQuery{Relay: "relay-1", Since: now.Add(-400 * 24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if len(kept) != 1 || !kept[0].StartedAt.Equal(now.Add(-time.Hour)) {
			t.Fatalf("raw results after retention: %+v, want the recent one only", kept)
		}
		rolled, err := st.Rollups(ctx, now.Add(-41*24*time.Hour), now)
		if err != nil || len(rolled) != 1 || rolled[0].Attempts != 1 {
			t.Fatalf("rollups %+v, %v; want the old result's hour", rolled, err)
		}

		time.Sleep(3*time.Hour + time.Second)
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if n := cs.rollups.Load(); n != 4 {
			t.Errorf("%d rollups after three hours, want 4 (at start, then hourly)", n)
		}
	})
}
