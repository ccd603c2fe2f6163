package relay

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay/mta"
)

// Defaults of the MTA-stack run.
const (
	// DefaultCAPath is the hashed system trust store folder handed to
	// posttls-finger (-P); Debian and Ubuntu keep it here.
	DefaultCAPath = "/etc/ssl/certs"
	// mtaStackConcurrency bounds the tools running at once.
	mtaStackConcurrency = 4
	// defaultToolStage is the per-stage timeout of the tools when the
	// target sets none.
	defaultToolStage = 20 * time.Second
)

// mtaTarget is one MX address the native probe goes to, with the tools'
// results toward it.
type mtaTarget struct {
	mx         string
	pref       uint16
	ip         string
	port       int
	servername string

	cancel context.CancelFunc // ends the tools toward it
	// endpoints counts the native probes toward the address (one per
	// source IP), noSession those of them that got no TCP session or no
	// greeting; guarded by mtaStack.mu.
	endpoints, noSession int
	results              [2]*probe.Result // openssl, posttls-finger
}

// mtaStack is one MTA-stack run beside one native probe: the tools start
// toward every MX address as soon as the native probe has resolved them
// (start, from probe.Config.OnEndpoints), each native result that
// completes may end the tools toward its address (native, from
// probe.Config.OnResult), and finish collects what the tools found. So
// the comparison takes as long as the slower of the two, not their sum.
type mtaStack struct {
	l     *Local
	ctx   context.Context
	cfg   probe.Config
	sem   chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	byKey map[string]*mtaTarget
	order []*mtaTarget
}

// newMTAStack prepares an MTA-stack run under ctx with the probe's
// configuration cfg; nothing starts before start.
func (l *Local) newMTAStack(ctx context.Context, cfg probe.Config) *mtaStack {
	return &mtaStack{l: l, ctx: ctx, cfg: cfg, sem: make(chan struct{}, mtaStackConcurrency), byKey: map[string]*mtaTarget{}}
}

// servername is the name the tools send and verify toward mx.
func (m *mtaStack) servername(mx string) string {
	if m.cfg.ServerName != "" {
		return m.cfg.ServerName
	}
	return mx
}

func mtaKey(mx, ip string, port int) string {
	return strings.Join([]string{strings.ToLower(mx), ip, strconv.Itoa(port)}, "|")
}

// start runs openssl s_client and, where Postfix is installed,
// posttls-finger toward every address of eps at once (bounded by
// mtaStackConcurrency). Several source IPs toward one address make one
// target: the tools cannot bind.
func (m *mtaStack) start(eps []probe.Endpoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ep := range eps {
		ip := ep.IP.String()
		key := mtaKey(ep.MX, ip, ep.Port)
		if t, ok := m.byKey[key]; ok {
			t.endpoints++
			continue
		}
		tctx, cancel := context.WithCancel(m.ctx)
		t := &mtaTarget{mx: ep.MX, pref: ep.Preference, ip: ip, port: ep.Port,
			servername: m.servername(ep.MX), cancel: cancel, endpoints: 1}
		m.byKey[key] = t
		m.order = append(m.order, t)
		for i, engine := range []string{probe.EngineOpenSSL, probe.EnginePosttlsFinger} {
			m.wg.Go(func() { m.run(tctx, t, i, engine) })
		}
	}
}

// native learns one native result as it completes: once every native
// probe toward an address got no TCP session or no greeting, the tools
// toward it are ended and their results dropped (they would only wait
// for the same timeout and tell nothing new).
func (m *mtaStack) native(r probe.Result) {
	if !noSession(r) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.byKey[mtaKey(r.MX, r.IP, r.Port)]; ok {
		if t.noSession++; t.noSession >= t.endpoints {
			t.cancel()
		}
	}
}

// noSession reports whether a native result got no TCP session or no
// greeting.
func noSession(r probe.Result) bool {
	return r.IP == "" || r.Port == 0 || r.Stage == probe.StageDNS || r.Stage == probe.StageConnect ||
		r.Stage == probe.StageAgent || r.Failure == probe.FailBannerTimeout
}

// run runs one tool toward t and keeps its result in t.results[i]. A tool
// that is not installed is skipped. openssl gets the target's stage
// timeout plus 5 s in all (it has no timeouts of its own); posttls-finger
// gets the stage timeout for its connect and each command, and twice that
// plus 5 s in all.
func (m *mtaStack) run(ctx context.Context, t *mtaTarget, i int, engine string) {
	l := m.l
	defer func() {
		if v := recover(); v != nil {
			l.logger().Error("relay: panic in the MTA-stack run", "engine", engine, "ip", t.ip, "panic", v)
		}
	}()
	select {
	case m.sem <- struct{}{}:
		defer func() { <-m.sem }()
	case <-ctx.Done():
		return
	}
	stage := m.cfg.Timeout
	if stage <= 0 {
		stage = defaultToolStage
	}
	caPath := l.CAPath
	if caPath == "" {
		caPath = DefaultCAPath
	}
	var args []string
	var limit time.Duration
	var parse func([]byte, bool) mta.Outcome
	var prog string
	switch engine {
	case probe.EngineOpenSSL:
		prog = "openssl"
		args = mta.OpenSSLArgs(t.ip, t.port, t.servername, m.cfg.HelloName, l.CAFile)
		limit = stage + 5*time.Second
		parse = mta.ParseOpenSSL
	default:
		prog = "posttls-finger"
		args = mta.PosttlsFingerArgs(t.ip, t.port, t.servername, l.CAFile, caPath, int((stage+time.Second-1)/time.Second))
		limit = 2*stage + 5*time.Second
		parse = mta.ParsePosttlsFinger
	}
	tctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	start := l.now()
	out, err := l.commands().Run(tctx, prog, args...)
	if errors.Is(err, exec.ErrNotFound) {
		l.logger().Debug("relay: MTA-stack tool not installed", "tool", prog)
		return
	}
	if ctx.Err() != nil {
		// The whole probe was cancelled, or the native probe found no
		// session toward the address: report nothing half-done.
		return
	}
	o := parse(out, tctx.Err() != nil)
	if o.ToolError != "" {
		l.logger().Warn("relay: the MTA-stack tool could not run; no comparison from it", "tool", prog, "error", o.ToolError)
		return
	}
	res := probe.Result{
		Relay: l.name, Engine: engine, MX: t.mx, Preference: t.pref,
		IP: t.ip, Port: t.port, ServerName: t.servername, StartedAt: start,
	}
	o.Apply(&res)
	res.Timings.Total = ms(l.now().Sub(start))
	m.mu.Lock()
	t.results[i] = &res
	m.mu.Unlock()
}

// finish waits for the tools and returns their results in target order,
// openssl first, given the native probe's results. A target every native
// probe of which got no session yields none. When the native probe passed
// toward an address (from any source IP) and a tool failed toward it, the
// tool's result carries MTAStackHint.
func (m *mtaStack) finish(native []probe.Result) []probe.Result {
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	passed := map[string]bool{}
	sessions := map[string]bool{}
	for _, r := range native {
		key := mtaKey(r.MX, r.IP, r.Port)
		if !noSession(r) {
			sessions[key] = true
		}
		if r.OK {
			passed[key] = true
		}
	}
	var out []probe.Result
	for _, t := range m.order {
		t.cancel()
		key := mtaKey(t.mx, t.ip, t.port)
		if !sessions[key] {
			continue
		}
		for _, r := range t.results {
			if r == nil {
				continue
			}
			if passed[key] && !r.OK {
				r.Hints = appendHint(r.Hints, MTAStackHint)
			}
			out = append(out, *r)
		}
	}
	return out
}
