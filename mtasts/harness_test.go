package mtasts

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// fakeDNS answers TXT lookups from a table: a name it does not know does
// not exist (NXDOMAIN), as a real resolver says it.
type fakeDNS struct {
	txt map[string][]string
	err map[string]error

	mu    sync.Mutex
	asked []string
}

func (f *fakeDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	f.mu.Lock()
	f.asked = append(f.asked, name)
	f.mu.Unlock()
	name = canonical(name)
	if err, ok := f.err[name]; ok {
		return nil, err
	}
	if txt, ok := f.txt[name]; ok {
		return txt, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// policyHost is a loopback HTTPS server standing in for mta-sts.<domain>,
// reached through dial, which maps "mta-sts.<domain>:443" (and nothing
// else) to it: a name it does not map does not resolve.
type policyHost struct {
	srv *httptest.Server
	ca  *smtptest.CA

	mu     sync.Mutex
	routes map[string]string // host:port → loopback address
	dialed []string
}

// gmailRecord is the TXT record gmail.com publishes at _mta-sts.gmail.com.
const gmailRecord = "v=STSv1; id=20190429T010101;"

// startPolicyHost serves handler over TLS with a leaf for names signed by
// a fresh test CA, and routes mta-sts.gmail.com:443 to it.
func startPolicyHost(t *testing.T, handler http.Handler, names ...string) *policyHost {
	t.Helper()
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		names = []string{"mta-sts.gmail.com"}
	}
	now := time.Now()
	leaf, err := ca.Issue(names, now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return startPolicyHostCert(t, handler, ca, leaf)
}

// startPolicyHostCert is startPolicyHost with a given CA (the client's
// roots) and leaf (what the server presents).
func startPolicyHostCert(t *testing.T, handler http.Handler, ca *smtptest.CA, leaf tls.Certificate) *policyHost {
	t.Helper()
	srv := httptest.NewUnstartedServer(handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point of some tests
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h := &policyHost{srv: srv, ca: ca, routes: map[string]string{}}
	h.route("mta-sts.gmail.com:443", srv.Listener.Addr().String())
	return h
}

func (h *policyHost) route(hostport, addr string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.routes[hostport] = addr
}

// dial is the Client's DialContext.
func (h *policyHost) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	h.mu.Lock()
	h.dialed = append(h.dialed, addr)
	to, ok := h.routes[addr]
	h.mu.Unlock()
	if !ok {
		host, _, _ := net.SplitHostPort(addr)
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, to)
}

func (h *policyHost) dials() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.dialed...)
}

// client is a Client that reaches only h and r.
func (h *policyHost) client(r Resolver) *Client {
	return &Client{
		Resolver:    r,
		DialContext: h.dial,
		RootCAs:     h.ca.Pool,
		Timeout:     10 * time.Second,
		Now:         time.Now,
	}
}

// serve answers every request with body as text/plain.
func serve(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	})
}

// gmailDNS publishes gmail.com's record, plus an SPF record at the same
// name that discovery must ignore.
func gmailDNS() *fakeDNS {
	return &fakeDNS{txt: map[string][]string{"_mta-sts.gmail.com": {"v=spf1 -all", gmailRecord}}}
}

// contains fails t unless s contains every one of subs.
func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s %q does not contain %q", what, s, sub)
		}
	}
}
