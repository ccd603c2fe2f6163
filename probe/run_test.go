package probe_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/probe"
)

// portDialer stands in for port 25: it dials the loopback server that
// listens for an MX address, from the requested source, over real TCP.
type portDialer struct {
	mu    sync.Mutex
	ports map[netip.Addr]int // MX address → the server's real port

	inFlight, peak atomic.Int32
}

func (d *portDialer) add(s *smtptest.Server) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ports == nil {
		d.ports = map[netip.Addr]int{}
	}
	d.ports[netip.MustParseAddr(s.Host())] = s.Port()
}

func (d *portDialer) DialContext(ctx context.Context, network, address string, source netip.Addr) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	port, ok := d.ports[ap.Addr()]
	d.mu.Unlock()
	if ok && ap.Port() == 25 {
		address = netip.AddrPortFrom(ap.Addr(), uint16(port)).String()
	}
	c, err := probe.NetDialer{}.DialContext(ctx, network, address, source)
	if err != nil {
		return nil, err
	}
	n := d.inFlight.Add(1)
	for {
		p := d.peak.Load()
		if n <= p || d.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return &countedConn{Conn: c, d: d}, nil
}

type countedConn struct {
	net.Conn
	d    *portDialer
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.d.inFlight.Add(-1) })
	return c.Conn.Close()
}

func ipAddrs(list ...string) []net.IPAddr {
	out := make([]net.IPAddr, len(list))
	for i, s := range list {
		out[i] = net.IPAddr{IP: net.ParseIP(s)}
	}
	return out
}

func TestRunFanout(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	d := &portDialer{}
	start := func(addr string, b smtptest.Behavior) {
		d.add(smtptest.StartT(t, smtptest.Options{Behavior: b, CA: ca, Hostname: testHost, Addr: addr}))
	}
	start("127.0.0.21:0", smtptest.Gmail)
	start("127.0.0.22:0", smtptest.Gmail)
	start("127.0.0.23:0", smtptest.Greet421)
	v6 := true
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		v6 = false
	} else {
		ln.Close()
		start("[::1]:0", smtptest.Gmail)
	}
	res := &fakeResolver{
		mx: map[string][]*net.MX{"gmail.test": {
			{Host: "alt1.mx.gmail.test.", Pref: 10},
			{Host: "gone.mx.gmail.test.", Pref: 20},
			{Host: "mx.gmail.test.", Pref: 5},
		}},
		addrs: map[string][]net.IPAddr{
			"mx.gmail.test":      ipAddrs("127.0.0.22", "127.0.0.21", "::1"),
			"alt1.mx.gmail.test": ipAddrs("127.0.0.23"),
		},
	}
	cfg := probe.Config{
		Relay:      "relay-1",
		Domain:     "gmail.test",
		ServerName: testHost,
		RootCAs:    ca.Pool,
		HelloName:  "probe.test.example",
		Sources:    []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1")},
		Resolver:   res,
		Dialer:     d,
		Timeout:    5 * time.Second,
		Family:     "4",
	}
	rep, err := probe.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rep.Results {
		got = append(got, strings.Join([]string{r.MX, r.IP, r.SourceIP, string(r.Failure)}, " "))
	}
	want := []string{
		"mx.gmail.test 127.0.0.21 127.0.0.1 ",
		"mx.gmail.test 127.0.0.21 127.0.0.2 ",
		"mx.gmail.test 127.0.0.22 127.0.0.1 ",
		"mx.gmail.test 127.0.0.22 127.0.0.2 ",
		"alt1.mx.gmail.test 127.0.0.23 127.0.0.1 smtp_rejected",
		"alt1.mx.gmail.test 127.0.0.23 127.0.0.2 smtp_rejected",
		"gone.mx.gmail.test   dns_error",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rep.Relay != "relay-1" || rep.Domain != "gmail.test" || rep.StartedAt.IsZero() || rep.OK() {
		t.Errorf("report header = %q %q %v ok=%v", rep.Relay, rep.Domain, rep.StartedAt, rep.OK())
	}
	for _, r := range rep.Results {
		if r.Relay != "relay-1" || (r.Failure != probe.FailDNSError && r.Preference == 0) {
			t.Errorf("result %s %s: relay %q preference %d", r.MX, r.IP, r.Relay, r.Preference)
		}
	}

	if !v6 {
		return
	}
	// Family 6 with an IPv6 source: only ::1, and hosts without an IPv6
	// address are DNS failures of their own.
	cfg.Family = "6"
	cfg.Sources = []netip.Addr{netip.MustParseAddr("::1")}
	rep, err = probe.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, r := range rep.Results {
		got = append(got, strings.Join([]string{r.MX, r.IP, r.SourceIP, string(r.Failure)}, " "))
	}
	want = []string{
		"mx.gmail.test ::1 ::1 ",
		"alt1.mx.gmail.test   dns_error",
		"gone.mx.gmail.test   dns_error",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("family 6 results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRunBound checks that no more probes run at once than Concurrency
// allows, and that a failing target does not cancel the others.
func TestRunBound(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	d := &portDialer{}
	var targets []probe.Target
	for i, b := range []smtptest.Behavior{smtptest.Gmail, smtptest.ResetAfterReady, smtptest.Gmail, smtptest.Greet421, smtptest.Gmail, smtptest.Gmail} {
		s := smtptest.StartT(t, smtptest.Options{Behavior: b, CA: ca, Hostname: testHost, GreetingDelay: 20 * time.Millisecond,
			Addr: netip.AddrFrom4([4]byte{127, 0, 0, byte(31 + i)}).String() + ":0"})
		d.add(s)
		targets = append(targets, probe.Target{Host: s.Host(), Port: 25})
	}
	rep, err := probe.Run(context.Background(), probe.Config{
		MX: targets, ServerName: testHost, RootCAs: ca.Pool, HelloName: "probe.test.example",
		Dialer: d, Concurrency: 2, NoRetry: true, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := d.peak.Load(); p > 2 || p < 1 {
		t.Errorf("peak concurrent probes = %d, bound 2", p)
	}
	ok := 0
	for _, r := range rep.Results {
		if r.OK {
			ok++
		}
	}
	if ok != 4 || len(rep.Results) != 6 {
		t.Errorf("%d of %d ok, want 4 of 6", ok, len(rep.Results))
	}
}

// A pinned IP literal without a servername is verified against the
// literal (the certificate then has to name the IP).
func TestPinnedIPLiteralServerName(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	srv := smtptest.StartT(t, smtptest.Options{CA: ca, Hostname: testHost})
	cfg := pinned(t, ca, srv.Addr())
	cfg.ServerName = ""
	r := runOne(t, cfg)
	if r.ServerName != "127.0.0.1" || r.Failure != probe.FailCertHostname {
		t.Errorf("servername %q failure %q, want 127.0.0.1 and cert_hostname_mismatch", r.ServerName, r.Failure)
	}
}

// Canceling the run ends hanging probes at once.
func TestRunCanceled(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	srv := smtptest.StartT(t, smtptest.Options{Behavior: smtptest.HangBanner, CA: ca, Hostname: testHost})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan probe.Report)
	go func() {
		rep, _ := probe.Run(ctx, pinned(t, ca, srv.Addr()))
		done <- rep
	}()
	if err := waitConnections(srv, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case rep := <-done:
		if r := rep.Results[0]; r.OK || r.Stage != probe.StageBanner {
			t.Errorf("canceled probe: stage %q failure %q", r.Stage, r.Failure)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func waitConnections(s *smtptest.Server, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for s.Connections() < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// panicDialer stands for a bug met by outside input.
type panicDialer struct{}

func (panicDialer) DialContext(context.Context, string, string, netip.Addr) (net.Conn, error) {
	panic("boom")
}

// A panic in one probe becomes that probe's failed result; the others
// and the process go on.
func TestRunRecoversPanics(t *testing.T) {
	t.Parallel()
	rep, err := probe.Run(context.Background(), probe.Config{
		MX:        []probe.Target{{Host: "127.0.0.1", Port: 25}, {Host: "127.0.0.2", Port: 25}},
		Dialer:    panicDialer{},
		HelloName: "probe.test.example",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("%d results", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.OK || !strings.Contains(r.Error, "internal error in the probe: boom") {
			t.Errorf("result = %+v", r)
		}
	}
}

// TestRunStreamsResults: OnEndpoints learns every endpoint before a probe
// starts, and OnResult hands over each result as it completes: the MX
// that answers at once is reported while the other one still hangs
// before its greeting (that probe ends only when the test, having seen
// the first result, cancels the run), and Run's report still holds both.
func TestRunStreamsResults(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	d := &portDialer{}
	fast := smtptest.StartT(t, smtptest.Options{CA: ca, Hostname: testHost, Addr: "127.0.0.41:0"})
	slow := smtptest.StartT(t, smtptest.Options{Behavior: smtptest.HangBanner, CA: ca, Hostname: testHost, Addr: "127.0.0.42:0"})
	d.add(fast)
	d.add(slow)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var endpoints []probe.Endpoint
	results := make(chan probe.Result, 2)
	done := make(chan probe.Report, 1)
	go func() {
		rep, err := probe.Run(ctx, probe.Config{
			MX:         []probe.Target{{Host: fast.Host(), Port: 25}, {Host: slow.Host(), Port: 25}},
			ServerName: testHost, RootCAs: ca.Pool, HelloName: "probe.test.example", Dialer: d, NoRetry: true,
			Timeout: time.Minute, // the hanging probe ends only by cancellation
			OnEndpoints: func(eps []probe.Endpoint) {
				mu.Lock()
				defer mu.Unlock()
				endpoints = append(endpoints, eps...)
			},
			OnResult: func(r probe.Result) {
				mu.Lock()
				n := len(endpoints)
				mu.Unlock()
				if n != 2 {
					t.Errorf("a result came before OnEndpoints named both endpoints (%d)", n)
				}
				results <- r
			},
		})
		if err != nil {
			t.Error(err)
		}
		done <- rep
	}()
	first := <-results
	if first.IP != fast.Host() || !first.OK {
		t.Fatalf("first streamed result %s ok=%v %s, want %s ok", first.IP, first.OK, first.Failure, fast.Host())
	}
	select {
	case <-done:
		t.Fatal("Run returned before the hanging probe ended: the result was not streamed")
	default:
	}
	cancel()
	rep := <-done
	second := <-results
	if second.IP != slow.Host() || second.OK {
		t.Errorf("second streamed result %s ok=%v, want %s failed", second.IP, second.OK, slow.Host())
	}
	if len(rep.Results) != 2 {
		t.Errorf("report has %d results, want 2", len(rep.Results))
	}
}
