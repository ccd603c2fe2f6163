package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/mtasts"
	"github.com/gmailtls/gmailtls/probe"
)

// stsTXT answers "_mta-sts.gmail.com" with gmail.com's record.
type stsTXT struct{}

func (stsTXT) LookupTXT(_ context.Context, name string) ([]string, error) {
	if strings.TrimSuffix(name, ".") == "_mta-sts.gmail.com" {
		return []string{"v=STSv1; id=20190429T010101;"}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// stsClient is an MTA-STS client whose resolver and dialer reach only a
// loopback HTTPS server serving a Gmail-like policy with a certificate for
// mta-sts.gmail.com from a test CA.
func stsClient(t *testing.T) *mtasts.Client {
	t.Helper()
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{"mta-sts.gmail.com"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "version: STSv1\nmode: enforce\nmx: gmail-smtp-in.l.google.com\nmx: *.gmail-smtp-in.l.google.com\nmax_age: 86400\n")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	return &mtasts.Client{
		Resolver: stsTXT{},
		RootCAs:  ca.Pool,
		DialContext: func(ctx context.Context, network, hostport string) (net.Conn, error) {
			if hostport != "mta-sts.gmail.com:443" {
				return nil, &net.DNSError{Err: "no such host", Name: hostport, IsNotFound: true}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		Timeout: 5 * time.Second,
	}
}

// TestAgentMTASTS: GET /v1/mtasts, signed, answers the policy the agent
// fetched with its own resolver and dialer (mode, id, max_age); an agent
// whose target MX hosts are pinned answers 409, an agent error.
func TestAgentMTASTS(t *testing.T) {
	srv := plainAgent(t, ServerConfig{Base: probe.Config{Domain: "gmail.com"}, MTASTS: stsClient(t)})
	a := NewAgent("relay-2", srv.URL, testSecret, srv.Client(), 30*time.Second, time.Now)
	d, err := a.MTASTS(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d.Class != mtasts.ClassOK || d.ID != "20190429T010101" || d.Policy == nil || d.Policy.Mode != mtasts.ModeEnforce || d.Policy.MaxAge != 86400 {
		t.Fatalf("discovery %+v policy %+v; want ok, id 20190429T010101, enforce, 86400", d, d.Policy)
	}

	pinned := plainAgent(t, ServerConfig{Base: probe.Config{Domain: "gmail.com", MX: []probe.Target{{Host: "127.0.0.1", Port: 2525}}}, MTASTS: stsClient(t)})
	_, err = NewAgent("relay-3", pinned.URL, testSecret, pinned.Client(), 30*time.Second, time.Now).MTASTS(t.Context())
	if !errors.Is(err, ErrAgentError) {
		t.Fatalf("pinned agent: %v, want an agent error (409)", err)
	}
}
