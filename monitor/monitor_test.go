package monitor

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/fakerelay"
	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// testEnv is a Monitor over a real SQLite file with scripted relays.
type testEnv struct {
	t       *testing.T
	clock   *manualclock.Clock
	cfg     *config.Config
	store   *storage.Store
	path    string
	runners map[string]*fakerelay.Runner
	m       *Monitor

	mu    sync.Mutex
	evals []Evaluation
}

var testBase = time.Date(2026, 5, 4, 12, 3, 0, 0, time.UTC)

func newTestEnv(t *testing.T, relays ...string) *testEnv {
	t.Helper()
	clock := manualclock.New(testBase)
	cfg, runners := fakerelay.Lab(clock.Now, relays...)
	e := &testEnv{t: t, clock: clock, cfg: cfg, runners: runners, path: filepath.Join(t.TempDir(), "gmailtls.db")}
	e.open()
	t.Cleanup(func() { e.store.Close() })
	return e
}

// open (re)opens the database and builds a fresh Monitor: a restart.
func (e *testEnv) open() {
	e.t.Helper()
	st, err := storage.Open(context.Background(), e.path, storage.Options{Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := st.SyncRelays(context.Background(), relay.RelaySpecs(e.cfg)); err != nil {
		e.t.Fatal(err)
	}
	e.store = st
	e.m = New(Deps{Config: e.cfg, Store: st, Runners: e.relayRunners(), Now: e.clock.Now})
	e.m.Subscribe(func(ev Evaluation) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.evals = append(e.evals, ev)
	})
}

func (e *testEnv) relayRunners() map[string]relay.Runner {
	runners := map[string]relay.Runner{}
	for n, r := range e.runners {
		runners[n] = r
	}
	return runners
}

func (e *testEnv) restart() {
	e.t.Helper()
	if err := e.store.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

// check runs one scheduled check of relay with the given outcome, five
// minutes after the previous one.
func (e *testEnv) check(relayName, outcome string) CheckResult {
	e.t.Helper()
	e.clock.Advance(5 * time.Minute)
	e.runners[relayName].Set(outcome)
	res, err := e.m.CheckRelay(context.Background(), Check{Relay: relayName, Trigger: message.SourceSchedule, RequestedBy: "scheduler"})
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// evaluations returns what the subscriber was handed so far.
func (e *testEnv) evaluations() []Evaluation {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.evals)
}

// TestSubscriberMayReprobe: a subscriber confirms a failure with a second
// probe of the same relay from inside its callback, without deadlock, and
// sees both evaluations, numbered in order.
func TestSubscriberMayReprobe(t *testing.T) {
	e := newTestEnv(t)
	var confirmed []CheckResult
	var seqs []uint64
	e.m.Subscribe(func(ev Evaluation) {
		seqs = append(seqs, ev.Seq)
		if len(ev.Checks) != 1 || ev.Trigger == message.SourceConfirm {
			return
		}
		res, err := e.m.CheckRelay(context.Background(), Check{Relay: ev.Checks[0].Relay, Trigger: message.SourceConfirm, RequestedBy: "alerts"})
		if err != nil {
			t.Error(err)
		}
		confirmed = append(confirmed, res)
	})
	e.runners["relay-1"].Set("tls_reset")
	if _, err := e.m.CheckRelay(context.Background(), Check{Relay: "relay-1", Trigger: message.SourceSchedule, RequestedBy: "scheduler"}); err != nil {
		t.Fatal(err)
	}
	if len(confirmed) != 1 || confirmed[0].OK() || e.runners["relay-1"].Calls() != 2 {
		t.Fatalf("confirmations: %+v, calls %d", confirmed, e.runners["relay-1"].Calls())
	}
	if !slices.Equal(seqs, []uint64{1, 2}) {
		t.Fatalf("evaluations numbered %v, want [1 2]", seqs)
	}
}

// TestOneSnapshotPerCheck: a SIGHUP reload in the middle of a CheckAll
// does not mix two configurations: every relay of the old one is probed
// and evaluated with the old relays and policy; the next check takes the
// new ones.
func TestOneSnapshotPerCheck(t *testing.T) {
	e := newTestEnv(t, "relay-1", "relay-2")
	ctx := context.Background()
	started := make(chan string, 2)
	var releases []func()
	for _, n := range []string{"relay-1", "relay-2"} {
		e.runners[n].Set("tls_reset")
		releases = append(releases, e.runners[n].Hold(started))
	}
	type outcome struct {
		checks []CheckResult
		err    error
	}
	done := make(chan outcome, 1)
	go func() {
		checks, err := e.m.CheckAll(ctx, Check{Trigger: message.SourceSchedule, RequestedBy: "schedule"})
		done <- outcome{checks, err}
	}()
	<-started
	<-started

	// The reload: relay-2 is gone, relay-3 is new, and one failure is now
	// enough for investigate.
	e.cfg = config.Default()
	e.cfg.Target.MX = []string{"127.0.0.1:2525"}
	e.cfg.Relays = []config.Relay{{Name: "relay-1"}, {Name: "relay-3"}}
	e.cfg.Escalation.Consecutive = 1
	r3 := fakerelay.New("relay-3", e.clock.Now, "127.0.0.1:2525")
	e.m.Reload(e.cfg, map[string]relay.Runner{"relay-1": e.runners["relay-1"], "relay-3": r3})
	if got := e.m.Snapshot().Names(); !slices.Equal(got, []string{"relay-1", "relay-3"}) {
		t.Fatalf("after the reload the relays are %v", got)
	}
	for _, release := range releases {
		release()
	}
	out := <-done
	if out.err != nil {
		t.Fatal(out.err)
	}
	var names []string
	for _, c := range out.checks {
		names = append(names, c.Relay)
		// The old policy: one failure is watch (the new one would make it
		// investigate).
		if c.State.Level != escalation.LevelWatch {
			t.Errorf("%s at %s after one failure, want watch under the policy the check began with", c.Relay, c.State.Level)
		}
	}
	if !slices.Equal(names, []string{"relay-1", "relay-2"}) {
		t.Fatalf("checked %v, want the relays of the configuration the check began with", names)
	}
	if r3.Calls() != 0 {
		t.Error("a relay added by the reload was probed by the check under way")
	}
	evs := e.evaluations()
	last := evs[len(evs)-1].Assessment
	if _, ok := last.Relay("relay-2"); !ok {
		t.Errorf("the evaluation of the check under way left out relay-2 of its own configuration: %+v", last.Relays)
	}
	if _, ok := last.Relay("relay-3"); ok {
		t.Errorf("the evaluation of the check under way took relay-3 from the new configuration: %+v", last.Relays)
	}

	// The next check runs under the new configuration.
	e.clock.Advance(5 * time.Minute)
	r3.Set("tls_reset")
	res, err := e.m.CheckRelay(ctx, Check{Relay: "relay-3", Trigger: message.SourceSchedule})
	if err != nil {
		t.Fatal(err)
	}
	if res.State.Level != escalation.LevelInvestigate {
		t.Errorf("relay-3 at %s after one failure under consecutive = 1, want investigate", res.State.Level)
	}
	if _, err := e.m.CheckRelay(ctx, Check{Relay: "relay-2"}); !errors.Is(err, ErrUnknownRelay) {
		t.Errorf("relay-2 after the reload: %v, want ErrUnknownRelay", err)
	}
}

// TestPreparedCheckIsNotCheckedAgain: a Check prepared against a snapshot
// runs under it, its MX host resolved once to the configured entry, even
// after a reload that would refuse it.
func TestPreparedCheckIsNotCheckedAgain(t *testing.T) {
	e := newTestEnv(t, "relay-1")
	c, err := e.m.Snapshot().Prepare(Check{Relay: "relay-1", MX: []string{"127.0.0.1"}, Trigger: message.SourceCLI})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.MX, []string{"127.0.0.1:2525"}) {
		t.Fatalf("prepared MX %v, want the configured entry", c.MX)
	}
	cfg := config.Default()
	cfg.Target.MX = []string{"mx2.test.example"}
	cfg.Relays = []config.Relay{{Name: "relay-1"}}
	e.m.Reload(cfg, e.relayRunners())
	if _, err := e.m.Snapshot().Prepare(Check{Relay: "relay-1", MX: []string{"127.0.0.1"}}); !errors.Is(err, ErrTarget) {
		t.Fatalf("under the new configuration: %v, want ErrTarget", err)
	}
	res, err := e.m.CheckRelay(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.runners["relay-1"].Options(); len(got) != 1 || !slices.Equal(got[0].MX, []string{"127.0.0.1:2525"}) {
		t.Fatalf("probed with %+v", got)
	}
	if len(res.Report.Results) != 1 {
		t.Fatalf("%d results", len(res.Report.Results))
	}
	// An unprepared check is prepared against the configuration in force.
	if _, err := e.m.CheckRelay(context.Background(), Check{Relay: "relay-1", MX: []string{"10.0.0.1:25"}}); !errors.Is(err, ErrTarget) {
		t.Errorf("unprepared check toward another host: %v, want ErrTarget", err)
	}
}

// TestResolveMX: --mx names an entry of the configured target, never
// another host, port or address.
func TestResolveMX(t *testing.T) {
	pinned := NewSnapshot(&config.Config{Target: config.Target{MX: []string{"127.0.0.1:2525", "mx2.test.example"}}}, nil, escalation.Policy{})
	for arg, want := range map[string]string{"127.0.0.1": "127.0.0.1:2525", "127.0.0.1:2525": "127.0.0.1:2525", "[127.0.0.1]": "127.0.0.1:2525", "MX2.test.example.": "mx2.test.example"} {
		if got, err := pinned.ResolveMX(arg); err != nil || got != want {
			t.Errorf("pinned %q: %q, %v; want %q", arg, got, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1:25", "127.0.0.2:2525", "[::1]:2525", "evil.example.org"} {
		if _, err := pinned.ResolveMX(bad); !errors.Is(err, ErrTarget) || !strings.Contains(err.Error(), "pinned MX hosts") {
			t.Errorf("pinned %q: %v, want ErrTarget", bad, err)
		}
	}
	gmail := NewSnapshot(&config.Config{Target: config.Target{Domain: "gmail.com"}}, nil, escalation.Policy{})
	if got, err := gmail.ResolveMX("alt2.gmail-smtp-in.l.google.com"); err != nil || got != "alt2.gmail-smtp-in.l.google.com" {
		t.Errorf("alt2: %q %v", got, err)
	}
	for _, bad := range []string{"smtp.gmail.com", "142.250.1.27", "gmail-smtp-in.l.google.com:26", "example.com"} {
		if _, err := gmail.ResolveMX(bad); !errors.Is(err, ErrTarget) {
			t.Errorf("gmail %q: %v, want ErrTarget", bad, err)
		}
	}
	other := NewSnapshot(&config.Config{Target: config.Target{Domain: "example.net"}}, nil, escalation.Policy{})
	if got, err := other.ResolveMX("mx1.example.net"); err != nil || got != "mx1.example.net" {
		t.Errorf("other domain host: %q %v", got, err)
	}
	for _, bad := range []string{"192.0.2.1", "mx1.example.net:25", "[2001:db8::1]"} {
		if _, err := other.ResolveMX(bad); !errors.Is(err, ErrTarget) {
			t.Errorf("other domain %q: %v, want ErrTarget", bad, err)
		}
	}
}

// TestRoundSkipsPausedRelays: the scheduled round leaves out a paused
// relay (ActiveRelays, the one place that says what paused means), "check
// all" does not, and the round's evaluation says it came from the
// schedule.
func TestRoundSkipsPausedRelays(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	if err := e.store.PauseRelay(ctx, "relay-3", testBase.Add(2*time.Hour), "ops"); err != nil {
		t.Fatal(err)
	}
	active, err := e.m.ActiveRelays(ctx)
	if err != nil || !slices.Equal(active, []string{"relay-1", "relay-2"}) {
		t.Fatalf("active relays %v, %v", active, err)
	}
	if err := e.m.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if e.runners["relay-3"].Calls() != 0 || e.runners["relay-1"].Calls() != 1 {
		t.Fatalf("round probed relay-3 %d times, relay-1 %d times", e.runners["relay-3"].Calls(), e.runners["relay-1"].Calls())
	}
	evs := e.evaluations()
	if len(evs) != 1 || evs[0].Trigger != message.SourceSchedule || len(evs[0].Checks) != 2 {
		t.Fatalf("the round was evaluated %d times: %+v", len(evs), evs)
	}
	if _, err := e.m.CheckAll(ctx, Check{Trigger: message.SourceSlash}); err != nil {
		t.Fatal(err)
	}
	if e.runners["relay-3"].Calls() != 1 {
		t.Error("check all left out the paused relay")
	}
	// Once the pause is over, the round takes it again.
	e.clock.Advance(3 * time.Hour)
	if err := e.m.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if e.runners["relay-3"].Calls() != 2 {
		t.Error("the round left out a relay whose pause is over")
	}
}

// TestRoundOfPausedRelaysIsEvaluated: a round that probes nothing (every
// relay paused) is still evaluated once, so its subscribers (the alerter)
// catch up as after any round.
func TestRoundOfPausedRelaysIsEvaluated(t *testing.T) {
	e := newTestEnv(t, "relay-1")
	ctx := context.Background()
	if err := e.store.PauseRelay(ctx, "relay-1", testBase.Add(time.Hour), "ops"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Round(ctx); err != nil {
		t.Fatal(err)
	}
	evs := e.evaluations()
	if len(evs) != 1 || evs[0].Trigger != message.SourceSchedule || len(evs[0].Checks) != 0 || e.runners["relay-1"].Calls() != 0 {
		t.Fatalf("evaluations %+v, probes %d", evs, e.runners["relay-1"].Calls())
	}
}
