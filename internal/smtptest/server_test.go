package smtptest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// client is a minimal SMTP client for testing the server, tailored to it.
type client struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
}

func dial(t *testing.T, s *Server) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr(), err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { _ = conn.Close() })
	return &client{t: t, conn: conn, tp: textproto.NewConn(conn)}
}

// expect reads one reply and fails unless its code is code.
func (c *client) expect(code int) string {
	c.t.Helper()
	got, msg, err := c.tp.ReadResponse(code)
	if err != nil {
		c.t.Fatalf("want a %d reply, got %d %q: %v", code, got, msg, err)
	}
	return msg
}

// cmd sends a command and expects a reply with code.
func (c *client) cmd(line string, code int) string {
	c.t.Helper()
	if err := c.tp.PrintfLine("%s", line); err != nil {
		c.t.Fatalf("send %.40q: %v", line, err)
	}
	return c.expect(code)
}

// startTLS runs STARTTLS and a TLS handshake with cfg and returns the
// handshake error.
func (c *client) startTLS(cfg *tls.Config) (*tls.Conn, error) {
	c.t.Helper()
	c.cmd("STARTTLS", 220)
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	c.tp = textproto.NewConn(tc)
	return tc, nil
}

func verifying(s *Server) *tls.Config {
	return &tls.Config{RootCAs: s.CA().Pool, ServerName: s.Hostname()}
}

func waitFinished(t *testing.T, s *Server, n int) [][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitFinished(ctx, n); err != nil {
		t.Fatal(err)
	}
	return s.Transcripts()
}

func noServerErrors(t *testing.T, s *Server) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for err := range s.Errors() {
		t.Errorf("server error: %v", err)
	}
}

func TestGmailSession(t *testing.T) {
	s := StartT(t, Options{})
	c := dial(t, s)
	greeting := c.expect(220)
	if !strings.HasPrefix(greeting, "mx.google.com ESMTP ") || !strings.HasSuffix(greeting, " - gsmtp") {
		t.Errorf("greeting = %q, want Gmail's", greeting)
	}
	ehlo := strings.Split(c.cmd("EHLO probe.test.example", 250), "\n")
	wantExt := []string{"SIZE 157286400", "8BITMIME", "STARTTLS", "ENHANCEDSTATUSCODES", "PIPELINING", "CHUNKING", "SMTPUTF8"}
	if !slices.Equal(ehlo[1:], wantExt) {
		t.Errorf("EHLO extensions = %q, want %q", ehlo[1:], wantExt)
	}
	if got := c.cmd("STARTTLS", 220); got != "2.0.0 Ready to start TLS" {
		t.Errorf("STARTTLS reply = %q", got)
	}
	tc := tls.Client(c.conn, verifying(s))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	st := tc.ConnectionState()
	if st.Version != tls.VersionTLS13 || len(st.VerifiedChains) == 0 {
		t.Errorf("TLS version %s, verified chains %d; want TLS 1.3, verified", tls.VersionName(st.Version), len(st.VerifiedChains))
	}
	c.tp = textproto.NewConn(tc)
	ehlo2 := c.cmd("EHLO probe.test.example", 250)
	if strings.Contains(ehlo2, "STARTTLS") || strings.Contains(ehlo2, "AUTH") {
		t.Errorf("EHLO over TLS = %q, want neither STARTTLS nor AUTH", ehlo2)
	}
	c.cmd("NOOP", 250)
	c.cmd("MAIL FROM:<probe@test.example>", 503)
	c.cmd("HELP", 502)
	if got := c.cmd("QUIT", 221); got != "2.0.0 closing connection" {
		t.Errorf("QUIT reply = %q", got)
	}
	tr := waitFinished(t, s, 1)
	if len(tr) != 1 {
		t.Fatalf("transcripts = %d, want 1", len(tr))
	}
	for _, want := range []string{"C: EHLO probe.test.example", "S: 220 2.0.0 Ready to start TLS", "C: MAIL FROM:<probe@test.example>", "S: 221 2.0.0 closing connection"} {
		if !slices.Contains(tr[0], want) {
			t.Errorf("transcript lacks %q:\n%s", want, strings.Join(tr[0], "\n"))
		}
	}
	if s.Connections() != 1 {
		t.Errorf("Connections() = %d, want 1", s.Connections())
	}
	noServerErrors(t, s)
}

func TestMasked(t *testing.T) {
	s := StartT(t, Options{Behavior: Masked})
	c := dial(t, s)
	if g := c.expect(220); strings.Trim(g, "*") != "" || g == "" {
		t.Errorf("greeting = %q, want only asterisks", g)
	}
	ehlo := c.cmd("EHLO probe.test.example", 250)
	if !strings.Contains(ehlo, "\nXXXXXXXA\n") || strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("EHLO = %q, want XXXXXXXA and no STARTTLS", ehlo)
	}
	c.cmd("STARTTLS", 500)
	c.cmd("QUIT", 221)
}

// TestPlainBehaviors checks the behaviours that fail before or right
// after TLS.
func TestPlainBehaviors(t *testing.T) {
	for _, tc := range []struct {
		b      Behavior
		script func(t *testing.T, s *Server, c *client)
	}{
		{MaskedEHLOOnly, func(t *testing.T, s *Server, c *client) {
			c.expect(220)
			if e := c.cmd("EHLO x", 250); !strings.Contains(e, "XXXXXXXA") || strings.Contains(e, "STARTTLS") {
				t.Errorf("EHLO = %q", e)
			}
			c.cmd("STARTTLS", 500)
		}},
		{NoSTARTTLS, func(t *testing.T, s *Server, c *client) {
			c.expect(220)
			if e := c.cmd("EHLO x", 250); strings.Contains(e, "STARTTLS") || strings.Contains(e, "XXXXXXXA") {
				t.Errorf("EHLO = %q", e)
			}
			c.cmd("STARTTLS", 502)
		}},
		{StartTLS454, func(t *testing.T, s *Server, c *client) {
			c.expect(220)
			c.cmd("EHLO x", 250)
			c.cmd("STARTTLS", 454)
			c.cmd("QUIT", 221)
		}},
		{StartTLS502, func(t *testing.T, s *Server, c *client) {
			c.expect(220)
			c.cmd("EHLO x", 250)
			c.cmd("STARTTLS", 502)
		}},
		{EHLO550, func(t *testing.T, s *Server, c *client) {
			c.expect(220)
			if m := c.cmd("EHLO x", 550); m != "5.7.1 Client host rejected" {
				t.Errorf("EHLO reply = %q", m)
			}
			c.cmd("QUIT", 221)
		}},
		{GmailRateLimited, func(t *testing.T, s *Server, c *client) {
			code, msg, err := c.tp.ReadResponse(421)
			if err != nil || code != 421 || !strings.Contains(msg, "unusual rate of\n4.7.28 unsolicited mail") || !strings.HasSuffix(msg, " - gsmtp") {
				t.Errorf("greeting %d %q, %v; want Gmail's multi-line 421 4.7.28", code, msg, err)
			}
			if _, err := c.tp.ReadLine(); !errors.Is(err, io.EOF) {
				t.Errorf("after 421: %v, want EOF", err)
			}
		}},
		{EHLO421, func(t *testing.T, s *Server, c *client) {
			c.expect(220)
			if m := c.cmd("EHLO x", 421); !strings.HasPrefix(m, "4.7.0 Try again later, closing connection. (EHLO) ") || !strings.HasSuffix(m, " - gsmtp") {
				t.Errorf("EHLO reply = %q", m)
			}
			if _, err := c.tp.ReadLine(); !errors.Is(err, io.EOF) {
				t.Errorf("after 421: %v, want EOF", err)
			}
		}},
		{Greet421, func(t *testing.T, s *Server, c *client) {
			c.expect(421)
			if _, err := c.tp.ReadLine(); !errors.Is(err, io.EOF) {
				t.Errorf("after 421: %v, want EOF", err)
			}
		}},
		{Garbage, func(t *testing.T, s *Server, c *client) {
			line, err := c.tp.ReadLine()
			if err != nil || line != "HTTP/1.1 400 Bad Request" {
				t.Errorf("greeting %q, %v", line, err)
			}
		}},
		{CloseAfterBanner, func(t *testing.T, s *Server, c *client) {
			c.expect(220)
			_ = c.tp.PrintfLine("EHLO x")
			if _, err := c.tp.ReadLine(); err == nil {
				t.Error("EHLO answered, want the connection closed")
			}
		}},
		{PostTLS421, func(t *testing.T, s *Server, c *client) {
			c.expect(220)
			c.cmd("EHLO x", 250)
			if _, err := c.startTLS(verifying(s)); err != nil {
				t.Fatal(err)
			}
			c.cmd("EHLO x", 421)
		}},
	} {
		t.Run(string(tc.b), func(t *testing.T) {
			s := StartT(t, Options{Behavior: tc.b})
			c := dial(t, s)
			tc.script(t, s, c)
			_ = c.conn.Close()
			waitFinished(t, s, 1)
			noServerErrors(t, s)
		})
	}
}

// handshakeErr runs a session up to the TLS handshake with cfg and
// returns the handshake error.
func handshakeErr(t *testing.T, s *Server, cfg *tls.Config) error {
	t.Helper()
	c := dial(t, s)
	c.expect(220)
	c.cmd("EHLO probe.test.example", 250)
	tc, err := c.startTLS(cfg)
	if err == nil {
		c.cmd("EHLO probe.test.example", 250)
		c.cmd("QUIT", 221)
		_ = tc.Close()
	}
	return err
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
}

func TestResetAfterReady(t *testing.T) {
	s := StartT(t, Options{Behavior: ResetAfterReady})
	err := handshakeErr(t, s, verifying(s))
	if !isReset(err) {
		t.Fatalf("handshake error = %v, want a connection reset", err)
	}
	t.Logf("client saw: %v", err)
	noServerErrors(t, s)
}

func TestDropLargeHello(t *testing.T) {
	s := StartT(t, Options{Behavior: DropLargeHello})
	if err := handshakeErr(t, s, verifying(s)); !isReset(err) {
		t.Errorf("default ClientHello: handshake error = %v, want a connection reset", err)
	}
	small := verifying(s)
	small.CurvePreferences = []tls.CurveID{tls.X25519}
	if err := handshakeErr(t, s, small); err != nil {
		t.Errorf("X25519-only ClientHello: %v, want success", err)
	}
	noServerErrors(t, s)
}

// TestClientHelloSizes pins the assumption behind DefaultLargeHelloBytes.
func TestClientHelloSizes(t *testing.T) {
	size := func(cfg *tls.Config) int {
		cc, sc := net.Pipe()
		defer sc.Close()
		go func() {
			_ = tls.Client(cc, cfg).Handshake()
			_ = cc.Close()
		}()
		rec, err := readRecord(sc)
		if err != nil {
			t.Fatal(err)
		}
		return len(rec)
	}
	def := size(&tls.Config{ServerName: DefaultHostname})
	small := size(&tls.Config{ServerName: DefaultHostname, CurvePreferences: []tls.CurveID{tls.X25519}})
	t.Logf("ClientHello record: default %d bytes, X25519 only %d bytes", def, small)
	if def <= DefaultLargeHelloBytes || small > DefaultLargeHelloBytes {
		t.Errorf("threshold %d does not split default (%d) and X25519-only (%d) hellos", DefaultLargeHelloBytes, def, small)
	}
}

func TestTLSAlerts(t *testing.T) {
	for _, tc := range []struct {
		b    Behavior
		want string
	}{
		{TLS10Only, "protocol version"},
		{NoSharedCipher, "handshake failure"},
	} {
		t.Run(string(tc.b), func(t *testing.T) {
			s := StartT(t, Options{Behavior: tc.b})
			err := handshakeErr(t, s, verifying(s))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("handshake error = %v, want %q", err, tc.want)
			}
			noServerErrors(t, s)
		})
	}
}

func TestCertBehaviors(t *testing.T) {
	for _, tc := range []struct {
		b     Behavior
		check func(err error) bool
	}{
		{ExpiredCert, func(err error) bool {
			var e x509.CertificateInvalidError
			return errors.As(err, &e) && e.Reason == x509.Expired
		}},
		{WrongNameCert, func(err error) bool {
			var e x509.HostnameError
			return errors.As(err, &e) && slices.Equal(e.Certificate.DNSNames, []string{"other.test.example"})
		}},
		{SelfSignedCert, func(err error) bool {
			var e x509.UnknownAuthorityError
			return errors.As(err, &e)
		}},
		{UntrustedCA, func(err error) bool {
			var e x509.UnknownAuthorityError
			return errors.As(err, &e) && e.Cert.Issuer.CommonName == "Corp TLS Inspection CA"
		}},
	} {
		t.Run(string(tc.b), func(t *testing.T) {
			s := StartT(t, Options{Behavior: tc.b})
			err := handshakeErr(t, s, verifying(s))
			if !tc.check(err) {
				t.Fatalf("handshake error = %v (%T)", err, err)
			}
			noServerErrors(t, s)
		})
	}
}

func TestSetBehavior(t *testing.T) {
	s := StartT(t, Options{})
	for _, b := range []Behavior{Gmail, StartTLS454, Gmail} {
		s.SetBehavior(b)
		c := dial(t, s)
		c.expect(220)
		c.cmd("EHLO x", 250)
		want := 220
		if b == StartTLS454 {
			want = 454
		}
		c.cmd("STARTTLS", want)
		_ = c.conn.Close()
	}
	if s.Behavior() != Gmail || s.Connections() != 3 {
		t.Errorf("behaviour %s, %d connections", s.Behavior(), s.Connections())
	}
	s.SetBehavior("nonsense")
	if err := <-s.Errors(); err == nil || !strings.Contains(err.Error(), "nonsense") {
		t.Errorf("error for an unknown behaviour = %v", err)
	}
}

func TestEndless(t *testing.T) {
	for _, b := range []Behavior{EndlessLine, EndlessReply} {
		t.Run(string(b), func(t *testing.T) {
			s := StartT(t, Options{Behavior: b})
			c := dial(t, s)
			buf := make([]byte, 1<<20)
			if _, err := io.ReadFull(c.conn, buf); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(buf), "220-") {
				t.Errorf("starts %q", buf[:16])
			}
			if b == EndlessLine && strings.Contains(string(buf), "\n") {
				t.Error("endless line has a line end")
			}
			_ = c.conn.Close()
			tr := waitFinished(t, s, 1)
			if len(tr[0]) != 1 || !strings.Contains(tr[0][0], "bytes written") {
				t.Errorf("transcript = %q", tr[0])
			}
			noServerErrors(t, s)
		})
	}
}

// TestHangEndsWithClient checks that the silent behaviours end their
// goroutine when the client goes away.
func TestHangEndsWithClient(t *testing.T) {
	s := StartT(t, Options{Behavior: HangBanner})
	c := dial(t, s)
	_ = c.conn.Close()
	s.SetBehavior(HangAfterReady)
	c = dial(t, s)
	c.expect(220)
	c.cmd("EHLO x", 250)
	c.cmd("STARTTLS", 220)
	_, _ = c.conn.Write([]byte{22, 3, 1, 0, 10})
	_ = c.conn.Close()
	waitFinished(t, s, 2)
	noServerErrors(t, s)
}

func TestClosePrompt(t *testing.T) {
	s := StartT(t, Options{Behavior: HangBanner, GreetingDelay: 0})
	var conns []*client
	for _, b := range []Behavior{HangBanner, HangAfterReady, EndlessLine, Gmail} {
		s.SetBehavior(b)
		c := dial(t, s)
		conns = append(conns, c)
		switch b {
		case HangAfterReady:
			c.expect(220)
			c.cmd("EHLO x", 250)
			c.cmd("STARTTLS", 220)
		case Gmail:
			c.expect(220)
		}
	}
	// A connection still waiting for its greeting.
	s2 := StartT(t, Options{GreetingDelay: time.Hour})
	dial(t, s2)

	done := make(chan error, 2)
	go func() { done <- s.Close() }()
	go func() { done <- s2.Close() }()
	timeout := time.After(5 * time.Second)
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-timeout:
			t.Fatal("Close did not return within 5 s with hanging connections open")
		}
	}
	if _, err := io.ReadAll(conns[0].conn); err != nil && !isReset(err) {
		t.Errorf("hanging client after Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		t.Error("server still accepts after Close")
	}
}

func TestGreetingDelay(t *testing.T) {
	s := StartT(t, Options{GreetingDelay: 50 * time.Millisecond})
	start := time.Now()
	c := dial(t, s)
	c.expect(220)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("greeting after %v, want at least 50ms", d)
	}
}

func TestLongLine(t *testing.T) {
	s := StartT(t, Options{})
	c := dial(t, s)
	c.expect(220)
	c.cmd("EHLO "+strings.Repeat("a", 2*maxLineBytes), 500)
	c.cmd("", 555)
	c.cmd("QUIT", 221)
}

func TestIPv6(t *testing.T) {
	s, err := Start(Options{Addr: "[::1]:0"})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if s.Host() != "::1" || s.Port() == 0 || !strings.HasPrefix(s.Addr(), "[::1]:") {
		t.Errorf("Host %q Port %d Addr %q", s.Host(), s.Port(), s.Addr())
	}
	if err := handshakeErr(t, s, verifying(s)); err != nil {
		t.Fatal(err)
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(Options{Behavior: "bogus"}); err == nil {
		t.Error("Start with an unknown behaviour succeeded")
	}
	if _, err := Start(Options{Addr: "127.0.0.1:-1"}); err == nil {
		t.Error("Start on a bad address succeeded")
	}
}

func TestBehaviors(t *testing.T) {
	all := Behaviors()
	if len(all) != 25 {
		t.Errorf("%d behaviours, want 25", len(all))
	}
	for _, b := range all {
		if b.Description() == "" {
			t.Errorf("%s has no description", b)
		}
		if got, err := ParseBehavior(strings.ToUpper(strings.ReplaceAll(string(b), "_", "-"))); err != nil || got != b {
			t.Errorf("ParseBehavior(%s) = %s, %v", b, got, err)
		}
	}
}

func TestCAWritePEM(t *testing.T) {
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.Subject.CommonName != "gmailtls test CA" || !ca.Cert.IsCA {
		t.Errorf("CA subject %q, IsCA %v", ca.Cert.Subject.CommonName, ca.Cert.IsCA)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := ca.WritePEM(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatal("written PEM does not parse")
	}
	now := time.Now()
	leaf, err := ca.Issue([]string{"mx.test.example", "127.0.0.1"}, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mx.test.example", "127.0.0.1"} {
		if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("verify leaf for %s: %v", name, err)
		}
	}
}

// TestOpenSSL checks that openssl s_client completes a verified STARTTLS
// session with the server.
func TestOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	s := StartT(t, Options{})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := s.CA().WritePEM(caFile); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-starttls", "smtp", "-connect", s.Addr(),
		"-CAfile", caFile, "-verify_return_error", "-brief",
		"-servername", s.Hostname(), "-verify_hostname", s.Hostname())
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl s_client: %v\n%s", err, out)
	}
	for _, want := range []string{"Verification: OK", "Protocol version: TLSv1.3"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("openssl output lacks %q:\n%s", want, out)
		}
	}
	tr := waitFinished(t, s, 1)
	if !slices.Contains(tr[0], "S: 220 2.0.0 Ready to start TLS") {
		t.Errorf("transcript: %q", tr[0])
	}
	noServerErrors(t, s)
}
