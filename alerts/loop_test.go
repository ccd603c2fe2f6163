package alerts

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/fakerelay"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// outboxKeys lists the keys of every message in the outbox, in order.
func outboxKeys(t *testing.T, st *storage.Store) []string {
	t.Helper()
	ms, err := st.PendingMessages(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, m := range ms {
		keys = append(keys, m.Key)
	}
	return keys
}

// TestRunKicksAndReminds runs the alert loop in a synctest bubble: it
// does nothing until kicked; a Kick reconciles once, evaluating through
// the monitor; an evaluation handed over by Observe is used as it is;
// its timer sends the reminder that is due, and none once reminders are
// turned off; it ends with its context.
func TestRunKicksAndReminds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		st, err := storage.Open(ctx, filepath.Join(t.TempDir(), "gmailtls.db"), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		mon := &fakeMonitor{evaluate: evaluator(st, time.Now), active: []string{"relay-3"}}
		mon.check = func(ctx context.Context, relay string, mx []string) ([]probe.Result, error) {
			rs := results(relay, relay == "relay-3", time.Now())
			if relay != "relay-3" {
				if _, _, err := st.RecordRun(ctx, storage.Run{Relay: relay, Trigger: message.SourceConfirm, StartedAt: time.Now()}, rs); err != nil {
					return nil, err
				}
			}
			return rs, nil
		}
		al := &Alerter{Store: st, Monitor: mon}
		al.Reload(config.Alerts{Channel: "CALERTS", RemindEvery: config.Duration{Duration: time.Hour}})
		done := make(chan error, 1)
		go func() { done <- al.Run(ctx) }()
		defer cancel()

		for range 3 {
			time.Sleep(5 * time.Minute)
			for _, r := range []string{"relay-1", "relay-2"} {
				if _, _, err := st.RecordRun(ctx, storage.Run{Relay: r, Trigger: message.SourceSchedule, StartedAt: time.Now()}, results(r, false, time.Now())); err != nil {
					t.Fatal(err)
				}
			}
		}
		synctest.Wait()
		if keys := outboxKeys(t, st); len(keys) != 0 || mon.evaluations != 0 {
			t.Fatalf("before any kick: %d evaluations, outbox %v", mon.evaluations, keys)
		}
		al.Kick()
		synctest.Wait()
		if keys := outboxKeys(t, st); !slices.Equal(keys, []string{"alert:1", "alert:2", "alert:3"}) || mon.evaluations != 1 {
			t.Fatalf("after a kick: %d evaluations, outbox %v", mon.evaluations, keys)
		}

		// An evaluation handed over with a change is reconciled as it is:
		// here it says relay-1 is gone, so its incident closes, and the
		// monitor is not asked to evaluate again.
		as, err := evaluator(st, time.Now)(ctx)
		if err != nil {
			t.Fatal(err)
		}
		as.Relays = slices.DeleteFunc(as.Relays, func(r escalation.RelayState) bool { return r.Relay == "relay-1" })
		al.Observe(monitor.Evaluation{Seq: 10, Assessment: as, Changes: []escalation.Change{{Relay: "relay-2"}}})
		synctest.Wait()
		if keys := outboxKeys(t, st); !slices.Contains(keys, "resolution:1") || mon.evaluations != 1 {
			t.Fatalf("after Observe: %d evaluations, outbox %v", mon.evaluations, keys)
		}
		// An older evaluation that ends late, or one that changed nothing
		// outside a scheduled round, does not wake the loop.
		n := len(outboxKeys(t, st))
		al.Observe(monitor.Evaluation{Seq: 9, Changes: []escalation.Change{{Relay: "relay-2"}}})
		al.Observe(monitor.Evaluation{Seq: 11, Trigger: message.SourceConfirm})
		synctest.Wait()
		if got := len(outboxKeys(t, st)); got != n || mon.evaluations != 1 {
			t.Fatalf("a stale or quiet evaluation woke the loop: %d evaluations, outbox %v", mon.evaluations, outboxKeys(t, st))
		}

		// The global incident (#3) is not acknowledged: its reminder comes
		// an hour after it opened, from the loop's own timer.
		time.Sleep(time.Hour)
		synctest.Wait()
		if keys := outboxKeys(t, st); !slices.Contains(keys, "remind:3:1") || slices.Contains(keys, "remind:3:2") {
			t.Fatalf("after an hour: outbox %v", keys)
		}
		// remind_every = "0s" turns reminders off.
		al.Reload(config.Alerts{Channel: "CALERTS"})
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		if keys := outboxKeys(t, st); slices.Contains(keys, "remind:3:2") {
			t.Fatalf("reminded with reminders off: %v", keys)
		}

		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
}

// TestKicksWhilePendingAreOne: Kick never blocks, and kicks that come
// before the loop took the pending one make a single Sync.
func TestKicksWhilePendingAreOne(t *testing.T) {
	var a Alerter
	for range 3 {
		a.Kick()
	}
	if n := len(a.loop.wake); n != 1 {
		t.Fatalf("%d wake-ups pending after three kicks, want 1", n)
	}
}

// evalCounter counts a monitor's evaluations by their trigger.
type evalCounter struct {
	mu sync.Mutex
	by map[message.Source]int
}

func (c *evalCounter) observe(ev monitor.Evaluation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[message.Source]int{}
	}
	c.by[ev.Trigger]++
}

func (c *evalCounter) get() map[message.Source]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[message.Source]int{}
	for k, v := range c.by {
		out[k] = v
	}
	return out
}

// TestScheduledRoundIsEvaluatedOnce: with the real monitor, each scheduled
// round is evaluated once, by the round itself; the alert loop reconciles
// with that evaluation instead of evaluating again. The only other
// evaluations are those of the confirming re-probes.
func TestScheduledRoundIsEvaluatedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st, err := storage.Open(ctx, filepath.Join(t.TempDir(), "gmailtls.db"), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		cfg := config.Default()
		cfg.Target.MX = []string{"127.0.0.1:2525", "mx2.test.example"}
		cfg.Relays = nil
		runners := map[string]relay.Runner{}
		fakes := map[string]*fakerelay.Runner{}
		for _, n := range []string{"relay-1", "relay-2", "relay-3"} {
			cfg.Relays = append(cfg.Relays, config.Relay{Name: n})
			fakes[n] = fakerelay.New(n, time.Now, cfg.Target.MX...)
			runners[n] = fakes[n]
		}
		if err := st.SyncRelays(ctx, relay.RelaySpecs(cfg)); err != nil {
			t.Fatal(err)
		}
		mon := monitor.New(monitor.Deps{Config: cfg, Store: st, Runners: runners})
		var count evalCounter
		mon.Subscribe(count.observe)
		al := &Alerter{Store: st, Monitor: mon}
		al.Reload(cfg.Alerts)
		al.Channel = "CALERTS"
		mon.Subscribe(al.Observe)
		go func() { _ = al.Run(ctx) }()

		round := func() {
			t.Helper()
			time.Sleep(5 * time.Minute)
			if err := mon.Round(ctx); err != nil {
				t.Fatal(err)
			}
			synctest.Wait() // the loop has reconciled
		}
		round()
		fakes["relay-1"].Set("tls_reset")
		for range 3 {
			round()
		}
		// relay-1 at investigate: its alert, confirmed by a re-probe of
		// relay-1 and a second opinion from relay-2.
		if keys := outboxKeys(t, st); !slices.Equal(keys, []string{"alert:1"}) {
			t.Fatalf("outbox %v, want the alert of relay-1", keys)
		}
		got := count.get()
		if got[message.SourceSchedule] != 4 || got[message.SourceConfirm] != 2 || got[""] != 0 || len(got) != 2 {
			t.Fatalf("evaluations by trigger %v: want 4 rounds evaluated once each, 2 re-probes, none on their own", got)
		}
		if fakes["relay-1"].Calls() != 5 || fakes["relay-2"].Calls() != 5 || fakes["relay-3"].Calls() != 4 {
			t.Errorf("probes: relay-1 %d, relay-2 %d, relay-3 %d", fakes["relay-1"].Calls(), fakes["relay-2"].Calls(), fakes["relay-3"].Calls())
		}
	})
}
