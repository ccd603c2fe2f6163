package monitor

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/fakerelay"
	"github.com/gmailtls/gmailtls/maillog"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// logRelay is a fake relay whose mail log says what the test sets.
type logRelay struct {
	*fakerelay.Runner
	mu      sync.Mutex
	summary maillog.Summary
	err     error
	windows []time.Duration
}

func (l *logRelay) Log(_ context.Context, window time.Duration) (maillog.Summary, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.windows = append(l.windows, window)
	return l.summary, l.err
}

func (l *logRelay) set(s maillog.Summary, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.summary, l.err = s, err
}

var _ relay.LogReader = (*logRelay)(nil)

// failingLog is a mail log whose MTA failed 30 TLS handshakes toward the
// target's first MX (127.0.0.1, as fakerelay probes it), with queue IDs
// Gmail-bound by name, by MX (a Workspace domain) or not at all.
func failingLog(now time.Time) maillog.Summary {
	return maillog.Summary{Source: "/var/log/mail.log", Since: now.Add(-time.Hour), Until: now, Available: true,
		MX: []maillog.MXCount{
			{IP: "127.0.0.1", Host: "127.0.0.1", TLSFailures: 30, Delivered: 1},
			{IP: "203.0.113.9", Host: "mx.other.example", ConnectFailures: 50}, // not the target
		},
		Queue: []maillog.Queued{
			{QueueID: "4D8E45103FE", Domains: []string{"gmail.com"}, Attempts: []maillog.Attempt{{MXIP: "127.0.0.1", Status: "deferred"}}},
			{QueueID: "5A1B2C3D4E", Domains: []string{"workspace.example"}, Attempts: []maillog.Attempt{{MXHost: "mx2.test.example", Status: "deferred"}}},
			{QueueID: "467615103FA", Domains: []string{"googlemail.com"}, Attempts: []maillog.Attempt{{Status: "deferred", Suspended: true}},
				Delivered: true},
			{QueueID: "99AA88BB77", Domains: []string{"other.example"}, Attempts: []maillog.Attempt{{MXIP: "203.0.113.9", Status: "deferred"}}},
		}}
}

// TestMailLogFailuresMakeAPassingRelayWatch: a relay whose probes pass
// but whose MTA logged 30 TLS failures toward the target in the last hour
// is at watch (one_host, handshake) from the sample stored beside its
// probe, after a restart too; a calm log brings it back to ok.
func TestMailLogFailuresMakeAPassingRelayWatch(t *testing.T) {
	e := newTestEnv(t, "relay-1")
	ctx := context.Background()
	lr := &logRelay{Runner: e.runners["relay-1"]}
	build := func() {
		e.m = New(Deps{Config: e.cfg, Store: e.store, Runners: map[string]relay.Runner{"relay-1": lr}, Now: e.clock.Now})
	}
	build()
	check := func() CheckResult {
		t.Helper()
		e.clock.Advance(5 * time.Minute)
		res, err := e.m.CheckRelay(ctx, Check{Relay: "relay-1", Trigger: message.SourceSchedule, RequestedBy: "scheduler"})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	lr.set(failingLog(e.clock.Now()), nil)
	res := check()
	if !res.OK() {
		t.Fatalf("the probe failed: %+v", res.Report)
	}
	if res.State.Level != escalation.LevelWatch || res.State.Scope != escalation.ScopeOneHost ||
		res.State.Cause != escalation.CauseHandshake || res.State.Advice != escalation.AdviceLogHandshake {
		t.Fatalf("state %s (%s, %s) %q, want watch (one_host, handshake) with the mail log advice", res.State.Level, res.State.Scope, res.State.Cause, res.State.Advice)
	}
	if len(res.Changes) == 0 || res.Changes[0].To != escalation.LevelWatch {
		t.Fatalf("changes %+v, want ok -> watch announced", res.Changes)
	}
	lr.mu.Lock()
	windows := lr.windows
	lr.mu.Unlock()
	if len(windows) != 1 || windows[0] != time.Hour {
		t.Fatalf("log windows asked %v, want one hour", windows)
	}
	got, err := e.store.LogSamples(ctx, "relay-1", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := storage.LogSample{Relay: "relay-1", At: e.clock.Now(), Window: time.Hour, TLSFailures: 30, Delivered: 1, Stuck: 2, DeliveredLater: 1}
	if len(got) != 1 || !got[0].At.Equal(want.At) {
		t.Fatalf("stored samples %+v", got)
	}
	got[0].At = want.At
	if got[0] != want {
		t.Fatalf("stored sample %+v\nwant %+v (the other MX and the non-Gmail queue ID left out, the Workspace one counted)", got[0], want)
	}

	// A restart rebuilds the state from storage: still watch.
	e.restart()
	build()
	a, err := e.m.Assess(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rs, _ := a.Relay("relay-1"); rs.Level != escalation.LevelWatch || !rs.LogRule {
		t.Fatalf("after a restart: %s (log rule %v), want watch", rs.Level, rs.LogRule)
	}

	// The MTA recovers: its next sample is calm, the relay ok.
	lr.set(maillog.Summary{Available: true, Since: e.clock.Now().Add(-time.Hour), Until: e.clock.Now(),
		MX: []maillog.MXCount{{IP: "127.0.0.1", Delivered: 12}}}, nil)
	if res := check(); res.State.Level != escalation.LevelOK {
		t.Fatalf("after a calm log: %s, want ok", res.State.Level)
	}
}

// TestMailLogUnavailableIsNoSample: a relay without a readable mail log
// (or whose read fails) stores no sample and its probes alone decide.
func TestMailLogUnavailableIsNoSample(t *testing.T) {
	e := newTestEnv(t, "relay-1")
	ctx := context.Background()
	lr := &logRelay{Runner: e.runners["relay-1"]}
	e.m = New(Deps{Config: e.cfg, Store: e.store, Runners: map[string]relay.Runner{"relay-1": lr}, Now: e.clock.Now})
	for _, tc := range []struct {
		s   maillog.Summary
		err error
	}{
		{maillog.Summary{Error: "no mail log configured on this relay", MX: failingLog(e.clock.Now()).MX}, nil},
		{failingLog(e.clock.Now()), errors.New("agent unreachable")},
	} {
		lr.set(tc.s, tc.err)
		e.clock.Advance(5 * time.Minute)
		res, err := e.m.CheckRelay(ctx, Check{Relay: "relay-1", Trigger: message.SourceSchedule})
		if err != nil {
			t.Fatal(err)
		}
		if res.State.Level != escalation.LevelOK {
			t.Fatalf("%+v: level %s, want ok", tc, res.State.Level)
		}
	}
	if got, err := e.store.LogSamples(ctx, "", time.Time{}, 0); err != nil || len(got) != 0 {
		t.Fatalf("stored samples %+v %v, want none", got, err)
	}
}
