package storage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
)

func TestSummaryRawAndRollups(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		c := manualclock.New(t0)
		s := e.open(t, "", c)
		if err := s.SyncRelays(ctx, []RelaySpec{{Name: "relay-1"}, {Name: "relay-2"}, {Name: "relay-3"}}); err != nil {
			t.Fatal(err)
		}
		// Two days, every 5 minutes, 2 MX per run; relay-2 fails every 12th
		// run (once an hour).
		start := t0.Add(-48 * time.Hour)
		fill(t, s, []string{"relay-1", "relay-2"}, start, 48*12, func(r string, i int) bool { return r == "relay-2" && i%12 == 3 })

		check := func(label string) {
			t.Helper()
			sums, err := s.Summary(ctx, start, t0)
			if err != nil {
				t.Fatal(err)
			}
			if len(sums) != 3 {
				t.Fatalf("%s: %d summaries", label, len(sums))
			}
			r1, r2, r3 := sums[0], sums[1], sums[2]
			if r1.Relay != "relay-1" || r1.Attempts != 48*12*2 || r1.Failures != 0 || len(r1.Hourly) != 48 {
				t.Fatalf("%s: relay-1 %+v", label, r1)
			}
			if r1.MedianHandshakeMS != 45.6 {
				t.Errorf("%s: median %v", label, r1.MedianHandshakeMS)
			}
			if r2.Failures != 48*2 || !maps.Equal(r2.ByClass, map[string]int{"tls_reset": 96}) {
				t.Errorf("%s: relay-2 failures %d %v", label, r2.Failures, r2.ByClass)
			}
			for _, h := range r2.Hourly {
				if h.Attempts != 24 || h.Failures != 2 {
					t.Fatalf("%s: relay-2 hour %+v", label, h)
				}
			}
			lastFail := start.Add((47*12 + 3) * 5 * time.Minute).Add(time.Millisecond)
			if !r2.LastFailure.Equal(lastFail) || r2.LastFailureClass != "tls_reset" {
				t.Errorf("%s: relay-2 last failure %v %q, want %v", label, r2.LastFailure, r2.LastFailureClass, lastFail)
			}
			wantOK := start.Add((48*12 - 1) * 5 * time.Minute).Add(time.Millisecond)
			if !r2.LastSuccess.Equal(wantOK) {
				t.Errorf("%s: relay-2 last success %v, want %v", label, r2.LastSuccess, wantOK)
			}
			if r3.Attempts != 0 || !r3.LastSuccess.IsZero() || len(r3.Hourly) != 48 {
				t.Errorf("%s: relay-3 %+v", label, r3)
			}
		}
		check("raw")

		// Roll up everything older than 24 hours: the same figures.
		st, err := s.Rollup(ctx, t0.Add(-24*time.Hour), t0.AddDate(-1, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if st.RelayHours != 2*24 || st.Rolled != 2*24*12*2 || st.RunsDeleted != 2*24*12 {
			t.Fatalf("rollup stats %+v", st)
		}
		check("rolled")
		rolls, err := s.Rollups(ctx, start, t0)
		if err != nil {
			t.Fatal(err)
		}
		if len(rolls) != 2*24*2 || rolls[0].Attempts != 12 || rolls[0].P50HandshakeMS != 45.6 || rolls[0].P95HandshakeMS != 45.6 {
			t.Fatalf("rollups: %d, first %+v", len(rolls), rolls[0])
		}
		hist, _ := s.History(ctx, HistoryQuery{})
		if len(hist) != 2*24*12*2 {
			t.Fatalf("raw rows left: %d", len(hist))
		}

		// Roll up all raw rows: last success and failure come from the
		// rollups now (ms precision kept in rollup_last).
		if _, err := s.Rollup(ctx, t0, t0.AddDate(-1, 0, 0)); err != nil {
			t.Fatal(err)
		}
		check("all rolled")

		// A late raw row older than the watermark is merged on the next pass.
		late := start.Add(30 * time.Minute)
		if _, _, err := s.RecordRun(ctx, Run{Relay: "relay-1"}, []probe.Result{failResult("relay-1", mx1, "192.0.2.1", "", late, probe.FailTLSTimeout)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Rollup(ctx, t0, t0.AddDate(-1, 0, 0)); err != nil {
			t.Fatal(err)
		}
		sums, _ := s.Summary(ctx, start, t0)
		if sums[0].Attempts != 48*12*2+1 || sums[0].ByClass["tls_timeout"] != 1 || sums[0].Hourly[0].Failures != 1 {
			t.Fatalf("late row: %+v", sums[0])
		}

		// Rollups past the rollup retention go.
		st, err = s.Rollup(ctx, t0, t0.Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if st.RollupsDeleted != 2*24*2 {
			t.Fatalf("rollups deleted: %+v", st)
		}
		if err := s.IntegrityCheck(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSummaryWindowErrors(t *testing.T) {
	s := openTest(t, "", nil)
	if _, err := s.Summary(context.Background(), t0, t0); err == nil {
		t.Error("empty window accepted")
	}
}

func TestMedianAndPercentile(t *testing.T) {
	if m := median(map[int64]float64{10: 1, 20: 1}); m != 15 {
		t.Errorf("median even %v", m)
	}
	if m := median(map[int64]float64{10: 1, 20: 1, 30: 1}); m != 20 {
		t.Errorf("median odd %v", m)
	}
	if m := median(nil); m != 0 {
		t.Errorf("median empty %v", m)
	}
	v := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if p := percentile(v, 50); p != 5 {
		t.Errorf("p50 %d", p)
	}
	if p := percentile(v, 95); p != 10 {
		t.Errorf("p95 %d", p)
	}
}

func TestBackupAndIntegrity(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		s := e.open(t, "", manualclock.New(t0))
		fill(t, s, []string{"relay-1"}, t0, 10, nil)
		dst := filepath.Join(t.TempDir(), "backup.db")
		if e.name == EnginePostgres {
			err := s.Backup(ctx, dst)
			if !errors.Is(err, ErrBackupPostgres) || !strings.Contains(err.Error(), "pg_dump") {
				t.Fatalf("Backup on PostgreSQL = %v; want ErrBackupPostgres naming pg_dump", err)
			}
			if err := s.IntegrityCheck(ctx); err != nil {
				t.Fatal(err)
			}
			return
		}
		if err := s.Backup(ctx, dst); err != nil {
			t.Fatal(err)
		}
		if err := s.Backup(ctx, dst); err == nil {
			t.Error("backup over an existing file accepted")
		}
		b := openTest(t, dst, nil)
		if err := b.IntegrityCheck(ctx); err != nil {
			t.Fatal(err)
		}
		h, err := b.History(ctx, HistoryQuery{})
		if err != nil || len(h) != 20 {
			t.Fatalf("backup history: %d %v", len(h), err)
		}
	})
}

// TestSummaryBusyHour fills one relay-hour past exactMedianMax successes:
// inserts stay cheap and the median stays within the values seen.
func TestSummaryBusyHour(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		s := e.open(t, "", manualclock.New(t0))
		var batch []RunWithResults
		for i := range 150 {
			at := t0.Add(time.Duration(i) * 20 * time.Second)
			rw := RunWithResults{Run: Run{Relay: "relay-1", Trigger: message.SourceSlash, StartedAt: at}}
			for j := range 10 {
				r := okResult("relay-1", mx1, fmt.Sprintf("192.0.2.%d", j), "", at)
				r.Timings.Handshake = 40
				if i >= 100 {
					r.Timings.Handshake = 50
				}
				rw.Results = append(rw.Results, r)
			}
			batch = append(batch, rw)
			if len(batch) == 10 {
				if err := s.RecordRuns(ctx, batch); err != nil {
					t.Fatal(err)
				}
				batch = nil
			}
		}
		sums, err := s.Summary(ctx, t0, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if sums[0].Attempts != 1500 || sums[0].MedianHandshakeMS < 40 || sums[0].MedianHandshakeMS > 50 {
			t.Fatalf("busy hour: %+v", sums[0])
		}
	})
}
