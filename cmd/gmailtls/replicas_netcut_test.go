package main

import (
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/pglab"
	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// cutProxy forwards TCP connections to a server until cut; from then on it
// swallows everything both ways and forwards nothing, on the connections
// it has and on new ones, as a pulled cable or a dropping firewall does to
// the two ends (neither end learns that the other is gone).
type cutProxy struct {
	ln     net.Listener
	target string
	cut    atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

// pipe copies src to dst until either fails, and swallows src once cut.
func (p *cutProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if p.cut.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (p *cutProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// TestLeaderCutOffFromPostgres: the leader's network to PostgreSQL is cut
// (its connections go through a proxy that stops forwarding, so neither
// the replica nor the server sees them close): the leader stops leading on
// its own, at its local deadline; the follower takes over within 15 s even
// if the cut caught the leader inside a write (PostgreSQL ends a session
// idle in a transaction, which frees the writer lock); the follower then
// alerts, once, and the cut-off leader posts nothing.
func TestLeaderCutOffFromPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two serve processes for about half a minute")
	}
	dsn := pglab.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Fatalf("the lab's connection string %q is not a URL with a host: %v", dsn, err)
	}
	proxy := startCutProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = proxy.addr()
	const dsnEnv = "GMAILTLS_TEST_REPLICA_DSN"
	s := newReplicaSetup(t, "[storage]\ndriver = \"postgres\"\ndsn_env = \""+dsnEnv+"\"", dsnEnv+"="+dsn)

	// replica-a reaches PostgreSQL through the proxy (the later value of
	// the variable wins); replica-b directly.
	a := startReplica(t, "replica-a", append(slices.Clone(s.env), dsnEnv+"="+viaProxy.String()), "serve", "--config", s.cfgPath)
	aURL := a.metricsURL(t)
	waitUntil(t, "replica-a leads", 10*time.Second, func() bool { r, _ := role(aURL); return r == "leader" })
	_, aID := role(aURL)
	_, bURL := s.start(t, "replica-b")
	waitUntil(t, "replica-b answers as a follower", 10*time.Second, func() bool { r, l := role(bURL); return r == "follower" && l == aID })

	proxy.cut.Store(true)
	cut := time.Now()
	waitUntil(t, "replica-a stops leading on its own", 12*time.Second, func() bool { r, _ := role(aURL); return r == "follower" })
	stoppedAfter := time.Since(cut)
	waitUntil(t, "replica-b takes over", 20*time.Second, func() bool { r, _ := role(bURL); return r == "leader" })
	takeover := time.Since(cut)
	t.Logf("replica-a stopped leading %s after the cut; replica-b leads %s after it",
		stoppedAfter.Round(10*time.Millisecond), takeover.Round(10*time.Millisecond))
	if takeover > 15*time.Second {
		t.Errorf("replica-b took over %s after the cut, want within 15 s", takeover.Round(10*time.Millisecond))
	}

	s.smtp.SetBehavior(smtptest.ResetAfterReady)
	waitUntil(t, "replica-b's alert", 40*time.Second, func() bool { return len(s.alerts()) >= 1 })
	time.Sleep(3 * time.Second)
	if n := len(s.alerts()); n != 1 {
		t.Errorf("%d alerts, want 1", n)
	}
	if !strings.Contains(a.log(), "lost leadership") {
		t.Errorf("replica-a does not log that it lost leadership:\n%s", a.log())
	}
	if strings.Contains(a.log(), "outbox: delivered") {
		t.Errorf("the cut-off replica-a delivered:\n%s", a.log())
	}
}
