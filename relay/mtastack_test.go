package relay

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/probe"
)

// realTools runs the installed openssl and posttls-finger; posttls-finger
// gets an empty main.cf of its own (a test host has no Postfix
// configuration). Every address they are pointed at is on loopback.
func realTools(t *testing.T) *ExecRunner {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	// A fixed myhostname spares posttls-finger any lookup of the host name.
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte("myhostname = relay.test.example\nsmtp_host_lookup = native\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &ExecRunner{Getenv: func(k string) string {
		if k == "MAIL_CONFIG" {
			return dir
		}
		return os.Getenv(k)
	}}
}

func hasPosttlsFinger() bool {
	_, err := exec.LookPath("posttls-finger")
	return err == nil
}

func byEngine(rep probe.Report) map[string]probe.Result {
	m := map[string]probe.Result{}
	for _, r := range rep.Results {
		m[r.Engine] = r
	}
	return m
}

func mtaLocal(t *testing.T, b smtptest.Behavior, withCAFile bool, cmds CommandRunner) (*Local, *smtptest.Server) {
	t.Helper()
	ca := newCA(t)
	mx, base := target(t, b, ca)
	l := NewLocal("relay-1", base, nil)
	l.MTAStack = true
	l.Commands = cmds
	if withCAFile {
		l.CAFile = filepath.Join(t.TempDir(), "ca.pem")
		if err := ca.WritePEM(l.CAFile); err != nil {
			t.Fatal(err)
		}
	}
	return l, mx
}

func TestMTAStackRealToolsAgree(t *testing.T) {
	tools := realTools(t)
	tests := []struct {
		behavior smtptest.Behavior
		want     probe.Failure
	}{
		{smtptest.Gmail, probe.FailNone},
		{smtptest.ExpiredCert, probe.FailCertExpired},
		{smtptest.WrongNameCert, probe.FailCertHostname},
		{smtptest.ResetAfterReady, probe.FailTLSReset},
	}
	for _, tt := range tests {
		t.Run(string(tt.behavior), func(t *testing.T) {
			l, _ := mtaLocal(t, tt.behavior, true, tools)
			rep, err := l.Probe(t.Context(), Options{MTAStack: true})
			if err != nil {
				t.Fatal(err)
			}
			got := byEngine(rep)
			engines := []string{probe.EngineNative, probe.EngineOpenSSL}
			if hasPosttlsFinger() {
				engines = append(engines, probe.EnginePosttlsFinger)
			}
			if len(rep.Results) != len(engines) {
				t.Fatalf("%d results, want %d: %+v", len(rep.Results), len(engines), rep.Results)
			}
			for _, e := range engines {
				r, ok := got[e]
				if !ok {
					t.Fatalf("no %s result", e)
				}
				if r.Failure != tt.want || r.OK != (tt.want == probe.FailNone) {
					t.Errorf("%s: ok=%v failure=%q (%s), want %q", e, r.OK, r.Failure, r.Error, tt.want)
				}
				if r.IP != "127.0.0.1" || r.Relay != "relay-1" || r.ServerName != "mx.test.example" {
					t.Errorf("%s: identity %+v", e, r)
				}
				if len(r.Transcript) == 0 {
					t.Errorf("%s: empty transcript", e)
				}
				for _, h := range r.Hints {
					if h == MTAStackHint {
						t.Errorf("%s: MTA hint although the native probe failed the same way", e)
					}
				}
			}
		})
	}
}

func TestMTAStackHintWhenOnlyTheRelayStackFails(t *testing.T) {
	// The native probe trusts the test CA; the relay's own tools are left
	// with the system trust store, which does not: the network path is
	// fine, the relay's TLS configuration is not.
	l, _ := mtaLocal(t, smtptest.Gmail, false, realTools(t))
	rep, err := l.Probe(t.Context(), Options{MTAStack: true})
	if err != nil {
		t.Fatal(err)
	}
	got := byEngine(rep)
	if !got[probe.EngineNative].OK {
		t.Fatalf("native %+v", got[probe.EngineNative])
	}
	engines := []string{probe.EngineOpenSSL}
	if hasPosttlsFinger() {
		engines = append(engines, probe.EnginePosttlsFinger)
	}
	for _, e := range engines {
		r := got[e]
		if r.OK || r.Failure != probe.FailCertUntrusted {
			t.Errorf("%s: %+v", e, r)
		}
		if !strings.Contains(strings.Join(r.Hints, "|"), MTAStackHint) {
			t.Errorf("%s: hints %q lack the MTA-stack hint", e, r.Hints)
		}
	}
}

func TestMTAStackRecordedOutputs(t *testing.T) {
	reset, err := os.ReadFile("testdata/openssl/reset_after_ready.txt")
	if err != nil {
		t.Fatal(err)
	}
	cmds := &recordedTools{out: map[string][]byte{"openssl": reset}}
	l, _ := mtaLocal(t, smtptest.Gmail, true, cmds)
	rep, err := l.Probe(t.Context(), Options{MTAStack: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 { // posttls-finger "not installed": skipped
		t.Fatalf("%+v", rep.Results)
	}
	r := byEngine(rep)[probe.EngineOpenSSL]
	if r.Failure != probe.FailTLSReset || r.Hints[len(r.Hints)-1] != MTAStackHint {
		t.Errorf("%+v", r)
	}
	// Without the option, or when the relay does not allow it, only the
	// native probe runs.
	rep, _ = l.Probe(t.Context(), Options{})
	l.MTAStack = false
	rep2, _ := l.Probe(t.Context(), Options{MTAStack: true})
	if len(rep.Results) != 1 || len(rep2.Results) != 1 {
		t.Errorf("MTA stack ran unasked: %d, %d results", len(rep.Results), len(rep2.Results))
	}
}

// TestMTAStackSkippedWhereNativeCouldNotConnect: the tools start beside
// the native probe, so they are started toward the address too; when the
// native probe finds nothing listening they are ended at once (cancelled,
// not at their own time limit) and report nothing.
func TestMTAStackSkippedWhereNativeCouldNotConnect(t *testing.T) {
	cmds := &blockingTools{}
	l, mx := mtaLocal(t, smtptest.Gmail, true, cmds)
	mx.Close() // nothing listens any more: connect_refused
	rep, err := l.Probe(t.Context(), Options{MTAStack: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Stage != probe.StageConnect {
		t.Errorf("results %+v, want the native connect failure alone", rep.Results)
	}
	cmds.wantEndedByNative(t, 2)
}

// blockingTools are tools that run until their context ends, and note how
// it ended.
type blockingTools struct {
	mu    sync.Mutex
	ended []error
}

func (b *blockingTools) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	<-ctx.Done()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ended = append(b.ended, context.Cause(ctx))
	return []byte("CONNECTION ESTABLISHED\n"), ctx.Err()
}

// wantEndedByNative checks that at most n tools ran (one the verdict
// came before did not start at all) and that every one that ran was
// cancelled, none ended by its own time limit.
func (b *blockingTools) wantEndedByNative(t *testing.T, n int) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.ended) > n {
		t.Fatalf("%d tools ran, want at most %d", len(b.ended), n)
	}
	for _, err := range b.ended {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("a tool ended by %v, want cancelled by the native verdict", err)
		}
	}
}

// recordedTools answers with a recorded output per program; other programs
// are "not installed".
type recordedTools struct {
	out   map[string][]byte
	mu    sync.Mutex
	calls []string
}

func (r *recordedTools) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, name)
	if o, ok := r.out[name]; ok {
		return o, nil
	}
	return nil, errors.Join(errors.New(name+" is not installed"), exec.ErrNotFound)
}

// TestMTAStackSkippedWhereNativeGotNoGreeting: the same for a server
// that never greets: the tools toward it end with the native probe's
// banner_timeout and report nothing.
func TestMTAStackSkippedWhereNativeGotNoGreeting(t *testing.T) {
	cmds := &blockingTools{}
	ca := newCA(t)
	_, base := target(t, smtptest.HangBanner, ca)
	base.Timeout = 200 * time.Millisecond
	l := NewLocal("relay-1", base, nil)
	l.MTAStack, l.Commands = true, cmds
	rep, err := l.Probe(t.Context(), Options{MTAStack: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Failure != probe.FailBannerTimeout {
		t.Errorf("results %+v, want the native banner_timeout alone", rep.Results)
	}
	cmds.wantEndedByNative(t, 2)
}

func TestMTAStackThroughTheAgent(t *testing.T) {
	ok, err := os.ReadFile("testdata/openssl/gmail.txt")
	if err != nil {
		t.Fatal(err)
	}
	pf, err := os.ReadFile("testdata/posttls-finger/untrusted_ca.txt")
	if err != nil {
		t.Fatal(err)
	}
	ca := newCA(t)
	_, base := target(t, smtptest.Gmail, ca)
	cmds := &recordedTools{out: map[string][]byte{"openssl": ok, "posttls-finger": pf}}
	agent := plainAgent(t, ServerConfig{Base: base, MTAStack: true, Commands: cmds})
	a := NewAgent("relay-2", agent.URL, testSecret, agent.Client(), 10*time.Second, nil)
	rep, err := a.Probe(t.Context(), Options{MTAStack: true})
	if err != nil {
		t.Fatal(err)
	}
	got := byEngine(rep)
	if len(rep.Results) != 3 || !got[probe.EngineNative].OK || !got[probe.EngineOpenSSL].OK {
		t.Fatalf("%+v", rep.Results)
	}
	r := got[probe.EnginePosttlsFinger]
	if r.Failure != probe.FailCertUntrusted || r.Relay != "relay-2" || !strings.Contains(strings.Join(r.Hints, "|"), MTAStackHint) {
		t.Errorf("posttls-finger %+v", r)
	}
}

// TestMTAStackRunsBesideTheNativeProbe: the relay's own tools start as
// soon as the native probe has its targets, not after it: the native
// probe cannot even connect before a (fake, slow) openssl from a
// temporary PATH has started, so run one after the other the probe would
// wait out the dialer's bail-out and the test fail. Both results arrive.
func TestMTAStackRunsBesideTheNativeProbe(t *testing.T) {
	recorded, err := filepath.Abs("testdata/openssl/gmail.txt")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	script := "#!/bin/sh\n/bin/sleep 0.2\n/bin/cat '" + recorded + "'\n"
	if err := os.WriteFile(filepath.Join(bin, "openssl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin) // posttls-finger is not there: skipped

	tools := &signallingTools{started: make(chan struct{}), next: &ExecRunner{}}
	ca := newCA(t)
	_, base := target(t, smtptest.Gmail, ca)
	dialer := &gatedDialer{gate: tools.started}
	base.Dialer = dialer
	l := NewLocal("relay-1", base, nil)
	l.MTAStack, l.Commands = true, tools
	l.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := ca.WritePEM(l.CAFile); err != nil {
		t.Fatal(err)
	}
	rep, err := l.Probe(t.Context(), Options{MTAStack: true})
	if err != nil {
		t.Fatal(err)
	}
	if dialer.before.Load() {
		t.Error("the native probe connected before the tool started: the MTA stack ran after it")
	}
	got := byEngine(rep)
	if len(rep.Results) != 2 || !got[probe.EngineNative].OK || !got[probe.EngineOpenSSL].OK {
		t.Errorf("results %+v, want the native probe and openssl, both passing", rep.Results)
	}
}

// signallingTools closes started when the first tool starts, then runs it.
type signallingTools struct {
	once    sync.Once
	started chan struct{}
	next    CommandRunner
}

func (s *signallingTools) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	s.once.Do(func() { close(s.started) })
	return s.next.Run(ctx, name, args...)
}

// gatedDialer dials only once gate is closed, or after a 10 s bail-out
// (noted in before) so that a failing test still ends.
type gatedDialer struct {
	gate   <-chan struct{}
	before atomic.Bool
}

func (g *gatedDialer) DialContext(ctx context.Context, network, address string, source netip.Addr) (net.Conn, error) {
	select {
	case <-g.gate:
	case <-time.After(10 * time.Second):
		g.before.Store(true)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return probe.NetDialer{}.DialContext(ctx, network, address, source)
}
