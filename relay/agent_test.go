package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/probe"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// signalDialer dials like net.Dialer and reports every dial on a channel,
// so that tests know a probe is under way without sleeping.
type signalDialer struct {
	dialed chan string
}

func (d *signalDialer) DialContext(ctx context.Context, network, address string, source netip.Addr) (net.Conn, error) {
	var nd net.Dialer
	if source.IsValid() {
		nd.LocalAddr = &net.TCPAddr{IP: source.AsSlice()}
	}
	c, err := nd.DialContext(ctx, network, address)
	if d.dialed != nil {
		select {
		case d.dialed <- address:
		default:
		}
	}
	return c, err
}

// target starts a scripted STARTTLS server on loopback and returns it with
// a probe configuration pinned to it.
func target(t *testing.T, b smtptest.Behavior, ca *smtptest.CA) (*smtptest.Server, probe.Config) {
	t.Helper()
	srv := smtptest.StartT(t, smtptest.Options{Behavior: b, CA: ca, Hostname: "mx.test.example"})
	cfg := probe.Config{
		Relay:      "agent-host",
		Domain:     "gmail.com",
		MX:         []probe.Target{{Host: srv.Host(), Port: srv.Port()}},
		ServerName: "mx.test.example",
		RootCAs:    ca.Pool,
		HelloName:  "relay-2.test",
		Timeout:    5 * time.Second,
		NoRetry:    true,
	}
	return srv, cfg
}

func newCA(t *testing.T) *smtptest.CA {
	t.Helper()
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// plainAgent serves the agent over plain HTTP on 127.0.0.1.
func plainAgent(t *testing.T, cfg ServerConfig) *httptest.Server {
	t.Helper()
	if cfg.Secrets == nil {
		cfg.Secrets = [][]byte{testSecret}
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	srv := httptest.NewServer(NewServer(cfg))
	t.Cleanup(srv.Close)
	return srv
}

// signedRequest builds a request signed at ts.
func signedRequest(t *testing.T, secret []byte, ts time.Time, method, url, path string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(secret, ts.Unix(), method, path, body))
	return req
}

func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAgentProbePlainHTTP(t *testing.T) {
	ca := newCA(t)
	mx, base := target(t, smtptest.Gmail, ca)
	agent := plainAgent(t, ServerConfig{Base: base, Version: "v-test"})
	a := NewAgent("relay-2", agent.URL, testSecret, agent.Client(), 10*time.Second, nil)
	if a.Name() != "relay-2" || a.Kind() != KindAgent {
		t.Fatalf("name/kind %s/%s", a.Name(), a.Kind())
	}
	rep, err := a.Probe(t.Context(), Options{MX: []string{mx.Host()}, Family: "any"})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Results) != 1 {
		t.Fatalf("report %+v", rep)
	}
	r := rep.Results[0]
	if r.Relay != "relay-2" || r.Engine != probe.EngineNative || r.IP != "127.0.0.1" || r.TLS == nil || !r.TLS.Verified {
		t.Errorf("result %+v", r)
	}
	if rep.Relay != "relay-2" {
		t.Errorf("report relay %q", rep.Relay)
	}
	if mx.Connections() != 1 {
		t.Errorf("%d connections to the MX, want 1", mx.Connections())
	}
	// Two identical probes in the same second still get through: the
	// client's timestamps never repeat.
	for range 2 {
		rep, _ := a.Probe(t.Context(), Options{})
		if !rep.OK() {
			t.Fatalf("repeat probe: %+v", rep.Results)
		}
	}
}

func TestAgentProbeTLS(t *testing.T) {
	ca := newCA(t)
	mx, base := target(t, smtptest.ExpiredCert, ca)
	cert, err := ca.Issue([]string{"127.0.0.1"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(NewServer(ServerConfig{Base: base, Secrets: [][]byte{testSecret}, Logger: testLogger(t)}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	a := NewAgent("relay-2", srv.URL, testSecret, client, 10*time.Second, nil)
	rep, err := a.Probe(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Failure != probe.FailCertExpired {
		t.Fatalf("results %+v", rep.Results)
	}
	if mx.Connections() != 1 {
		t.Errorf("%d connections", mx.Connections())
	}
	// A client that does not trust the agent's certificate cannot reach it.
	b := NewAgent("relay-2", srv.URL, testSecret, &http.Client{}, 10*time.Second, nil)
	rep, _ = b.Probe(t.Context(), Options{})
	if rep.Results[0].Failure != probe.FailAgentUnreachable {
		t.Errorf("untrusted agent certificate: %+v", rep.Results[0])
	}
}

func TestRejectedRequestsRunNothing(t *testing.T) {
	ca := newCA(t)
	mx, base := target(t, smtptest.Gmail, ca)
	now := time.Unix(1700000000, 0)
	agent := plainAgent(t, ServerConfig{Base: base, MaxBody: 1024, Now: func() time.Time { return now }})
	body := []byte(`{"mx":["127.0.0.1"]}`)
	tests := []struct {
		name string
		req  *http.Request
		code int
	}{
		{"forged", signedRequest(t, []byte("not the secret"), now, "POST", agent.URL, PathProbe, body), 401},
		{"unsigned", func() *http.Request {
			r, _ := http.NewRequest("POST", agent.URL+PathProbe, bytes.NewReader(body))
			return r
		}(), 401},
		{"skewed behind", signedRequest(t, testSecret, now.Add(-6*time.Minute), "POST", agent.URL, PathProbe, body), 401},
		{"skewed ahead", signedRequest(t, testSecret, now.Add(6*time.Minute), "POST", agent.URL, PathProbe, body), 401},
		{"oversized", signedRequest(t, testSecret, now, "POST", agent.URL, PathProbe,
			append([]byte(`{"mx":["`), append(bytes.Repeat([]byte("a"), 2000), `"]}`...)...)), 413},
		{"signed over another body", func() *http.Request {
			r := signedRequest(t, testSecret, now, "POST", agent.URL, PathProbe, body)
			r.Body = io.NopCloser(strings.NewReader(`{"mx":["127.0.0.2"]}`))
			r.ContentLength = -1
			return r
		}(), 401},
		{"unknown field", signedRequest(t, testSecret, now.Add(-time.Second), "POST", agent.URL, PathProbe, []byte(`{"mx":[],"port":25}`)), 400},
		{"bad family", signedRequest(t, testSecret, now.Add(-2*time.Second), "POST", agent.URL, PathProbe, []byte(`{"family":"5"}`)), 400},
		{"not a configured target", signedRequest(t, testSecret, now.Add(-3*time.Second), "POST", agent.URL, PathProbe, []byte(`{"mx":["smtp.example.org"]}`)), 403},
		{"other port of a configured host", signedRequest(t, testSecret, now.Add(-4*time.Second), "POST", agent.URL, PathProbe, []byte(`{"mx":["127.0.0.1:25"]}`)), 403},
		{"info unsigned", func() *http.Request { r, _ := http.NewRequest("GET", agent.URL+PathInfo, nil); return r }(), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := send(t, tt.req)
			if code != tt.code {
				t.Fatalf("status %d (%s), want %d", code, msg, tt.code)
			}
		})
	}
	if n := mx.Connections(); n != 0 {
		t.Fatalf("%d probes ran for rejected requests", n)
	}
	if tt := "not a configured target"; true {
		_, msg := send(t, signedRequest(t, testSecret, now.Add(-5*time.Second), "POST", agent.URL, PathProbe, []byte(`{"mx":["evil.example"]}`)))
		if !strings.Contains(msg, tt) {
			t.Errorf("403 body %q lacks %q", msg, tt)
		}
	}

	// A replay: the first request runs, the same bytes again are refused.
	code, msg := send(t, signedRequest(t, testSecret, now, "POST", agent.URL, PathProbe, body))
	if code != 200 {
		t.Fatalf("genuine request: %d %s", code, msg)
	}
	if n := mx.Connections(); n != 1 {
		t.Fatalf("%d connections after one genuine probe", n)
	}
	code, msg = send(t, signedRequest(t, testSecret, now, "POST", agent.URL, PathProbe, body))
	if code != 401 || !strings.Contains(msg, "replay") {
		t.Fatalf("replay: %d %s", code, msg)
	}
	if n := mx.Connections(); n != 1 {
		t.Fatalf("the replay ran a probe (%d connections)", n)
	}
	// The same signature in other letter cases is the same signature.
	for _, recase := range []func(string) string{strings.ToUpper, func(s string) string {
		b := []byte(s)
		for i := len("v1="); i < len(b); i += 2 {
			b[i] = strings.ToUpper(string(b[i]))[0]
		}
		return string(b)
	}} {
		r := signedRequest(t, testSecret, now, "POST", agent.URL, PathProbe, body)
		r.Header.Set(HeaderSignature, "v1="+recase(strings.TrimPrefix(r.Header.Get(HeaderSignature), "v1=")))
		if code, msg := send(t, r); code != 401 || !strings.Contains(msg, "replay") {
			t.Fatalf("replay with the signature in another case: %d %s", code, msg)
		}
	}
	if n := mx.Connections(); n != 1 {
		t.Fatalf("a re-cased replay ran a probe (%d connections)", n)
	}
	// healthz needs no signature.
	resp, err := http.Get(agent.URL + PathHealthz)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz %d", resp.StatusCode)
	}
}

func TestConcurrencyCap(t *testing.T) {
	ca := newCA(t)
	mx, base := target(t, smtptest.HangBanner, ca)
	base.Timeout = time.Minute
	d := &signalDialer{dialed: make(chan string, 1)}
	base.Dialer = d
	agent := plainAgent(t, ServerConfig{Base: base, MaxProbes: 1})

	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan probe.Report, 1)
	a := NewAgent("relay-2", agent.URL, testSecret, agent.Client(), time.Minute, nil)
	go func() {
		rep, _ := a.Probe(ctx, Options{})
		first <- rep
	}()
	<-d.dialed // the first probe holds the only slot
	rep, err := a.Probe(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.Failure != probe.FailAgentError || !strings.Contains(r.Error, "429") {
		t.Fatalf("second probe: %+v", r)
	}
	cancel()
	<-first
	if mx.Connections() != 1 {
		t.Errorf("%d connections, want 1", mx.Connections())
	}
}

func TestAgentStoppedMidRun(t *testing.T) {
	ca := newCA(t)
	_, base := target(t, smtptest.HangBanner, ca)
	base.Timeout = time.Minute
	d := &signalDialer{dialed: make(chan string, 1)}
	base.Dialer = d
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: NewServer(ServerConfig{Base: base, Secrets: [][]byte{testSecret}, Logger: testLogger(t)})}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	a := NewAgent("relay-2", "http://"+ln.Addr().String(), testSecret, &http.Client{}, time.Minute, nil)
	got := make(chan probe.Report, 1)
	go func() {
		rep, _ := a.Probe(t.Context(), Options{MX: []string{"127.0.0.1"}})
		got <- rep
	}()
	<-d.dialed
	hs.Close() // the agent dies while the probe is in flight
	<-served
	rep := <-got
	if len(rep.Results) != 1 {
		t.Fatalf("results %+v", rep.Results)
	}
	r := rep.Results[0]
	if r.Failure != probe.FailAgentUnreachable || r.Stage != probe.StageAgent || r.MX != "127.0.0.1" || r.Relay != "relay-2" {
		t.Fatalf("result %+v", r)
	}
	if !r.Failure.IsRelayFailure() {
		t.Error("agent_unreachable counted as a Gmail failure")
	}
}

func TestAgentBadAnswers(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    probe.Failure
	}{
		{"garbage JSON", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>proxy login</html>") }, probe.FailAgentError},
		{"empty report", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"relay":"x","results":[]}`) }, probe.FailAgentError},
		{"unknown failure class", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"results":[{"ok":false,"failure":"rm -rf"}]}`)
		}, probe.FailAgentError},
		{"trailing data", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"results":[{"ok":true}]} {}`)
		}, probe.FailAgentError},
		{"500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }, probe.FailAgentError},
		{"401", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "bad signature", http.StatusUnauthorized) }, probe.FailAgentError},
		{"cut off", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			io.WriteString(w, `{"results":[`)
		}, probe.FailAgentUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			a := NewAgent("relay-3", srv.URL, testSecret, srv.Client(), 5*time.Second, nil)
			rep, err := a.Probe(t.Context(), Options{MX: []string{"a.example", "b.example"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Results) != 2 {
				t.Fatalf("results %+v", rep.Results)
			}
			for _, r := range rep.Results {
				if r.Failure != tt.want || r.Stage != probe.StageAgent || r.OK || r.Relay != "relay-3" || len(r.Hints) == 0 {
					t.Errorf("result %+v", r)
				}
			}
		})
	}
}

func TestAgentUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	a := NewAgent("relay-4", "http://"+addr, testSecret, nil, 5*time.Second, nil)
	rep, err := a.Probe(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Failure != probe.FailAgentUnreachable {
		t.Fatalf("%+v", rep.Results)
	}
	if _, err := a.Info(t.Context()); !errors.Is(err, ErrAgentUnreachable) {
		t.Errorf("Info: %v", err)
	}
	if _, err := a.Queue(t.Context()); !errors.Is(err, ErrAgentUnreachable) {
		t.Errorf("Queue: %v", err)
	}
	// A bad URL is a configuration problem reported as agent_error.
	b := NewAgent("relay-5", "::not a url", testSecret, nil, 0, nil)
	rep, _ = b.Probe(t.Context(), Options{})
	if rep.Results[0].Failure != probe.FailAgentError {
		t.Errorf("bad URL: %+v", rep.Results[0])
	}
	if _, err := b.Probe(t.Context(), Options{Family: "7"}); !errors.Is(err, ErrOptions) {
		t.Errorf("bad family: %v", err)
	}
}

func TestAgentTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	a := NewAgent("relay-6", srv.URL, testSecret, srv.Client(), 50*time.Millisecond, nil)
	rep, _ := a.Probe(t.Context(), Options{})
	if rep.Results[0].Failure != probe.FailAgentUnreachable {
		t.Fatalf("%+v", rep.Results[0])
	}
}

// fakeCommands answers the relay's tools from recorded outputs.
type fakeCommands struct {
	mu    sync.Mutex
	out   map[string]string // "name arg0" -> output
	err   map[string]error
	calls []string
	panic bool
}

func (f *fakeCommands) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panic {
		panic("tool exploded")
	}
	key := name
	if len(args) > 0 {
		key += " " + args[0]
	}
	f.calls = append(f.calls, key)
	if err, ok := f.err[key]; ok {
		return []byte(f.out[key]), err
	}
	if o, ok := f.out[key]; ok {
		return []byte(o), nil
	}
	return nil, &notFound{name}
}

type notFound struct{ name string }

func (e *notFound) Error() string { return e.name + ": executable file not found in $PATH" }
func (e *notFound) Unwrap() error { return exec.ErrNotFound }

func TestInfoQueueThroughAgent(t *testing.T) {
	ca := newCA(t)
	_, base := target(t, smtptest.Gmail, ca)
	agentNow := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	queue := strings.Join([]string{
		`{"queue_name": "deferred", "queue_id": "4C1F81F4D1", "arrival_time": ` + strconv.FormatInt(agentNow.Add(-2*time.Hour).Unix(), 10) + `, "message_size": 1834, "forced_expire": false, "sender": "a@example.com", "recipients": [{"address": "x@gmail.com", "delay_reason": "SSL_connect error to gmail-smtp-in.l.google.com[142.250.102.27]:25: lost connection"}]}`,
		`not json at all`,
		`{"queue_name": "deferred", "queue_id": "5D2A91F4E2", "arrival_time": ` + strconv.FormatInt(agentNow.Add(-time.Hour).Unix(), 10) + `, "message_size": 900, "forced_expire": false, "sender": "b@example.com", "recipients": [{"address": "y@googlemail.com", "delay_reason": "SSL_connect error to alt1.gmail-smtp-in.l.google.com[64.233.184.26]:25: lost connection"}, {"address": "z@example.net"}]}`,
	}, "\n")
	cmds := &fakeCommands{out: map[string]string{
		"postconf -d":     "3.7.11\n",
		"openssl version": "OpenSSL 3.0.19 27 Jan 2026 (Library: OpenSSL 3.0.19 27 Jan 2026)\n",
		"postqueue -j":    queue,
	}}
	agent := plainAgent(t, ServerConfig{Base: base, Commands: cmds, Version: "1.2.3", Now: func() time.Time { return agentNow }})
	// The bot's clock is 3 minutes behind the agent's.
	botNow := agentNow.Add(-3 * time.Minute)
	a := NewAgent("relay-2", agent.URL, testSecret, agent.Client(), 5*time.Second, func() time.Time { return botNow })
	var _ InfoQueuer = a
	info, skew, err := a.InfoSkew(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != "1.2.3" || info.MTA != "postfix" || info.MTAVersion != "3.7.11" ||
		!strings.HasPrefix(info.TLSLibrary, "OpenSSL 3.0.19") || info.Hostname == "" || !info.Clock.Equal(agentNow) {
		t.Errorf("info %+v", info)
	}
	if skew != 3*time.Minute {
		t.Errorf("skew %s", skew)
	}
	if h := CertExpiredHint(skew); !strings.Contains(h, "3m0s ahead") {
		t.Errorf("hint %q", h)
	}
	q, err := a.Queue(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := Queue{Deferred: 2, Recipients: 2, OldestAge: 2 * time.Hour, Malformed: 1, Available: true,
		TopReason:     "SSL_connect error to gmail-smtp-in.l.google.com[IP]:25: lost connection",
		OldestArrival: agentNow.Add(-2 * time.Hour),
		Reasons: []QueueReason{{Reason: "SSL_connect error to gmail-smtp-in.l.google.com[IP]:25: lost connection", Recipients: 2, Messages: 2,
			QueueIDs: []QueuedMessage{
				{ID: "4C1F81F4D1", Arrival: agentNow.Add(-2 * time.Hour), Domains: []string{"gmail.com"}},
				{ID: "5D2A91F4E2", Arrival: agentNow.Add(-time.Hour), Domains: []string{"googlemail.com"}},
			}}},
		Domains: []QueueDomain{{Domain: "gmail.com", Why: "gmail_domain", Recipients: 1}, {Domain: "googlemail.com", Why: "gmail_domain", Recipients: 1}},
	}
	if !reflect.DeepEqual(q, want) {
		t.Errorf("queue\n got %+v\nwant %+v", q, want)
	}
}

func TestQueueWithoutPostfix(t *testing.T) {
	l := NewLocal("r", probe.Config{}, nil)
	l.Commands = &fakeCommands{}
	q, err := l.Queue(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if q.Available || !strings.Contains(q.Error, "not found") {
		t.Errorf("%+v", q)
	}
	b, _ := json.Marshal(q)
	if !strings.Contains(string(b), `"available":false`) || !strings.Contains(string(b), `"oldest_age_s":0`) {
		t.Errorf("json %s", b)
	}
	l.Commands = &fakeCommands{out: map[string]string{"postqueue -j": "postqueue: fatal: Queue report unavailable - mail system is down\n"},
		err: map[string]error{"postqueue -j": errors.New("exit status 69")}}
	q, _ = l.Queue(t.Context())
	if q.Available || !strings.Contains(q.Error, "mail system is down") {
		t.Errorf("%+v", q)
	}
}

func TestPanicRecovered(t *testing.T) {
	ca := newCA(t)
	_, base := target(t, smtptest.Gmail, ca)
	agent := plainAgent(t, ServerConfig{Base: base, Commands: &fakeCommands{panic: true}})
	code, msg := send(t, signedRequest(t, testSecret, time.Now(), "GET", agent.URL, PathInfo, nil))
	if code != 500 {
		t.Fatalf("%d %s", code, msg)
	}
	// The server goes on serving.
	code, _ = send(t, signedRequest(t, testSecret, time.Now().Add(time.Second), "POST", agent.URL, PathProbe, nil))
	if code != 200 {
		t.Fatalf("after a panic: %d", code)
	}
}

func TestQueueJSON(t *testing.T) {
	q := Queue{Deferred: 3, OldestAge: 90 * time.Second, TopReason: "x", Recipients: 4, Available: true}
	b, err := json.Marshal(q)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"deferred":3,"oldest_age_s":90,"top_reason":"x","recipients":4,"available":true}` {
		t.Errorf("%s", b)
	}
	var back Queue
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, q) {
		t.Errorf("round trip %+v %v", back, err)
	}
	// The fields added for issue 14 come after the old ones, which keep
	// their names and meaning.
	arrival := time.Date(2026, 3, 2, 9, 58, 30, 0, time.UTC)
	q.OldestArrival = arrival
	q.Reasons = []QueueReason{{Reason: "x", Recipients: 4, Messages: 3, MoreIDs: 2,
		QueueIDs: []QueuedMessage{{ID: "4D8E45103FE", Arrival: arrival, Domains: []string{"workspace-customer.test"}}}}}
	q.Domains = []QueueDomain{{Domain: "workspace-customer.test", Why: "google_mx", MX: "aspmx.l.google.com", Recipients: 1}}
	b, _ = json.Marshal(q)
	const wantJSON = `{"deferred":3,"oldest_age_s":90,"top_reason":"x","recipients":4,"available":true,` +
		`"oldest_arrival":"2026-03-02T09:58:30Z","reasons":[{"reason":"x","recipients":4,"messages":3,"queue_ids":[{"id":"4D8E45103FE","arrival":"2026-03-02T09:58:30Z","domains":["workspace-customer.test"]}],"more_queue_ids":2}],` +
		`"domains":[{"domain":"workspace-customer.test","why":"google_mx","mx":"aspmx.l.google.com","recipients":1}]}`
	if string(b) != wantJSON {
		t.Errorf("json\n got %s\nwant %s", b, wantJSON)
	}
	back = Queue{}
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, q) {
		t.Errorf("round trip %+v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"oldest_age_s":-1}`), &back); err == nil {
		t.Error("negative age accepted")
	}
}

func TestClockSkewHints(t *testing.T) {
	sent := time.Unix(1000, 0)
	recv := sent.Add(2 * time.Second)
	info := Info{Clock: sent.Add(time.Second).Add(-5 * time.Minute)}
	if s := ClockSkew(info, sent, recv); s != -5*time.Minute {
		t.Errorf("skew %s", s)
	}
	if ClockSkew(Info{}, sent, recv) != 0 {
		t.Error("zero clock")
	}
	if CertExpiredHint(time.Minute) != "" {
		t.Error("hint for a small skew")
	}
	rep := probe.Report{Results: []probe.Result{{Failure: probe.FailCertExpired}, {Failure: probe.FailTLSReset}}}
	ApplyClockSkew(&rep, -5*time.Minute)
	ApplyClockSkew(&rep, -5*time.Minute)
	if len(rep.Results[0].Hints) != 1 || !strings.Contains(rep.Results[0].Hints[0], "5m0s behind") || len(rep.Results[1].Hints) != 0 {
		t.Errorf("%+v", rep.Results)
	}
}

func TestAgentClockFarOff(t *testing.T) {
	ca := newCA(t)
	_, base := target(t, smtptest.Gmail, ca)
	agentNow := time.Now()
	agent := plainAgent(t, ServerConfig{Base: base, Now: func() time.Time { return agentNow }})
	// The bot's clock is a day behind: every request is refused, and the
	// result says why.
	a := NewAgent("relay-2", agent.URL, testSecret, agent.Client(), 5*time.Second, func() time.Time { return agentNow.Add(-24 * time.Hour) })
	rep, _ := a.Probe(t.Context(), Options{})
	r := rep.Results[0]
	if r.Failure != probe.FailAgentError || !strings.Contains(r.Error, "agent's clock is about 24h0m0s ahead") {
		t.Fatalf("%+v", r)
	}
}

// TestAgentSourceIPs: the relay's source_ips travel to the agent, which
// probes from each of them separately, and refuses an address that is not
// its own before anything is dialled.
func TestAgentSourceIPs(t *testing.T) {
	ca := newCA(t)
	mx, base := target(t, smtptest.Gmail, ca)
	agent := plainAgent(t, ServerConfig{Base: base})
	a := NewAgent("relay-2", agent.URL, testSecret, agent.Client(), 10*time.Second, nil).
		WithSources([]string{"127.0.0.2", "127.0.0.3"})
	rep, err := a.Probe(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rep.Results {
		if !r.OK {
			t.Errorf("from %s: %s %s", r.SourceIP, r.Failure, r.Error)
		}
		got = append(got, r.SourceIP)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"127.0.0.2", "127.0.0.3"}) {
		t.Fatalf("probed from %v, want 127.0.0.2 and 127.0.0.3", got)
	}
	if n := mx.Connections(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}

	// 192.0.2.1 (TEST-NET-1) is no address of this host: refused, no probe.
	rep, err = a.Probe(t.Context(), Options{Sources: []string{"127.0.0.2", "192.0.2.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Failure != probe.FailAgentError ||
		!strings.Contains(rep.Results[0].Error, "192.0.2.1 is not an address of this host") {
		t.Fatalf("foreign source: %+v", rep.Results)
	}
	for _, body := range []string{`{"source_ips":["not-an-ip"]}`, `{"source_ips":["192.0.2.1"]}`} {
		code, msg := send(t, signedRequest(t, testSecret, time.Now(), "POST", agent.URL, PathProbe, []byte(body)))
		if code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", body, code, msg)
		}
	}
	if n := mx.Connections(); n != 2 {
		t.Fatalf("refused requests dialled the MX (%d connections)", n)
	}
}

// TestReadsInTheSameSecond: two bot processes (two Agents, each with its
// own timestamp counter) reading /v1/info and /v1/queue in the same second
// both get through, as the nonce in the signed query tells them apart; the
// exact bytes again are still a replay, and a changed nonce breaks the
// signature.
func TestReadsInTheSameSecond(t *testing.T) {
	ca := newCA(t)
	_, base := target(t, smtptest.Gmail, ca)
	now := time.Unix(1700000000, 0)
	clock := func() time.Time { return now }
	agent := plainAgent(t, ServerConfig{Base: base, Now: clock, Version: "v-test"})
	for i := range 2 {
		a := NewAgent("relay-2", agent.URL, testSecret, agent.Client(), 10*time.Second, clock)
		if _, err := a.Info(t.Context()); err != nil {
			t.Fatalf("process %d: info: %v", i+1, err)
		}
		if _, err := a.Queue(t.Context()); err != nil {
			t.Fatalf("process %d: queue: %v", i+1, err)
		}
	}
	// A read signed over its query: replayed as is, or with another nonce.
	req := func(query string, signedQuery string) *http.Request {
		r, err := http.NewRequest("GET", agent.URL+PathInfo+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		r.Header.Set(HeaderSignature, Sign(testSecret, now.Unix(), "GET", PathInfo+signedQuery, nil))
		return r
	}
	if code, msg := send(t, req("?nonce=abc", "?nonce=abc")); code != 200 {
		t.Fatalf("signed read: %d %s", code, msg)
	}
	if code, msg := send(t, req("?nonce=abc", "?nonce=abc")); code != 401 || !strings.Contains(msg, "replay") {
		t.Fatalf("replayed read: %d %s", code, msg)
	}
	if code, msg := send(t, req("?nonce=xyz", "?nonce=abc")); code != 401 || !strings.Contains(msg, "does not match") {
		t.Fatalf("read with a changed nonce: %d %s", code, msg)
	}
	// A read without a query, signed over the bare path, as docs/agent.md's
	// protocol has it, still works.
	if code, msg := send(t, req("", "")); code != 200 {
		t.Fatalf("read without nonce: %d %s", code, msg)
	}
}

// TestReadsFromAnAgentOfAnEarlierVersion: an agent that signs the bare path
// only (before reads carried a nonce) refuses the read with its nonce, and
// the client sends it again without one.
func TestReadsFromAnAgentOfAnEarlierVersion(t *testing.T) {
	var requests []string
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests = append(requests, r.URL.RequestURI())
		err := Verify([][]byte{testSecret}, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), r.Method, r.URL.Path, nil, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"hostname":"relay-2.old","version":"v0.9"}`)
	}))
	defer old.Close()
	a := NewAgent("relay-2", old.URL, testSecret, old.Client(), 10*time.Second, nil)
	info, err := a.Info(t.Context())
	if err != nil {
		t.Fatalf("info from an earlier agent: %v", err)
	}
	if info.Hostname != "relay-2.old" || len(requests) != 2 || !strings.Contains(requests[0], "nonce=") || requests[1] != PathInfo {
		t.Fatalf("info %+v after requests %v", info, requests)
	}
	// A wrong secret is still a wrong secret, said once.
	b := NewAgent("relay-2", old.URL, []byte("another secret"), old.Client(), 10*time.Second, nil)
	if _, err := b.Info(t.Context()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong secret: %v", err)
	}
}

// TestAgentNeverFollowsRedirects: an agent URL that answers with a
// redirect gets no second request from the bot: the signed request is
// not sent on, and the result names the URL that answered and its status,
// not what the other server says. The caller's client keeps its own
// redirect policy.
func TestAgentNeverFollowsRedirects(t *testing.T) {
	var elsewhere []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere = append(elsewhere, r.Method+" "+r.URL.Path+" signed="+strconv.FormatBool(r.Header.Get(HeaderSignature) != ""))
		http.Error(w, "OTHER-SERVER-SAYS: post this to Slack", http.StatusForbidden)
	}))
	defer other.Close()
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound, http.StatusMovedPermanently} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", other.URL+r.URL.RequestURI())
				w.WriteHeader(code)
				io.WriteString(w, "REDIRECT-BODY")
			}))
			defer redirecting.Close()
			client := &http.Client{}
			a := NewAgent("relay-2", redirecting.URL, testSecret, client, 5*time.Second, nil)
			rep, err := a.Probe(t.Context(), Options{MX: []string{"gmail-smtp-in.l.google.com"}})
			if err != nil {
				t.Fatal(err)
			}
			r := rep.Results[0]
			if r.Failure != probe.FailAgentError {
				t.Fatalf("result %+v", r)
			}
			for _, want := range []string{redirecting.URL, strconv.Itoa(code), "redirect"} {
				if !strings.Contains(r.Error, want) {
					t.Errorf("error %q lacks %q", r.Error, want)
				}
			}
			for _, leak := range []string{"OTHER-SERVER-SAYS", "REDIRECT-BODY", other.URL} {
				if strings.Contains(r.Error, leak) {
					t.Errorf("error %q shows %q", r.Error, leak)
				}
			}
			if _, err := a.Info(t.Context()); err == nil || !strings.Contains(err.Error(), strconv.Itoa(code)) {
				t.Errorf("info: %v", err)
			}
			if _, err := a.Queue(t.Context()); err == nil || !strings.Contains(err.Error(), strconv.Itoa(code)) {
				t.Errorf("queue: %v", err)
			}
			if len(elsewhere) > 0 {
				t.Fatalf("the redirect was followed: %v", elsewhere)
			}
			if client.CheckRedirect != nil {
				t.Error("NewAgent changed the caller's client")
			}
		})
	}
}
