package probe_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/probe"
)

const testHost = "mx.test.example"

// newCA makes the in-memory CA every server of a test shares.
func newCA(t testing.TB) *smtptest.CA {
	t.Helper()
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// pinned is a probe config aimed at one loopback server.
func pinned(t testing.TB, ca *smtptest.CA, addr string) probe.Config {
	t.Helper()
	target, err := probe.ParseTarget(addr)
	if err != nil {
		t.Fatal(err)
	}
	return probe.Config{
		Relay:      "test",
		MX:         []probe.Target{target},
		ServerName: testHost,
		RootCAs:    ca.Pool,
		HelloName:  "probe.test.example",
		Timeout:    5 * time.Second,
	}
}

// runOne runs cfg and returns its only result.
func runOne(t testing.TB, cfg probe.Config) probe.Result {
	t.Helper()
	rep, err := probe.Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("Run: %d results, want 1: %+v", len(rep.Results), rep.Results)
	}
	return rep.Results[0]
}

func TestProbeGmail(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	srv := smtptest.StartT(t, smtptest.Options{Behavior: smtptest.Gmail, CA: ca, Hostname: testHost})
	r := runOne(t, pinned(t, ca, srv.Addr()))
	if !r.OK || r.Stage != "" || r.Failure != "" {
		t.Fatalf("probe failed: %s %s %s\n%s", r.Stage, r.Failure, r.Error, strings.Join(r.Transcript, "\n"))
	}
	if r.TLS == nil || r.TLS.Version != "TLS 1.3" || !r.TLS.Verified || r.TLS.Group != "X25519MLKEM768" {
		t.Errorf("TLS = %+v, want verified TLS 1.3 with X25519MLKEM768", r.TLS)
	}
	if len(r.TLS.PeerCertificates) != 1 || r.TLS.PeerCertificates[0].SANs[0] != testHost ||
		r.TLS.PeerCertificates[0].DaysLeft < 1 || !strings.Contains(r.TLS.PeerCertificates[0].Issuer, "gmailtls test CA") {
		t.Errorf("peer certificates = %+v", r.TLS.PeerCertificates)
	}
	if r.SourceIP != "127.0.0.1" || r.IP != "127.0.0.1" || r.Port != srv.Port() || r.MX != "127.0.0.1" || r.ServerName != testHost {
		t.Errorf("addresses: source %q ip %q port %d mx %q servername %q", r.SourceIP, r.IP, r.Port, r.MX, r.ServerName)
	}
	if r.Timings.Total <= 0 || r.Timings.Handshake <= 0 {
		t.Errorf("timings = %+v", r.Timings)
	}
	want := []string{"C: EHLO probe.test.example", "C: STARTTLS", "S: 220 2.0.0 Ready to start TLS", "C: QUIT", "S: 221 2.0.0 closing connection"}
	for _, w := range want {
		if !contains(r.Transcript, w) {
			t.Errorf("transcript lacks %q:\n%s", w, strings.Join(r.Transcript, "\n"))
		}
	}
	if n := count(r.Transcript, "C: EHLO probe.test.example"); n != 2 {
		t.Errorf("EHLO sent %d times, want 2 (before and after TLS)", n)
	}
	checkNoMail(t, r)
	if err := srv.WaitFinished(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	// The server saw the same conversation and never a MAIL command.
	for _, l := range srv.Transcripts()[0] {
		if strings.HasPrefix(strings.ToUpper(l), "C: MAIL") {
			t.Errorf("the server received %q", l)
		}
	}
}

// row is one failure class produced by a real server behaviour.
type row struct {
	name     string
	behavior smtptest.Behavior
	tweak    func(*probe.Config)
	stage    probe.Stage
	failure  probe.Failure
	code     int
	hint     string // a further hint must contain this
	variant  string
}

func TestFailureClassesFromServerBehaviours(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	rows := []row{
		{name: "no STARTTLS", behavior: smtptest.NoSTARTTLS, stage: probe.StageEHLO, failure: probe.FailStartTLSNotOffered},
		{name: "ASA masking", behavior: smtptest.Masked, stage: probe.StageEHLO, failure: probe.FailStartTLSMasked,
			hint: "XXXXXXXA in the EHLO reply"},
		{name: "masked EHLO only", behavior: smtptest.MaskedEHLOOnly, stage: probe.StageEHLO, failure: probe.FailStartTLSMasked,
			hint: "Cisco ASA/PIX ESMTP inspection"},
		{name: "STARTTLS 454", behavior: smtptest.StartTLS454, stage: probe.StageStartTLS, failure: probe.FailStartTLSRejected, code: 454},
		{name: "STARTTLS 502", behavior: smtptest.StartTLS502, stage: probe.StageStartTLS, failure: probe.FailStartTLSMasked, code: 502,
			hint: "signature of SMTP inspection"},
		{name: "reset after ready", behavior: smtptest.ResetAfterReady, stage: probe.StageHandshake, failure: probe.FailTLSReset,
			hint: "the size of the ClientHello is not the cause"},
		{name: "hang after ready", behavior: smtptest.HangAfterReady, stage: probe.StageHandshake, failure: probe.FailTLSTimeout,
			tweak: func(c *probe.Config) { c.Timeouts.Handshake = 300 * time.Millisecond },
			hint:  "the size of the ClientHello is not the cause"},
		{name: "hang banner", behavior: smtptest.HangBanner, stage: probe.StageBanner, failure: probe.FailBannerTimeout,
			tweak: func(c *probe.Config) { c.Timeouts.Banner = 300 * time.Millisecond }},
		{name: "greeting 421", behavior: smtptest.Greet421, stage: probe.StageBanner, failure: probe.FailSMTPRejected, code: 421},
		{name: "EHLO 550", behavior: smtptest.EHLO550, stage: probe.StageEHLO, failure: probe.FailSMTPRejected, code: 550},
		{name: "TLS 1.0 only", behavior: smtptest.TLS10Only, stage: probe.StageHandshake, failure: probe.FailTLSProtocolVersion},
		{name: "no shared cipher", behavior: smtptest.NoSharedCipher, stage: probe.StageHandshake, failure: probe.FailTLSNoSharedCipher},
		{name: "expired", behavior: smtptest.ExpiredCert, stage: probe.StageVerify, failure: probe.FailCertExpired,
			hint: "the certificate expired on"},
		{name: "wrong name", behavior: smtptest.WrongNameCert, stage: probe.StageVerify, failure: probe.FailCertHostname,
			hint: "the certificate names other.test.example, not mx.test.example"},
		{name: "self-signed", behavior: smtptest.SelfSignedCert, stage: probe.StageVerify, failure: probe.FailCertUntrusted,
			hint: "TLS interception suspected"},
		{name: "interception CA", behavior: smtptest.UntrustedCA, stage: probe.StageVerify, failure: probe.FailCertUntrusted,
			hint: `TLS interception suspected: the certificate is issued by "CN=Corp TLS Inspection CA`},
		{name: "endless line", behavior: smtptest.EndlessLine, stage: probe.StageBanner, failure: probe.FailSMTPProtocol},
		{name: "endless reply", behavior: smtptest.EndlessReply, stage: probe.StageBanner, failure: probe.FailSMTPProtocol},
		{name: "garbage", behavior: smtptest.Garbage, stage: probe.StageBanner, failure: probe.FailSMTPProtocol},
		{name: "close after banner", behavior: smtptest.CloseAfterBanner, stage: probe.StageEHLO, failure: probe.FailSMTPProtocol},
		{name: "post-TLS 421", behavior: smtptest.PostTLS421, stage: probe.StagePostTLS, failure: probe.FailPostTLS, code: 421},
		{name: "drop large hello", behavior: smtptest.DropLargeHello, stage: probe.StageHandshake, failure: probe.FailTLSReset,
			hint:    "the handshake succeeds without the post-quantum key share: a middlebox on the path drops large ClientHellos",
			variant: "classic_kex"},
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.StartT(t, smtptest.Options{Behavior: tc.behavior, CA: ca, Hostname: testHost})
			cfg := pinned(t, ca, srv.Addr())
			if tc.tweak != nil {
				tc.tweak(&cfg)
			}
			checkRow(t, tc, runOne(t, cfg))
		})
	}
}

// checkRow checks a result against its table row.
func checkRow(t *testing.T, tc row, r probe.Result) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("error: %s\nhints: %q\ntranscript:\n%s", r.Error, r.Hints, strings.Join(r.Transcript, "\n"))
		}
	}()
	if r.OK || r.Stage != tc.stage || r.Failure != tc.failure || r.SMTPCode != tc.code {
		t.Errorf("got ok=%v stage=%q failure=%q smtp_code=%d; want stage=%q failure=%q smtp_code=%d",
			r.OK, r.Stage, r.Failure, r.SMTPCode, tc.stage, tc.failure, tc.code)
	}
	if tc.code != 0 && r.SMTPText == "" {
		t.Errorf("smtp_text is empty")
	}
	if len(r.Hints) == 0 || r.Hints[0] != probe.Hint(tc.failure) || r.Hints[0] == "" {
		t.Errorf("first hint = %q, want the class hint %q", r.Hints, probe.Hint(tc.failure))
	}
	if tc.hint != "" && !containsSub(r.Hints, tc.hint) {
		t.Errorf("no hint contains %q: %q", tc.hint, r.Hints)
	}
	if r.Error == "" {
		t.Errorf("error text is empty")
	}
	gotVariant := ""
	if r.TLS != nil {
		gotVariant = r.TLS.Variant
	}
	if gotVariant != tc.variant {
		t.Errorf("TLS variant = %q, want %q", gotVariant, tc.variant)
	}
	if tc.stage == probe.StageVerify && (r.TLS == nil || r.TLS.Verified || len(r.TLS.PeerCertificates) == 0) {
		t.Errorf("a verify failure should record the unverified chain: %+v", r.TLS)
	}
	checkNoMail(t, r)
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("marshal: %v", err)
	}
}

// TestFailureClassesFromNetwork covers the classes that no SMTP server
// behaviour makes: DNS, connect and TLS alert failures, each from a real
// loopback socket or a resolver that answers like a real one.
func TestFailureClassesFromNetwork(t *testing.T) {
	t.Parallel()
	ca := newCA(t)

	t.Run("dns_error", func(t *testing.T) {
		t.Parallel()
		cfg := probe.Config{Domain: "gmail.test", Resolver: &fakeResolver{}, HelloName: "probe.test.example"}
		checkRow(t, row{stage: probe.StageDNS, failure: probe.FailDNSError, hint: "NXDOMAIN"}, runOne(t, cfg))
	})
	t.Run("connect_refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now: the kernel answers RST
		checkRow(t, row{stage: probe.StageConnect, failure: probe.FailConnectRefused}, runOne(t, pinned(t, ca, addr)))
	})
	t.Run("connect_timeout", func(t *testing.T) {
		t.Parallel()
		addr := fullListener(t)
		cfg := pinned(t, ca, addr)
		cfg.Timeouts.Connect = 300 * time.Millisecond
		checkRow(t, row{stage: probe.StageConnect, failure: probe.FailConnectTimeout}, runOne(t, cfg))
	})
	t.Run("connect_unreachable", func(t *testing.T) {
		t.Parallel()
		// 192.0.2.1 (TEST-NET-1) is not an address of this host: binding
		// to it fails before any packet is sent.
		srv := smtptest.StartT(t, smtptest.Options{CA: ca, Hostname: testHost})
		cfg := pinned(t, ca, srv.Addr())
		cfg.Sources = []netip.Addr{netip.MustParseAddr("192.0.2.1")}
		checkRow(t, row{stage: probe.StageConnect, failure: probe.FailConnectUnreachable,
			hint: "not configured on this host"}, runOne(t, cfg))
	})
	t.Run("tls_alert", func(t *testing.T) {
		t.Parallel()
		// A fatal internal_error alert in answer to the ClientHello.
		addr := rawSTARTTLS(t, func(c net.Conn) {
			readSome(c)
			c.Write([]byte{21, 3, 3, 0, 2, 2, 80})
		})
		checkRow(t, row{stage: probe.StageHandshake, failure: probe.FailTLSAlert, hint: "internal_error"},
			runOne(t, pinned(t, ca, addr)))
	})
	t.Run("plain text instead of TLS", func(t *testing.T) {
		t.Parallel()
		addr := rawSTARTTLS(t, func(c net.Conn) {
			readSome(c)
			c.Write([]byte("421 4.4.2 inspection engine busy\r\n"))
		})
		checkRow(t, row{stage: probe.StageHandshake, failure: probe.FailSMTPProtocol, hint: "421 4.4.2"},
			runOne(t, pinned(t, ca, addr)))
	})
}

// fullListener returns the address of a listening socket whose accept
// queue is full and never drained: the kernel drops further SYNs, exactly
// what a filtered port 25 looks like to the client.
func fullListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*syscall.SockaddrInet4).Port)).String()
	// Fill the accept queue (a backlog of 0 holds one connection).
	for range 2 {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	return addr
}

// rawSTARTTLS serves a minimal SMTP prelude up to "220 Ready to start
// TLS", then hands the connection to afterReady.
func rawSTARTTLS(t *testing.T, afterReady func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				c.Write([]byte("220 raw.test.example ESMTP\r\n"))
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); verb {
					case "EHLO":
						c.Write([]byte("250-raw.test.example\r\n250 STARTTLS\r\n"))
					case "STARTTLS":
						c.Write([]byte("220 2.0.0 Ready to start TLS\r\n"))
						afterReady(c)
						return
					default:
						c.Write([]byte("221 2.0.0 bye\r\n"))
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

func readSome(c net.Conn) {
	buf := make([]byte, 4096)
	c.Read(buf)
}

// fakeResolver answers from maps, like a DNS server would: unknown names
// are NXDOMAIN.
type fakeResolver struct {
	mx    map[string][]*net.MX
	addrs map[string][]net.IPAddr
}

func (f *fakeResolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if mx, ok := f.mx[name]; ok {
		return mx, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	if a, ok := f.addrs[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func checkNoMail(t *testing.T, r probe.Result) {
	t.Helper()
	for _, l := range r.Transcript {
		if strings.HasPrefix(strings.ToUpper(l), probe.FromClient+"MAIL") {
			t.Errorf("the probe sent %q", l)
		}
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func containsSub(list []string, sub string) bool {
	for _, l := range list {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func count(list []string, s string) int {
	n := 0
	for _, l := range list {
		if l == s {
			n++
		}
	}
	return n
}
