package schedule

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func noop(context.Context) error                              { return nil }
func noopReport(context.Context, string, time.Duration) error { return nil }
func logTo(b *syncBuffer) *slog.Logger                        { return slog.New(slog.NewTextHandler(b, nil)) }
func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// syncBuffer is a log sink for concurrent jobs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// recorder counts job runs and keeps their (fake) times.
type recorder struct {
	mu    sync.Mutex
	times map[string][]time.Time
}

func (r *recorder) add(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.times == nil {
		r.times = map[string][]time.Time{}
	}
	r.times[name] = append(r.times[name], time.Now())
}

func (r *recorder) get(name string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.times[name]...)
}

// TestSchedulerDay runs one fake day in a synctest bubble: probing at the
// start and every 5 minutes, retention at the start and every hour, a report at 09:00
// Berlin with its channel and window.
func TestSchedulerDay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		berlin, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			t.Fatal(err)
		}
		var rec recorder
		var reports []string
		var mu sync.Mutex
		s, err := New(Config{
			Probing:    "@every 5m",
			Reports:    []ReportJob{{Spec: "CRON_TZ=Europe/Berlin 0 9 * * *", Channel: "CREP"}, {Spec: "@every 6h", Channel: "COPS", Window: time.Hour}},
			Location:   time.UTC,
			ProbeRound: func(context.Context) error { rec.add("probe"); return nil },
			Retention:  func(context.Context) error { rec.add("retention"); return nil },
			Report: func(_ context.Context, channel string, window time.Duration) error {
				rec.add("report:" + channel)
				mu.Lock()
				reports = append(reports, channel+" "+window.String())
				mu.Unlock()
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		s.Start()
		time.Sleep(24*time.Hour + time.Second)
		if err := s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := len(rec.get("probe")); n != 289 {
			t.Errorf("%d probing rounds in a day, want 289 (at the start and every 5 minutes)", n)
		}
		if ret := rec.get("retention"); len(ret) != 25 || !ret[0].Equal(start) || !ret[1].Equal(start.Add(time.Hour)) {
			t.Errorf("retention ran at %v, want at the start and every hour after (25 times)", ret)
		}
		for i, at := range rec.get("probe")[:3] {
			if want := start.Add(time.Duration(i) * 5 * time.Minute); !at.Equal(want) {
				t.Errorf("round %d at %s, want %s", i, at, want)
			}
		}
		daily := rec.get("report:CREP")
		if len(daily) != 1 {
			t.Fatalf("daily report ran %d times, want 1", len(daily))
		}
		if lt := daily[0].In(berlin); lt.Hour() != 9 || lt.Minute() != 0 {
			t.Errorf("daily report at %s Berlin, want 09:00", lt)
		}
		if n := len(rec.get("report:COPS")); n != 4 {
			t.Errorf("6-hourly report ran %d times, want 4", n)
		}
		mu.Lock()
		defer mu.Unlock()
		if !strings.Contains(strings.Join(reports, ","), "CREP 24h0m0s") || !strings.Contains(strings.Join(reports, ","), "COPS 1h0m0s") {
			t.Errorf("reports got %v, want the default 24h window and the configured 1h", reports)
		}
	})
}

// TestSlowRoundNeverOverlaps: a probing round that takes 12 minutes on a
// 5-minute schedule skips the runs that fall inside it.
func TestSlowRoundNeverOverlaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var running, maxRunning, rounds atomic.Int32
		var logs syncBuffer
		s, err := New(Config{
			Probing: "@every 5m",
			Logger:  logTo(&logs),
			ProbeRound: func(ctx context.Context) error {
				n := running.Add(1)
				defer running.Add(-1)
				if n > maxRunning.Load() {
					maxRunning.Store(n)
				}
				rounds.Add(1)
				time.Sleep(12 * time.Minute)
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		time.Sleep(time.Hour + time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if maxRunning.Load() != 1 {
			t.Errorf("%d rounds ran at once", maxRunning.Load())
		}
		// Runs start at 0 (the round at Start, through the same chain),
		// 15, 30, 45 and 60 (each 12 min; 5, 10, 20, 25 … skipped).
		if n := rounds.Load(); n != 5 {
			t.Errorf("%d rounds in an hour, want 5", n)
		}
		if !strings.Contains(logs.String(), "still running") {
			t.Errorf("skipped runs not logged:\n%s", logs.String())
		}
	})
}

// TestFirstRoundAtStart: the probing round runs once at Start, before any
// fake time passes, not one interval later; while it runs Running names
// it, and a slow first round skips the scheduled run it overlaps instead
// of running twice at once.
func TestFirstRoundAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started := make(chan time.Time, 10)
		release := make(chan struct{})
		var rounds atomic.Int32
		s, err := New(Config{
			Probing: "@every 5m",
			ProbeRound: func(ctx context.Context) error {
				if rounds.Add(1) == 1 {
					started <- time.Now()
					<-release
				}
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Running(); len(got) != 0 {
			t.Fatalf("running before Start: %v", got)
		}
		start := time.Now()
		s.Start()
		synctest.Wait()
		select {
		case at := <-started:
			if !at.Equal(start) {
				t.Errorf("first round at %s, want at Start (%s)", at, start)
			}
		default:
			t.Fatal("no probing round at Start")
		}
		if got := s.Running(); len(got) != 1 || got[0] != "probing" {
			t.Errorf("Running() = %v during the first round, want [probing]", got)
		}
		time.Sleep(5*time.Minute + time.Second) // the first scheduled run falls inside the first round
		if n := rounds.Load(); n != 1 {
			t.Errorf("%d rounds while the first one still runs, want 1", n)
		}
		close(release)
		synctest.Wait()
		if got := s.Running(); len(got) != 0 {
			t.Errorf("Running() = %v after the round ended, want none", got)
		}
		time.Sleep(5 * time.Minute)
		if n := rounds.Load(); n != 2 {
			t.Errorf("%d rounds after 10 minutes, want 2 (at Start, at 10 min)", n)
		}
		if err := s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPanickingJobIsRecovered: a panic is logged with its stack and the
// next run happens.
func TestPanickingJobIsRecovered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int32
		var logs syncBuffer
		s, err := New(Config{
			Probing: "@every 1m",
			Logger:  logTo(&logs),
			ProbeRound: func(context.Context) error {
				if runs.Add(1) == 1 {
					panic("relay table corrupted")
				}
				return errors.New("relay-3: could not record the run")
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		time.Sleep(3*time.Minute + time.Second)
		if err := s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if runs.Load() != 4 { // at Start, then 1, 2 and 3 minutes
			t.Errorf("%d runs, want 4", runs.Load())
		}
		for _, want := range []string{"relay table corrupted", "job failed", "could not record the run", "job=probing"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs.String())
			}
		}
	})
}

// TestStopWaitsForRunningJobs: Stop waits for a running round that ends
// within the bound; a round that does not is cancelled and Stop says so.
func TestStopWaitsForRunningJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		finished := make(chan struct{})
		s, err := New(Config{
			Probing: "@every 1m",
			ProbeRound: func(ctx context.Context) error {
				time.Sleep(20 * time.Second)
				close(finished)
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		time.Sleep(time.Minute + 5*time.Second) // the round runs since 15 s
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 15*time.Second {
			t.Errorf("Stop returned after %s, want 15s (the rest of the round)", d)
		}
		select {
		case <-finished:
		default:
			t.Error("Stop returned before the round finished")
		}
	})

	synctest.Test(t, func(t *testing.T) {
		cancelled := make(chan struct{})
		s, err := New(Config{
			Probing: "@every 1m",
			ProbeRound: func(ctx context.Context) error {
				<-ctx.Done() // a round stuck on a dead relay
				close(cancelled)
				return ctx.Err()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		time.Sleep(time.Minute + time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = s.Stop(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "shutdown bound") {
			t.Fatalf("Stop = %v, want the bound exceeded", err)
		}
		<-cancelled
	})
}
