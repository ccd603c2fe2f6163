// Package smtptest is a scripted SMTP/STARTTLS server on loopback, with a
// certificate authority made in memory, for the tests, benchmarks and labs
// of gmailtls.
//
// A Server listens on a loopback address and serves every connection in
// its own goroutine according to a Behavior. The normal behaviour, Gmail,
// plays the conversation a probe has with Gmail's port-25 servers:
//
//  1. greeting "220 mx.google.com ESMTP ... - gsmtp";
//  2. EHLO, answered with the extensions Gmail lists, STARTTLS among them;
//  3. STARTTLS, answered "220 2.0.0 Ready to start TLS";
//  4. a TLS handshake with a leaf the CA issued for Options.Hostname;
//  5. EHLO again over TLS, then QUIT.
//
// Every other behaviour breaks one of these steps the way a real network,
// middlebox or server does, so that each failure class of the probe
// contract has a server that produces it. The server never panics: its own
// errors go to the Errors channel. Close ends every connection, hanging
// ones included, and waits for their goroutines.
package smtptest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Defaults of Options.
const (
	// DefaultHostname is the DNS name of the server's certificate.
	DefaultHostname = "mx.test.example"
	// DefaultAddr is the listen address.
	DefaultAddr = "127.0.0.1:0"
	// DefaultLargeHelloBytes is the ClientHello record size above which
	// DropLargeHello resets the connection. Go's default ClientHello with an
	// X25519MLKEM768 key share is about 1.5 KB; a classic X25519-only one
	// is about 300 bytes.
	DefaultLargeHelloBytes = 1000
	// DefaultIdleTimeout bounds how long a connection may stay without any
	// byte from the client, so that a forgotten client cannot keep a
	// goroutine forever.
	DefaultIdleTimeout = 2 * time.Minute
	// EndlessCap bounds what the endless behaviours write on one connection.
	EndlessCap = 64 << 20
)

// maxLineBytes bounds one command line from a client, CRLF included.
const maxLineBytes = 4096

// maxSkipBytes bounds how much of an over-long command line the server
// skips before it gives up on the connection.
const maxSkipBytes = 1 << 20

// maxCommands bounds the commands of one session.
const maxCommands = 1000

// Options configures a Server. The zero value serves Gmail on
// 127.0.0.1 with a fresh CA.
type Options struct {
	// Behavior is the behaviour of new connections (default Gmail).
	Behavior Behavior
	// CA issues the server certificates; when nil, NewCA is called and
	// the result is exposed by Server.CA.
	CA *CA
	// Hostname is the DNS name of the certificate (default
	// "mx.test.example").
	Hostname string
	// Addr is the listen address (default "127.0.0.1:0"; "[::1]:0" for
	// IPv6; any 127.0.0.0/8 address works on Linux).
	Addr string
	// GreetingDelay is waited before the greeting (for fan-out
	// benchmarks).
	GreetingDelay time.Duration
	// LargeHelloBytes is the threshold of DropLargeHello, in bytes of the
	// first TLS record, header included (default 1000).
	LargeHelloBytes int
	// IdleTimeout ends a connection after that long without a byte from
	// the client (default 2 minutes).
	IdleTimeout time.Duration
	// Logger receives debug logs of every connection (default: discard).
	Logger *slog.Logger
	// Remark, when set, ends the first line of every reply (the
	// greeting, EHLO, STARTTLS, errors) after a space: text a remote
	// server chose, such as Slack markup that must never become live
	// ("<@U0ADMIN01> <!channel>").
	Remark string
}

// certSet holds the certificates the TLS behaviours serve.
type certSet struct {
	good, expired, wrongName, selfSigned, untrusted tls.Certificate
}

// Server is a running scripted SMTP server. Its methods are safe for
// concurrent use.
type Server struct {
	ln       net.Listener
	ca       *CA
	certs    certSet
	hostname string
	delay    time.Duration
	large    int
	idle     time.Duration
	log      *slog.Logger
	remark   string
	errMu    sync.Mutex // guards sends on errs against its close
	errs     chan error
	errsDone bool
	done     chan struct{}
	wg       sync.WaitGroup
	closing  sync.Once

	tlsMu      sync.Mutex
	tlsConfigs map[Behavior]*tls.Config // by behaviour, made on first use

	mu          sync.Mutex
	behavior    Behavior
	conns       map[net.Conn]struct{}
	accepted    int
	finished    int
	transcripts [][]string
	changed     chan struct{} // closed and replaced when a connection finishes
}

// Start listens on opts.Addr and serves each connection in its own
// goroutine until Close.
func Start(opts Options) (*Server, error) {
	if opts.Behavior == "" {
		opts.Behavior = Gmail
	}
	if !opts.Behavior.Valid() {
		return nil, fmt.Errorf("smtptest: unknown behaviour %q (known: %s)", opts.Behavior, joinBehaviors())
	}
	if opts.Hostname == "" {
		opts.Hostname = DefaultHostname
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.LargeHelloBytes <= 0 {
		opts.LargeHelloBytes = DefaultLargeHelloBytes
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CA == nil {
		ca, err := NewCA()
		if err != nil {
			return nil, err
		}
		opts.CA = ca
	}
	certs, err := makeCerts(opts.CA, opts.Hostname)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("smtptest: listen on %s: %w", opts.Addr, err)
	}
	s := &Server{
		ln:       ln,
		ca:       opts.CA,
		certs:    certs,
		hostname: opts.Hostname,
		delay:    opts.GreetingDelay,
		large:    opts.LargeHelloBytes,
		idle:     opts.IdleTimeout,
		remark:   opts.Remark,
		log:      opts.Logger.With("addr", ln.Addr().String()),
		errs:     make(chan error, 64),
		done:     make(chan struct{}),
		behavior: opts.Behavior,
		conns:    make(map[net.Conn]struct{}),
		changed:  make(chan struct{}),

		tlsConfigs: make(map[Behavior]*tls.Config),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// StartT starts a server for a test or benchmark, stops it in tb.Cleanup
// and fails tb when it cannot start.
func StartT(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := Start(opts)
	if err != nil {
		tb.Fatalf("start SMTP test server: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close SMTP test server: %v", err)
		}
	})
	return s
}

// makeCerts issues the leaves of every TLS behaviour.
func makeCerts(ca *CA, hostname string) (certSet, error) {
	now := time.Now()
	var cs certSet
	var err error
	if cs.good, err = ca.Issue([]string{hostname}, now.Add(-time.Hour), now.AddDate(1, 0, 0)); err != nil {
		return cs, err
	}
	if cs.expired, err = ca.Issue([]string{hostname}, now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0)); err != nil {
		return cs, err
	}
	if cs.wrongName, err = ca.Issue([]string{"other.test.example"}, now.Add(-time.Hour), now.AddDate(1, 0, 0)); err != nil {
		return cs, err
	}
	if cs.selfSigned, err = selfSigned([]string{hostname}, now.Add(-time.Hour), now.AddDate(1, 0, 0)); err != nil {
		return cs, err
	}
	corp, err := newNamedCA("Corp TLS Inspection CA", now.Add(-time.Hour), now.AddDate(5, 0, 0))
	if err != nil {
		return cs, err
	}
	if cs.untrusted, err = corp.Issue([]string{hostname}, now.Add(-time.Hour), now.AddDate(1, 0, 0)); err != nil {
		return cs, err
	}
	// An intercepting middlebox sends its CA along with the forged leaf.
	cs.untrusted.Certificate = append(cs.untrusted.Certificate, corp.Cert.Raw)
	return cs, nil
}

// acceptLoop accepts connections until the listener is closed.
func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.reportErr(fmt.Errorf("smtptest: accept: %w", err))
			// Back off a little so that a persistent error (out of file
			// descriptors) does not spin.
			t := time.NewTimer(10 * time.Millisecond)
			select {
			case <-s.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		s.mu.Lock()
		select {
		case <-s.done:
			s.mu.Unlock()
			_ = c.Close()
			return
		default:
		}
		s.accepted++
		id := s.accepted
		b := s.behavior
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c, id, b)
	}
}

// serve runs one session and records its transcript.
func (s *Server) serve(c net.Conn, id int, b Behavior) {
	sess := &session{
		s:        s,
		id:       id,
		behavior: b,
		raw:      c,
		log:      s.log.With("conn", id, "behavior", string(b), "remote", c.RemoteAddr().String()),
	}
	defer func() {
		if r := recover(); r != nil {
			s.reportErr(fmt.Errorf("smtptest: connection %d (%s): panic: %v", id, b, r))
		}
		_ = c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.finished++
		s.transcripts = append(s.transcripts, sess.lines)
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
		s.wg.Done()
	}()
	sess.run()
}

// reportErr sends err to the Errors channel, dropping it when the channel
// is full.
func (s *Server) reportErr(err error) {
	s.log.Warn("SMTP test server error", "err", err)
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.errsDone {
		return
	}
	select {
	case s.errs <- err:
	default:
	}
}

// Addr returns the listen address, "127.0.0.1:PORT" or "[::1]:PORT".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Host returns the IP address the server listens on, without brackets.
func (s *Server) Host() string {
	host, _, _ := net.SplitHostPort(s.Addr())
	return host
}

// Port returns the TCP port the server listens on.
func (s *Server) Port() int {
	_, port, _ := net.SplitHostPort(s.Addr())
	n, _ := strconv.Atoi(port)
	return n
}

// Hostname returns the DNS name of the server's certificate.
func (s *Server) Hostname() string { return s.hostname }

// CA returns the CA that issued the server's certificates.
func (s *Server) CA() *CA { return s.ca }

// Behavior returns the behaviour new connections get.
func (s *Server) Behavior() Behavior {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.behavior
}

// SetBehavior switches the behaviour of connections accepted from now on;
// live connections keep theirs. An unknown behaviour is ignored and
// reported on Errors.
func (s *Server) SetBehavior(b Behavior) {
	if !b.Valid() {
		s.reportErr(fmt.Errorf("smtptest: SetBehavior: unknown behaviour %q", b))
		return
	}
	s.mu.Lock()
	s.behavior = b
	s.mu.Unlock()
}

// Transcripts returns, per finished connection in the order they finished,
// the SMTP lines the server saw ("C: ...") and sent ("S: ..."), before and
// after STARTTLS. TLS bytes are never recorded.
func (s *Server) Transcripts() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]string, len(s.transcripts))
	for i, t := range s.transcripts {
		out[i] = append([]string(nil), t...)
	}
	return out
}

// Connections returns the number of connections accepted so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// WaitFinished waits until at least n connections have finished (their
// transcripts are then in Transcripts), or ctx ends.
func (s *Server) WaitFinished(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		finished, changed := s.finished, s.changed
		s.mu.Unlock()
		if finished >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("smtptest: %d of %d connections finished: %w", finished, n, ctx.Err())
		}
	}
}

// Errors returns the channel of server-side errors (accept failures,
// certificate problems, recovered panics). It is buffered; errors are
// dropped when it is full. It is closed by Close.
func (s *Server) Errors() <-chan error { return s.errs }

// Close stops listening, closes every live connection and waits for all
// goroutines of the server to end. It is safe to call more than once.
func (s *Server) Close() error {
	var err error
	s.closing.Do(func() {
		s.mu.Lock()
		close(s.done)
		s.mu.Unlock()
		if cerr := s.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("smtptest: close listener: %w", cerr)
		}
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		s.errMu.Lock()
		s.errsDone = true
		close(s.errs)
		s.errMu.Unlock()
	})
	return err
}
