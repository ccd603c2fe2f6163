package commands

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
)

// dualStackRelay is a relay whose every probe times out toward the MX's
// IPv4 address and finds no route to its IPv6 address, the IPv6 probe
// starting a few milliseconds after the IPv4 one.
type dualStackRelay struct{ now func() time.Time }

func (d dualStackRelay) Name() string { return "relay-1" }
func (d dualStackRelay) Kind() string { return relay.KindLocal }
func (d dualStackRelay) Probe(_ context.Context, _ relay.Options) (probe.Report, error) {
	now := d.now()
	res := func(ip string, at time.Time, f probe.Failure) probe.Result {
		return probe.Result{Relay: "relay-1", Engine: probe.EngineNative, MX: "gmail-smtp-in.l.google.com", IP: ip, Port: 25,
			StartedAt: at, Stage: probe.StageConnect, Failure: f, Error: "connect failed",
			Timings: probe.Timings{Connect: 1, Total: 1}, Hints: []string{probe.Hint(f)}, Transcript: []string{}}
	}
	return probe.Report{Relay: "relay-1", Domain: "gmail.com", StartedAt: now, Results: []probe.Result{
		res("192.0.2.27", now, probe.FailConnectTimeout),
		res("2001:db8::1b", now.Add(3*time.Millisecond), probe.FailConnectUnreachable),
	}}, nil
}

// TestStatusNamesTheTellingFailureAndCause: with an IPv4 connect_timeout
// and an IPv6 connect_unreachable in every run, status names the IPv4
// timeout as the last failure (though the IPv6 result is newer), the
// cause is connect, and neither the first failure's advice nor the
// investigate advice speaks of TLS or of letting the retry queue work.
func TestStatusNamesTheTellingFailureAndCause(t *testing.T) {
	e := newTestEnv(t, "relay-1")
	e.mon.Reload(e.cfg, map[string]relay.Runner{"relay-1": dualStackRelay{now: e.clock.Now}})
	ctx := context.Background()
	run := func() monitor.CheckResult {
		t.Helper()
		e.clock.Advance(5 * time.Minute)
		res, err := e.mon.CheckRelay(ctx, monitor.Check{Relay: "relay-1", Trigger: message.SourceSchedule, RequestedBy: "scheduler"})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	status := func() (monitor.RelayStatus, monitor.StatusModel) {
		t.Helper()
		m, err := e.h.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Relays) != 1 {
			t.Fatalf("relays %+v", m.Relays)
		}
		return m.Relays[0], m
	}

	res := run()
	if st := res.State; st.Level != escalation.LevelWatch || st.Cause != escalation.CauseConnect ||
		strings.Contains(st.Advice, "let the retry queue work") || !strings.Contains(st.Advice, "port 25") {
		t.Errorf("first failure: %s/%s cause %q advice %q; want watch, connect, and no waiting for the retry queue", st.Level, st.Scope, st.Cause, st.Advice)
	}
	rs, _ := status()
	if rs.LastFailureClass != "connect_timeout" || rs.Cause != escalation.CauseConnect {
		t.Errorf("after one run: last failure class %q cause %q, want connect_timeout, connect", rs.LastFailureClass, rs.Cause)
	}

	run()
	run()
	rs, m := status()
	if rs.Level != escalation.LevelInvestigate || rs.Scope != escalation.ScopeOneHost || rs.Cause != escalation.CauseConnect {
		t.Fatalf("after three runs: %s/%s cause %q, want investigate/one_host connect", rs.Level, rs.Scope, rs.Cause)
	}
	if rs.LastFailureClass != "connect_timeout" {
		t.Errorf("last failure class %q, want the IPv4 connect_timeout", rs.LastFailureClass)
	}
	if rs.Advice != escalation.Advice(rs.Level, rs.Scope, escalation.CauseConnect) || strings.Contains(rs.Advice, "TLS") {
		t.Errorf("advice %q, want the connect advice without TLS", rs.Advice)
	}
	if m.Global.Cause != escalation.CauseConnect {
		t.Errorf("global cause %q, want connect", m.Global.Cause)
	}
	resp := e.h.StatusResponse(m)
	var text []string
	for _, s := range resp.Sections {
		text = append(text, s.Lines...)
		for _, f := range s.Fields {
			text = append(text, f.Label+": "+f.Value)
		}
	}
	all := strings.Join(text, "\n")
	for _, want := range []string{"cause connect", "connect_timeout", "Cause: connect", "port 25"} {
		if !strings.Contains(all, want) {
			t.Errorf("status message lacks %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "connect_unreachable") {
		t.Errorf("status message names the IPv6 connect_unreachable:\n%s", all)
	}
}
