// Package fakerelay is a relay.Runner whose probes are scripted, for tests
// of the code above the relays (monitor, commands) that need real storage
// but no network.
package fakerelay

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
)

// Runner is a relay whose probes are scripted: each call pops the next
// outcome of Script, or takes Outcome when the script is empty ("ok", a
// failure class such as "tls_reset", or "agent" for an unreachable
// agent), and returns one result per MX host with deterministic timings.
// Create it with New; it is safe for concurrent use.
type Runner struct {
	name string
	kind string
	now  func() time.Time
	mx   []string

	mu      sync.Mutex
	outcome string
	script  []string
	calls   int
	opts    []relay.Options
	// gate, when set, holds every probe until it is closed.
	gate chan struct{}
	// started receives one value as each probe begins, when set.
	started chan string
}

// New returns a local relay named name probing the MX entries mx ("host"
// or "host:port", as the configuration pins them) at the clock now.
func New(name string, now func() time.Time, mx ...string) *Runner {
	return &Runner{name: name, kind: relay.KindLocal, now: now, mx: mx}
}

// Name is the relay's name.
func (f *Runner) Name() string { return f.name }

// Kind is the relay's kind (local unless SetKind changed it).
func (f *Runner) Kind() string { return f.kind }

// SetKind changes the relay's kind.
func (f *Runner) SetKind(kind string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kind = kind
}

// Set makes every later probe end with outcome.
func (f *Runner) Set(outcome string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outcome = outcome
}

// Script makes the next probes end with these outcomes, in order.
func (f *Runner) Script(outcomes ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = append(f.script, outcomes...)
}

// Hold makes every later probe wait until release is called, announcing
// itself on started (with the relay's name) first when started is not nil.
func (f *Runner) Hold(started chan string) (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate := make(chan struct{})
	f.gate, f.started = gate, started
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

// Calls is the number of probes run.
func (f *Runner) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Options are the options of every probe run, in order.
func (f *Runner) Options() []relay.Options {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]relay.Options(nil), f.opts...)
}

// Probe returns the scripted report: one result per MX host (those that
// opts.MX names, when it names some).
func (f *Runner) Probe(ctx context.Context, opts relay.Options) (probe.Report, error) {
	f.mu.Lock()
	f.calls++
	f.opts = append(f.opts, opts)
	outcome := f.outcome
	if len(f.script) > 0 {
		outcome, f.script = f.script[0], f.script[1:]
	}
	gate, started := f.gate, f.started
	f.mu.Unlock()
	if started != nil {
		started <- f.name
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	now := f.now()
	rep := probe.Report{Relay: f.name, Domain: "gmail.com", StartedAt: now}
	mxs := f.mx
	if len(opts.MX) > 0 {
		mxs = nil
		for _, want := range opts.MX {
			for i, m := range f.mx {
				if strings.HasPrefix(m, strings.Split(want, ":")[0]) || m == want {
					mxs = append(mxs, f.mx[i])
				}
			}
		}
	}
	for i, mx := range mxs {
		host, port := mx, 25
		if h, _, ok := strings.Cut(mx, ":"); ok {
			host, port = h, 2525
		}
		r := probe.Result{
			Relay: f.name, Engine: probe.EngineNative, SourceIP: "127.0.0.1", MX: host, Preference: uint16(5 * (i + 1)),
			IP: "127.0.0." + string(rune('1'+i)), Port: port, ServerName: "mx.test.example", StartedAt: now,
			Timings: probe.Timings{Connect: 0.2, Banner: 1.1, EHLO: 0.4, StartTLS: 0.3, Handshake: 4.5, Total: 7.3},
			Hints:   []string{},
			Transcript: []string{
				"S: 220 mx.google.com ESMTP x - gsmtp",
				"C: EHLO probe.test",
				"S: 250-mx.google.com at your service",
				"S: 250 STARTTLS",
				"C: STARTTLS",
				"S: 220 2.0.0 Ready to start TLS",
				"* TLS handshake started",
			},
		}
		switch outcome {
		case "", "ok":
			r.OK = true
			r.TLS = &probe.TLSInfo{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", Group: "X25519MLKEM768", Verified: true}
		case "agent":
			r.Stage, r.Failure = probe.StageAgent, probe.FailAgentUnreachable
			r.Error = "agent did not answer"
			r.Transcript = nil
		default:
			r.Stage, r.Failure = probe.StageHandshake, probe.Failure(outcome)
			r.Error = "read: connection reset by peer"
			r.Timings.Handshake, r.Timings.Total = 0.9, 3.1
			r.Transcript = append(r.Transcript, "* connection lost during the TLS handshake")
		}
		rep.Results = append(rep.Results, r)
	}
	return rep, nil
}
