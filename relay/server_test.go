package relay

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/probe"
)

// TestSourceIPsThatAreNoOutboundAddress: the unspecified, multicast and
// broadcast addresses are refused (400) before anything is dialled, like
// any address that is not the host's own.
func TestSourceIPsThatAreNoOutboundAddress(t *testing.T) {
	ca := newCA(t)
	mx, base := target(t, smtptest.Gmail, ca)
	d := &signalDialer{dialed: make(chan string, 16)}
	base.Dialer = d
	agent := plainAgent(t, ServerConfig{Base: base})
	now := time.Now()
	for i, src := range []string{"0.0.0.0", "::", "::ffff:0.0.0.0", "224.0.0.1", "239.1.2.3", "ff02::1", "255.255.255.255", "192.0.2.1"} {
		body := `{"source_ips":["127.0.0.1",` + `"` + src + `"]}`
		code, msg := send(t, signedRequest(t, testSecret, now.Add(time.Duration(-i)*time.Second), "POST", agent.URL, PathProbe, []byte(body)))
		if code != http.StatusBadRequest {
			t.Errorf("source %s: %d %s, want 400", src, code, truncate(msg, 200))
		}
	}
	if n := mx.Connections(); n != 0 || len(d.dialed) != 0 {
		t.Fatalf("refused requests dialled (%d connections)", n)
	}
	// Local relays refuse them too.
	l := NewLocal("relay-1", base, nil)
	for _, src := range []string{"0.0.0.0", "::", "224.0.0.1", "255.255.255.255"} {
		if _, err := l.Probe(t.Context(), Options{Sources: []string{src}}); !errors.Is(err, ErrOptions) {
			t.Errorf("local, source %s: %v", src, err)
		}
	}
	if mx.Connections() != 0 {
		t.Fatal("a local probe dialled from a refused source")
	}
}

func TestBroadcastOfAnInterfaceNetwork(t *testing.T) {
	n := &net.IPNet{IP: net.ParseIP("192.0.2.10"), Mask: net.CIDRMask(24, 32)}
	for addr, want := range map[string]bool{"192.0.2.255": true, "192.0.2.10": false, "192.0.2.0": false, "192.0.3.255": false} {
		if got := isBroadcastOf(netip.MustParseAddr(addr), n); got != want {
			t.Errorf("%s on 192.0.2.10/24: %v", addr, got)
		}
	}
	for _, n := range []*net.IPNet{
		{IP: net.ParseIP("192.0.2.10"), Mask: net.CIDRMask(31, 32)},
		{IP: net.ParseIP("2001:db8::1"), Mask: net.CIDRMask(64, 128)},
	} {
		if isBroadcastOf(netip.MustParseAddr("192.0.2.11"), n) {
			t.Errorf("broadcast on %s", n)
		}
	}
}

// TestDNSTargetRefusesOtherHosts: an agent whose target is a domain
// answers 403 for a host outside its MX set, also while its MX lookup
// fails, and never dials it; a probe of the whole target still reports the
// DNS failure.
func TestDNSTargetRefusesOtherHosts(t *testing.T) {
	d := &signalDialer{dialed: make(chan string, 16)}
	res := &switchResolver{cur: fakeResolver{err: errors.New("SERVFAIL")}}
	base := probe.Config{Domain: "gmail.com", Resolver: res, Dialer: d, Timeout: 5 * time.Second}
	agent := plainAgent(t, ServerConfig{Base: base})
	now := time.Now()
	for i, body := range []string{`{"mx":["evil.example"]}`, `{"mx":["127.0.0.1"]}`, `{"mx":["gmail-smtp-in.l.google.com","evil.example"]}`} {
		code, msg := send(t, signedRequest(t, testSecret, now.Add(time.Duration(-i)*time.Second), "POST", agent.URL, PathProbe, []byte(body)))
		if code != http.StatusForbidden || !strings.Contains(msg, "not a configured target") {
			t.Errorf("DNS failing, %s: %d %s, want 403", body, code, msg)
		}
	}
	res.set(fakeResolver{mx: gmailMX()})
	code, msg := send(t, signedRequest(t, testSecret, now.Add(-5*time.Second), "POST", agent.URL, PathProbe, []byte(`{"mx":["evil.example"]}`)))
	if code != http.StatusForbidden {
		t.Errorf("DNS working, evil.example: %d %s, want 403", code, msg)
	}
	if len(d.dialed) != 0 {
		t.Fatalf("a refused request dialled %s", <-d.dialed)
	}
	res.set(fakeResolver{err: errors.New("SERVFAIL")})
	a := NewAgent("relay-2", agent.URL, testSecret, agent.Client(), 10*time.Second, nil)
	rep, err := a.Probe(t.Context(), Options{})
	if err != nil || len(rep.Results) != 1 || rep.Results[0].Failure != probe.FailDNSError {
		t.Fatalf("whole target while DNS fails: %+v %v", rep.Results, err)
	}
}

// TestProbeDeadline: a probe that outlasts the agent's limit answers 503
// instead of results that would read as timeouts toward Gmail.
func TestProbeDeadline(t *testing.T) {
	ca := newCA(t)
	_, base := target(t, smtptest.HangBanner, ca)
	base.Timeout = time.Minute
	agent := plainAgent(t, ServerConfig{Base: base, ProbeTimeout: 200 * time.Millisecond})
	start := time.Now()
	code, msg := send(t, signedRequest(t, testSecret, time.Now(), "POST", agent.URL, PathProbe, nil))
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "longer than the agent's limit") {
		t.Fatalf("%d %s", code, msg)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the answer took %s", took)
	}
}

// TestAgentProbesOnlyItsOwnControlMX: an agent probes a control host only
// when its own configuration names it ([target] control_mx): the same
// request to an agent without it, a control host mixed with another, and a
// host that is neither are refused with one "not a configured target" (the
// package's prefix is not repeated) and never dialled.
func TestAgentProbesOnlyItsOwnControlMX(t *testing.T) {
	ca := newCA(t)
	ctl, base := target(t, smtptest.Gmail, ca) // the control MX: any scripted server on loopback
	base.MX = []probe.Target{{Host: "gmail-smtp-in.l.google.com", Port: 25}}
	// mx.test.example resolves to loopback and is dialled at ctl's port;
	// the control is verified under its own name, not [target] servername.
	base.ServerName = "gmail-smtp-in.l.google.com"
	base.Resolver, base.Dialer = fakeResolver{}, &portDialer{port: ctl.Port()}
	control := []probe.Target{{Host: "mx.test.example", Port: 25}}
	ctlHost := "mx.test.example"

	with := plainAgent(t, ServerConfig{Base: base, ControlMX: control})
	a := NewAgent("relay-2", with.URL, testSecret, with.Client(), 10*time.Second, nil)
	rep, err := a.Probe(t.Context(), Options{MX: []string{ctlHost}})
	if err != nil || !rep.OK() || len(rep.Results) != 1 || rep.Results[0].MX != "mx.test.example" {
		t.Fatalf("control probe: %+v %v", rep.Results, err)
	}
	if ctl.Connections() != 1 {
		t.Errorf("%d connections to the control MX, want 1", ctl.Connections())
	}

	without := plainAgent(t, ServerConfig{Base: base})
	now := time.Now()
	for i, c := range []struct {
		url, body string
	}{
		{without.URL, `{"mx":["` + ctlHost + `"]}`},
		{with.URL, `{"mx":["` + ctlHost + `","gmail-smtp-in.l.google.com"]}`},
		{with.URL, `{"mx":["mx.elsewhere.example"]}`},
	} {
		code, msg := send(t, signedRequest(t, testSecret, now.Add(time.Duration(-i)*time.Second), "POST", c.url, PathProbe, []byte(c.body)))
		if code != http.StatusForbidden || strings.Count(msg, "not a configured target") != 1 || strings.Contains(msg, "relay:") {
			t.Errorf("%s: %d %q, want 403 saying \"not a configured target\" once", c.body, code, msg)
		}
	}
	if ctl.Connections() != 1 {
		t.Errorf("a refused request reached the control MX (%d connections)", ctl.Connections())
	}
}
