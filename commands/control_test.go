package commands

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// controlEnv is one local relay probing two loopback STARTTLS servers: the
// pinned "Gmail" target and the control MX ([target] control_mx), which the
// relay verifies under its own name (an IP here).
type controlEnv struct {
	gmail, control *smtptest.Server
	clock          *manualclock.Clock
	cfg            *config.Config
	runners        map[string]relay.Runner
	path           string
	store          *storage.Store
	mon            *monitor.Monitor
	h              *Handler
}

func newControlEnv(t *testing.T) *controlEnv {
	t.Helper()
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	// The clock is real time at the start, so that the servers' fresh
	// certificates are valid by it.
	e := &controlEnv{clock: manualclock.New(time.Now().UTC().Truncate(time.Second)), path: filepath.Join(t.TempDir(), "gmailtls.db")}
	e.gmail = smtptest.StartT(t, smtptest.Options{CA: ca, Hostname: "mx.test.example", Addr: "127.0.0.2:0"})
	e.control = smtptest.StartT(t, smtptest.Options{CA: ca, Hostname: "127.0.0.3", Addr: "127.0.0.3:0"})
	e.cfg = config.Default()
	e.cfg.Target.MX = []string{e.gmail.Addr()}
	e.cfg.Target.ControlMX = []string{e.control.Addr()}
	e.cfg.Relays = []config.Relay{{Name: "relay-1", Kind: relay.KindLocal}}
	l := relay.NewLocal("relay-1", probe.Config{
		Relay: "relay-1", Domain: "gmail.test", MX: []probe.Target{{Host: e.gmail.Host(), Port: e.gmail.Port()}},
		ServerName: "mx.test.example", RootCAs: ca.Pool, HelloName: "relay-1.test.example", Resolver: smtptest.NoDNS{},
		Timeout: 5 * time.Second, NoRetry: true, Now: e.clock.Now,
	}, nil)
	l.Now = e.clock.Now
	if l.Control, err = relay.ControlTargets(e.cfg); err != nil {
		t.Fatal(err)
	}
	e.runners = map[string]relay.Runner{"relay-1": l}
	e.open(t)
	t.Cleanup(func() { e.store.Close() })
	return e
}

// open (re)opens the database with a fresh monitor and handler: a restart.
func (e *controlEnv) open(t *testing.T) {
	t.Helper()
	st, err := storage.Open(context.Background(), e.path, storage.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SyncRelays(context.Background(), relay.RelaySpecs(e.cfg)); err != nil {
		t.Fatal(err)
	}
	e.store = st
	e.mon = monitor.New(monitor.Deps{Config: e.cfg, Store: st, Runners: e.runners, Now: e.clock.Now})
	e.h = New(Deps{Service: e.mon, Now: e.clock.Now, Location: time.UTC})
}

// checks runs n scheduled checks of relay-1, five minutes apart, and
// returns the last.
func (e *controlEnv) checks(t *testing.T, n int) monitor.CheckResult {
	t.Helper()
	var res monitor.CheckResult
	for range n {
		e.clock.Advance(5 * time.Minute)
		var err error
		res, err = e.mon.CheckRelay(context.Background(), monitor.Check{Relay: "relay-1", Trigger: message.SourceSchedule, RequestedBy: "schedule"})
		if err != nil {
			t.Fatal(err)
		}
	}
	return res
}

// TestControlPassedIsGmailSpecific: Gmail's handshake resets three times
// while the control MX, probed through the same relay beside each probe,
// passes: the relay is at investigate (one_host), the check answer says
// the failure is Gmail-specific, and the control's results are no Gmail
// results (one result per run in storage, no control host in them).
func TestControlPassedIsGmailSpecific(t *testing.T) {
	e := newControlEnv(t)
	e.gmail.SetBehavior(smtptest.ResetAfterReady)
	res := e.checks(t, 3)

	if res.State.Level != escalation.LevelInvestigate || res.State.Scope != escalation.ScopeOneHost {
		t.Fatalf("relay-1 %s (%s), want investigate (one_host)", res.State.Level, res.State.Scope)
	}
	if res.Control == nil || res.Control.Err != nil || !res.Control.Report.OK() || res.Control.Failed() {
		t.Fatalf("control %+v, want probed and passed", res.Control)
	}
	if n := e.control.Connections(); n != 3 {
		t.Errorf("%d connections to the control MX, want 3 (one per check)", n)
	}
	text := flat(e.h.CheckResponse(res, nil))
	want := "control " + e.control.Addr() + " ✓ passed — the failure is Gmail-specific"
	if !strings.Contains(text, want) {
		t.Errorf("check answer lacks %q:\n%s", want, text)
	}
	stored, err := e.store.Recent(context.Background(), time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 3 {
		t.Fatalf("%d stored results, want 3 (Gmail only)", len(stored))
	}
	for _, r := range stored {
		if r.IP != e.gmail.Host() || r.ControlFailed {
			t.Errorf("stored result %+v: want Gmail's, control not failed", r)
		}
	}
}

// TestControlFailedTooIsLocalInfrastructure: the relay's egress is broken
// (both servers reset every handshake): the relay's scope is
// local_infrastructure with advice not to escalate to Google, the check
// answer says the control failed too, status and the summary count the
// three Gmail failures only, and after a restart the scope is rebuilt
// from storage alike.
func TestControlFailedTooIsLocalInfrastructure(t *testing.T) {
	e := newControlEnv(t)
	e.gmail.SetBehavior(smtptest.ResetAfterReady)
	e.control.SetBehavior(smtptest.ResetAfterReady)
	res := e.checks(t, 3)
	if res.State.Level != escalation.LevelInvestigate || res.State.Scope != escalation.ScopeLocalInfra {
		t.Fatalf("relay-1 %s (%s), want investigate (local_infrastructure)", res.State.Level, res.State.Scope)
	}
	if !strings.Contains(res.State.Advice, "do not escalate to Google") {
		t.Errorf("advice %q", res.State.Advice)
	}
	text := flat(e.h.CheckResponse(res, nil))
	want := "control " + e.control.Addr() + " ✗ failed too (tls_reset ×1) — this relay's network, not Gmail"
	if !strings.Contains(text, want) {
		t.Errorf("check answer lacks %q:\n%s", want, text)
	}

	ctx := context.Background()
	for _, restarted := range []bool{false, true} {
		if restarted {
			if err := e.store.Close(); err != nil {
				t.Fatal(err)
			}
			e.open(t)
		}
		st, err := e.h.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Relays) != 1 || st.Relays[0].Scope != escalation.ScopeLocalInfra || st.Relays[0].ConsecutiveFailures != 3 {
			t.Errorf("restarted %v: status %+v, want local_infrastructure after 3 failures", restarted, st.Relays)
		}
		sum, err := e.h.Summary(ctx, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Relays) != 1 || sum.Relays[0].Attempts != 3 || sum.Relays[0].Failures != 3 || sum.Relays[0].ByClass["tls_reset"] != 3 {
			t.Errorf("restarted %v: summary %+v, want 3 attempts, 3 tls_reset failures (Gmail's only)", restarted, sum.Relays)
		}
	}
}
