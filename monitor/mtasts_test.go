package monitor

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/internal/fakerelay"
	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/mtasts"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// gmailSTSPolicy is a policy like the one gmail.com publishes.
const gmailSTSPolicy = "version: STSv1\r\nmode: enforce\r\nmx: gmail-smtp-in.l.google.com\r\nmx: *.gmail-smtp-in.l.google.com\r\nmax_age: 86400\r\n"

// stsDNS answers the TXT lookups of "_mta-sts.gmail.com" with one record
// whose id the test may change; any other name does not exist.
type stsDNS struct {
	mu sync.Mutex
	id string
}

func (d *stsDNS) setID(id string) { d.mu.Lock(); d.id = id; d.mu.Unlock() }

func (d *stsDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if strings.TrimSuffix(strings.ToLower(name), ".") == "_mta-sts.gmail.com" {
		return []string{"v=STSv1; id=" + d.id + ";"}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// stsEnv is a Monitor whose target is gmail.com from DNS, one local relay
// scripted by fakerelay toward the MX hosts mx, and mta-sts.gmail.com
// served over HTTPS on loopback with a certificate of a test CA, reached
// through the MTA-STS client's injected dialer.
type stsEnv struct {
	t       *testing.T
	clock   *manualclock.Clock
	m       *Monitor
	runner  *fakerelay.Runner
	dns     *stsDNS
	srv     *httptest.Server
	client  *mtasts.Client
	fetches atomic.Int32
}

func newSTSEnv(t *testing.T, mx ...string) *stsEnv {
	t.Helper()
	e := &stsEnv{t: t, clock: manualclock.New(testBase), dns: &stsDNS{id: "20190429T010101"}}
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	leaf, err := ca.Issue([]string{"mta-sts.gmail.com"}, now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != "mta-sts.gmail.com" {
			http.NotFound(w, r)
			return
		}
		e.fetches.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, gmailSTSPolicy)
	}))
	e.srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	e.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	addr := e.srv.Listener.Addr().String()
	dial := func(ctx context.Context, network, hostport string) (net.Conn, error) {
		if hostport != "mta-sts.gmail.com:443" {
			return nil, &net.DNSError{Err: "no such host", Name: hostport, IsNotFound: true}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}

	cfg := config.Default()
	cfg.Target.Domain, cfg.Target.MX = "gmail.com", nil
	cfg.Relays = []config.Relay{{Name: "relay-1", Kind: "local"}}
	st, err := storage.Open(context.Background(), filepath.Join(t.TempDir(), "gmailtls.db"), storage.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.SyncRelays(context.Background(), relay.RelaySpecs(cfg)); err != nil {
		t.Fatal(err)
	}
	e.runner = fakerelay.New("relay-1", e.clock.Now, mx...)
	e.client = &mtasts.Client{Resolver: e.dns, DialContext: dial, RootCAs: ca.Pool, Timeout: 5 * time.Second}
	e.m = New(Deps{
		Config: cfg, Store: st, Runners: map[string]relay.Runner{"relay-1": e.runner}, Now: e.clock.Now,
		MTASTS: e.client,
	})
	return e
}

// failingEvidence stores a run whose every probe fails the TLS handshake
// and returns the evidence of it and its --json form.
func (e *stsEnv) failingEvidence() (EvidenceModel, string) {
	e.t.Helper()
	e.runner.Set("tls_reset")
	if _, err := e.m.CheckRelay(context.Background(), Check{Relay: "relay-1", Trigger: message.SourceCLI, RequestedBy: "test"}); err != nil {
		e.t.Fatal(err)
	}
	ev, err := e.m.Evidence(context.Background(), e.m.Snapshot(), EvidenceQuery{Relay: "relay-1"})
	if err != nil {
		e.t.Fatal(err)
	}
	js, err := json.Marshal(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	return ev, string(js)
}

// TestMTASTSEvidence: the evidence of a relay probing gmail.com from DNS
// carries the MTA-STS policy the relay fetched over HTTPS (on loopback,
// with a test CA), judged against the run's MX hosts, and keeps the
// MTA-STS verdict apart from the TLS failure of the probes: the policy is
// ok (or the MX is not in it, or it could not be fetched) while every
// certificate verdict is no_tls, in the model and in its JSON.
func TestMTASTSEvidence(t *testing.T) {
	gmailMX := []string{"gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com"}
	for _, tc := range []struct {
		name       string
		mx         []string
		serverDown bool
		class      mtasts.Class
		reason     mtasts.Reason
		notIn      []string
	}{
		{name: "ok", mx: gmailMX, class: mtasts.ClassOK},
		{name: "mx not in policy", mx: append([]string{"mx.evil.example"}, gmailMX...), class: mtasts.ClassMXNotInPolicy, notIn: []string{"mx.evil.example"}},
		{name: "policy fetch failed", mx: gmailMX, serverDown: true, class: mtasts.ClassPolicyFetchFailed, reason: mtasts.ReasonConnect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSTSEnv(t, tc.mx...)
			if tc.serverDown {
				e.srv.Close()
			}
			ev, js := e.failingEvidence()
			if ev.MTASTSError != "" {
				t.Fatalf("MTASTSError = %q", ev.MTASTSError)
			}
			r := ev.MTASTS
			if r == nil {
				t.Fatal("no MTA-STS report in the evidence")
			}
			if r.Class != tc.class || r.Reason != tc.reason {
				t.Fatalf("class %s (%s), want %s (%s): %s", r.Class, r.Reason, tc.class, tc.reason, r.Detail)
			}
			if !strings.Contains(js, `"mta_sts":{"domain":"gmail.com","class":"`+string(tc.class)+`"`) {
				t.Errorf("evidence --json lacks the MTA-STS class %s: %s", tc.class, js)
			}
			if strings.Join(r.NotInPolicy, ",") != strings.Join(tc.notIn, ",") {
				t.Errorf("not in policy %v, want %v", r.NotInPolicy, tc.notIn)
			}
			if len(r.MXHosts) != len(tc.mx) {
				t.Fatalf("%d MX hosts judged, want %d: %+v", len(r.MXHosts), len(tc.mx), r.MXHosts)
			}
			for _, c := range r.MXHosts {
				// The probes' TLS failure is TLS's verdict, not MTA-STS's.
				if c.Cert != mtasts.CertNoTLS {
					t.Errorf("%s: certificate %s, want no_tls (the probes failed the handshake)", c.Host, c.Cert)
				}
				wantIn := !tc.serverDown && c.Host != "mx.evil.example"
				if c.InPolicy != wantIn {
					t.Errorf("%s: in policy %v, want %v", c.Host, c.InPolicy, wantIn)
				}
			}
			if tc.serverDown {
				if r.Policy != nil {
					t.Errorf("a policy without a fetch: %+v", r.Policy)
				}
				return
			}
			if r.Policy == nil || r.Policy.Mode != mtasts.ModeEnforce || r.Policy.MaxAge != 86400 || r.ID != "20190429T010101" {
				t.Errorf("policy %+v id %q, want mode enforce, max_age 86400, id 20190429T010101", r.Policy, r.ID)
			}
			if !strings.Contains(js, `"mode":"enforce"`) || !strings.Contains(js, `"max_age":86400`) {
				t.Errorf("evidence --json lacks the policy's mode or max_age: %s", js)
			}
		})
	}
}

// TestMTASTSCache: a valid policy is fetched once and reused for its
// max_age while the TXT record's id stays; a new id fetches it again, and
// so does the end of max_age.
func TestMTASTSCache(t *testing.T) {
	e := newSTSEnv(t, "gmail-smtp-in.l.google.com")
	ctx := context.Background()
	get := func() *mtasts.Discovery {
		t.Helper()
		d, err := e.m.MTASTS(ctx, e.m.Snapshot(), "relay-1")
		if err != nil || d == nil {
			t.Fatalf("MTASTS = %v, %v", d, err)
		}
		return d
	}
	if d := get(); d.Class != mtasts.ClassOK || e.fetches.Load() != 1 {
		t.Fatalf("first: class %s, %d fetches", d.Class, e.fetches.Load())
	}
	e.clock.Advance(time.Hour)
	if get(); e.fetches.Load() != 1 {
		t.Fatalf("within max_age with the same id: %d fetches, want 1", e.fetches.Load())
	}
	e.dns.setID("20260504T000000")
	if d := get(); e.fetches.Load() != 2 || d.ID != "20260504T000000" {
		t.Fatalf("after the id changed: %d fetches, id %s; want 2 and the new id", e.fetches.Load(), d.ID)
	}
	e.clock.Advance(24 * time.Hour)
	if get(); e.fetches.Load() != 3 {
		t.Fatalf("after max_age: %d fetches, want 3", e.fetches.Load())
	}
}

// TestMTASTSNotForPinnedMX: with the MX hosts pinned there is no domain
// whose policy applies, and nothing is fetched.
func TestMTASTSNotForPinnedMX(t *testing.T) {
	e := newSTSEnv(t, "gmail-smtp-in.l.google.com")
	snap := e.m.Snapshot()
	cfg := *snap.Config
	cfg.Target.MX = []string{"127.0.0.1:2525"}
	pinned := NewSnapshot(&cfg, snap.Runners, snap.Policy)
	d, err := e.m.MTASTS(context.Background(), pinned, "relay-1")
	if d != nil || err != nil || e.fetches.Load() != 0 {
		t.Fatalf("pinned MX: %v, %v, %d fetches; want nothing", d, err, e.fetches.Load())
	}
}

// TestMTASTSFromAgent: for a relay on an agent the agent fetches the
// policy itself (GET /v1/mtasts, signed) with its own resolver and dialer:
// the bot's own client, whose dialer reaches nothing, is not used.
func TestMTASTSFromAgent(t *testing.T) {
	e := newSTSEnv(t, "gmail-smtp-in.l.google.com")
	secret := []byte("mtasts-test-secret")
	agent := httptest.NewServer(relay.NewServer(relay.ServerConfig{
		Base: probe.Config{Domain: "gmail.com"}, Secrets: [][]byte{secret}, MTASTS: e.client,
	}))
	t.Cleanup(agent.Close)
	runner := relay.NewAgent("relay-1", agent.URL, secret, agent.Client(), 30*time.Second, time.Now)
	snap := e.m.Snapshot()
	m := New(Deps{
		Config: snap.Config, Store: e.m.store, Runners: map[string]relay.Runner{"relay-1": runner}, Now: e.clock.Now,
		MTASTS: &mtasts.Client{Resolver: e.dns, DialContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("the bot must not fetch an agent relay's policy")
		}},
	})
	d, err := m.MTASTS(context.Background(), m.Snapshot(), "relay-1")
	if err != nil || d == nil {
		t.Fatalf("MTASTS = %v, %v", d, err)
	}
	if d.Class != mtasts.ClassOK || d.Policy == nil || d.Policy.Mode != mtasts.ModeEnforce || e.fetches.Load() != 1 {
		t.Fatalf("class %s (%s) policy %+v, %d fetches; want ok, enforce, fetched once by the agent", d.Class, d.Detail, d.Policy, e.fetches.Load())
	}
}
