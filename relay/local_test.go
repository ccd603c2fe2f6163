package relay

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/probe"
)

// fakeResolver answers MX lookups from a table; no real DNS is asked.
type fakeResolver struct {
	mx  []*net.MX
	err error
}

func (f fakeResolver) LookupMX(context.Context, string) ([]*net.MX, error) { return f.mx, f.err }
func (f fakeResolver) LookupIPAddr(context.Context, string) ([]net.IPAddr, error) {
	return []net.IPAddr{{IP: net.ParseIP("127.0.0.1")}}, nil
}

func gmailMX() []*net.MX {
	return []*net.MX{
		{Host: "gmail-smtp-in.l.google.com.", Pref: 5},
		{Host: "alt1.gmail-smtp-in.l.google.com.", Pref: 10},
	}
}

func TestPlanNarrowsADNSTarget(t *testing.T) {
	l := NewLocal("relay-1", probe.Config{Resolver: fakeResolver{mx: gmailMX()}}, nil)
	cfg, prefs, failed, err := l.plan(t.Context(), Options{MX: []string{"ALT1.gmail-smtp-in.l.google.com.", "alt1.gmail-smtp-in.l.google.com"}, Family: "6"})
	if err != nil || failed != nil {
		t.Fatal(err, failed)
	}
	if len(cfg.MX) != 1 || cfg.MX[0] != (probe.Target{Host: "alt1.gmail-smtp-in.l.google.com", Port: 25}) {
		t.Errorf("MX %+v", cfg.MX)
	}
	if prefs["alt1.gmail-smtp-in.l.google.com"] != 10 || cfg.Family != "6" {
		t.Errorf("prefs %v family %q", prefs, cfg.Family)
	}
	_, _, _, err = l.plan(t.Context(), Options{MX: []string{"mx.attacker.example"}})
	if !errors.Is(err, ErrNotConfigured) {
		t.Errorf("outside host: %v", err)
	}
	// An IP address of a Gmail MX is not a host of the MX set either.
	_, _, _, err = l.plan(t.Context(), Options{MX: []string{"142.250.102.27"}})
	if !errors.Is(err, ErrNotConfigured) {
		t.Errorf("IP literal: %v", err)
	}
}

// switchResolver answers MX lookups from the resolver it currently holds.
type switchResolver struct {
	mu  sync.Mutex
	cur fakeResolver
}

func (s *switchResolver) set(r fakeResolver) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = r
}

func (s *switchResolver) get() fakeResolver {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *switchResolver) LookupMX(ctx context.Context, d string) ([]*net.MX, error) {
	return s.get().LookupMX(ctx, d)
}

func (s *switchResolver) LookupIPAddr(ctx context.Context, h string) ([]net.IPAddr, error) {
	return s.get().LookupIPAddr(ctx, h)
}

// TestPlanDNSFailureIsAResult: when the MX lookup fails, a narrowed probe
// of a host already seen in the MX set reports the DNS failure as a
// result; a host never seen in it is refused as outside the target, since
// nothing shows it belongs there.
func TestPlanDNSFailureIsAResult(t *testing.T) {
	res := &switchResolver{cur: fakeResolver{err: errors.New("SERVFAIL")}}
	l := NewLocal("relay-1", probe.Config{Resolver: res}, nil)
	for _, mx := range []string{"gmail-smtp-in.l.google.com", "mx.attacker.example"} {
		_, err := l.Probe(t.Context(), Options{MX: []string{mx}})
		if !errors.Is(err, ErrNotConfigured) || !strings.Contains(err.Error(), "SERVFAIL") {
			t.Errorf("%s before the MX set was ever seen: %v", mx, err)
		}
	}
	res.set(fakeResolver{mx: gmailMX()})
	if _, _, _, err := l.plan(t.Context(), Options{MX: []string{"alt1.gmail-smtp-in.l.google.com"}}); err != nil {
		t.Fatal(err)
	}
	res.set(fakeResolver{err: errors.New("SERVFAIL")})
	rep, err := l.Probe(t.Context(), Options{MX: []string{"gmail-smtp-in.l.google.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Failure != probe.FailDNSError || rep.Results[0].Relay != "relay-1" {
		t.Errorf("%+v", rep.Results)
	}
	if _, err := l.Probe(t.Context(), Options{MX: []string{"gmail-smtp-in.l.google.com", "mx.attacker.example"}}); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("a host outside the MX set while DNS fails: %v", err)
	}
}

// TestFullProbeTeachesTheMXSet: the hosts of a probe of the whole DNS
// target count as seen in the MX set, so a narrowed probe of one of them
// during a later DNS failure reports the failure.
func TestFullProbeTeachesTheMXSet(t *testing.T) {
	ca := newCA(t)
	mx, _ := target(t, smtptest.Gmail, ca)
	res := &switchResolver{cur: fakeResolver{mx: []*net.MX{{Host: "mx.test.example.", Pref: 10}}}}
	d := &portDialer{port: mx.Port()}
	l := NewLocal("relay-1", probe.Config{Domain: "test.example", Resolver: res, Dialer: d, ServerName: "mx.test.example",
		RootCAs: ca.Pool, Timeout: 5 * time.Second, NoRetry: true, HelloName: "relay-1.test"}, nil)
	rep, err := l.Probe(t.Context(), Options{})
	if err != nil || !rep.OK() {
		t.Fatalf("%+v %v", rep.Results, err)
	}
	if rep.Domain != "test.example" {
		t.Errorf("a probe of the DNS target: domain %q, want test.example", rep.Domain)
	}
	// Hosts narrowed from the MX set came from DNS: the domain is named.
	rep, err = l.Probe(t.Context(), Options{MX: []string{"mx.test.example"}})
	if err != nil || !rep.OK() || rep.Domain != "test.example" {
		t.Fatalf("narrowed: domain %q, %+v %v", rep.Domain, rep.Results, err)
	}
	res.set(fakeResolver{err: errors.New("SERVFAIL")})
	rep, err = l.Probe(t.Context(), Options{MX: []string{"mx.test.example"}})
	if err != nil || len(rep.Results) != 1 || rep.Results[0].Failure != probe.FailDNSError {
		t.Fatalf("%+v %v", rep.Results, err)
	}
	if _, err := l.Probe(t.Context(), Options{MX: []string{"test.example"}}); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("the domain itself, after a failed MX lookup: %v", err)
	}
}

// portDialer sends every connection to one loopback port.
type portDialer struct{ port int }

func (d *portDialer) DialContext(ctx context.Context, network, _ string, _ netip.Addr) (net.Conn, error) {
	var nd net.Dialer
	return nd.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", strconv.Itoa(d.port)))
}

func TestPlanPinned(t *testing.T) {
	base := probe.Config{MX: []probe.Target{{Host: "127.0.0.1", Port: 2525}, {Host: "mx.test.example", Port: 25}}}
	l := NewLocal("relay-1", base, nil)
	for _, ok := range []string{"127.0.0.1", "127.0.0.1:2525", "MX.test.example", "mx.test.example:25"} {
		if _, _, _, err := l.plan(t.Context(), Options{MX: []string{ok}}); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"127.0.0.2", "127.0.0.1:25", "mx.test.example:2525", "other.example"} {
		if _, _, _, err := l.plan(t.Context(), Options{MX: []string{bad}}); !errors.Is(err, ErrNotConfigured) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, _, _, err := l.plan(t.Context(), Options{Family: "ipv4"}); !errors.Is(err, ErrOptions) {
		t.Errorf("bad family: %v", err)
	}
	if _, err := l.Probe(t.Context(), Options{MX: []string{"other.example"}}); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("Probe outside the target: %v", err)
	}
}

func TestLocalProbesEachSourceIP(t *testing.T) {
	ca := newCA(t)
	mx, base := target(t, smtptest.Gmail, ca)
	sources := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}
	l := NewLocal("relay-1", base, sources)
	if l.Name() != "relay-1" || l.Kind() != KindLocal {
		t.Fatal(l.Name(), l.Kind())
	}
	var _ Runner = l
	var _ InfoQueuer = l
	rep, err := l.Probe(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 || !rep.OK() {
		t.Fatalf("%+v", rep.Results)
	}
	got := map[string]bool{}
	for _, r := range rep.Results {
		got[r.SourceIP] = true
		if r.Relay != "relay-1" || r.Engine != probe.EngineNative {
			t.Errorf("%+v", r)
		}
	}
	if !got["127.0.0.1"] || !got["127.0.0.2"] || mx.Connections() != 2 {
		t.Errorf("sources %v, %d connections", got, mx.Connections())
	}
}

func TestOutboundIPs(t *testing.T) {
	_, n1, _ := net.ParseCIDR("192.0.2.10/24")
	n1.IP = net.ParseIP("192.0.2.10")
	addrs := []net.Addr{
		&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
		n1,
		&net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)},
		&net.IPNet{IP: net.ParseIP("2001:db8::25"), Mask: net.CIDRMask(64, 128)},
		&net.IPAddr{IP: net.ParseIP("::1")},
	}
	got := outboundIPs(addrs)
	if len(got) != 2 || got[0] != "192.0.2.10" || got[1] != "2001:db8::25" {
		t.Errorf("%v", got)
	}
	if v := eximVersion("Exim version 4.96 #2 built 13-Jul-2023 12:00:00\nCopyright (c) University of Cambridge\n"); v != "4.96" {
		t.Errorf("exim version %q", v)
	}
}

func TestInfoFindsExim(t *testing.T) {
	l := NewLocal("r", probe.Config{}, nil)
	l.Hostname = func() (string, error) { return "relay-9.example", nil }
	l.InterfaceAddrs = func() ([]net.Addr, error) { return nil, errors.New("no netlink") }
	l.Commands = &fakeCommands{out: map[string]string{"exim -bV": "Exim version 4.97 #3 built 1-Jan-2024\n"}}
	info, err := l.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.MTA != "exim" || info.MTAVersion != "4.97" || info.TLSLibrary != "" || info.Hostname != "relay-9.example" || info.OutboundIPs == nil {
		t.Errorf("%+v", info)
	}
	l.Hostname = func() (string, error) { return "", errors.New("uts") }
	if _, err := l.Info(t.Context()); err == nil {
		t.Error("no error without a host name")
	}
}

// TestPinnedReportNamesNoDomain: a report of pinned MX hosts does not name
// the configured domain (gmail.com by default): those hosts are not its MX
// set. The JSON keeps the key, empty.
func TestPinnedReportNamesNoDomain(t *testing.T) {
	_, cfg := target(t, smtptest.Gmail, newCA(t))
	rep, err := NewLocal("relay-1", cfg, nil).Probe(t.Context(), Options{})
	if err != nil || !rep.OK() {
		t.Fatalf("%+v %v", rep.Results, err)
	}
	if rep.Domain != "" {
		t.Errorf("domain %q, want empty: the MX was pinned", rep.Domain)
	}
	b, err := json.Marshal(rep)
	if err != nil || !strings.Contains(string(b), `"domain":"",`) {
		t.Errorf("JSON lacks an empty domain key: %s %v", b, err)
	}
}
