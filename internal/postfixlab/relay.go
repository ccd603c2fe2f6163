package postfixlab

import (
	"context"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// DefaultRelayDomains are the domains a relay routes to its failing lab
// MX: Gmail's two and a Google-hosted customer domain.
var DefaultRelayDomains = []string{"gmail.com", "googlemail.com", "workspace-customer.test"}

// Log line fragments a relay's mail log holds once its messages are
// deferred (Postfix 3.7's wording).
const (
	// LogSSLConnectReset is the smtp client's line for the reset
	// handshake: "SSL_connect error to 127.0.0.1[127.0.0.1]:PORT:
	// Connection reset by peer".
	LogSSLConnectReset = "SSL_connect error to "
	// LogDeferredTLS is the delivery status of each message.
	LogDeferredTLS = "status=deferred (Cannot start TLS: handshake failure)"
)

// RelayOptions configures a relay. The zero value routes
// DefaultRelayDomains and queues one message per domain.
type RelayOptions struct {
	// Domains are routed to the lab MX (default DefaultRelayDomains).
	Domains []string
	// Messages is how many messages are fed, to the domains in turn
	// (default one per domain; negative: none).
	Messages int
	// Hostname is the relay's myhostname (default "relay.test.example").
	Hostname string
	// Dir and Keep are as in Options.
	Dir  string
	Keep bool
}

// Relay is a Postfix instance that relays mail for Domains to a lab MX
// which resets every TLS handshake after "220 2.0.0 Ready to start TLS",
// with smtp_tls_security_level = encrypt: every message stays deferred,
// and the log holds Postfix's own lines for it. Its smtpd (Addr(OK))
// accepts mail from loopback for any domain.
type Relay struct {
	*Instance
	// MX is the lab MX, an internal/smtptest server with the
	// reset_after_ready behaviour.
	MX *smtptest.Server
	// Domains are the domains routed to MX.
	Domains []string
}

// StartRelay launches a relay for a test, fed with its messages and
// waited on until each is deferred, and stops it at cleanup. It skips or
// fails tb as Start does.
func StartRelay(tb testing.TB, opts RelayOptions) *Relay {
	tb.Helper()
	Require(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := LaunchRelay(ctx, opts)
	if err != nil {
		tb.Fatalf("start the Postfix lab relay: %v", err)
	}
	tb.Cleanup(func() { r.cleanup(tb) })
	return r
}

// LaunchRelay starts the lab MX and the relay, feeds opts.Messages
// messages over SMTP and waits until each one is deferred. Stop ends
// both.
func LaunchRelay(ctx context.Context, opts RelayOptions) (*Relay, error) {
	if len(opts.Domains) == 0 {
		opts.Domains = DefaultRelayDomains
	}
	if opts.Messages == 0 {
		opts.Messages = len(opts.Domains)
	}
	if opts.Hostname == "" {
		opts.Hostname = "relay.test.example"
	}
	mx, err := smtptest.Start(smtptest.Options{Behavior: smtptest.ResetAfterReady, Addr: "127.0.0.1:0"})
	if err != nil {
		return nil, err
	}
	var table strings.Builder
	for _, d := range opts.Domains {
		fmt.Fprintf(&table, "%s smtp:[%s]:%d\n", d, mx.Host(), mx.Port())
	}
	in, err := Launch(Options{
		Listeners:  []Listener{{Kind: OK}},
		Hostname:   opts.Hostname,
		Dir:        opts.Dir,
		Keep:       opts.Keep,
		plainNames: true,
		files:      []confFile{{name: "transport", text: table.String()}},
		mainFor: func(l layout) []string {
			return []string{
				"transport_maps = texthash:" + l.conf + "/transport",
				"smtp_tls_security_level = encrypt",
				// Each message gets its own attempt and its own log lines,
				// instead of "delivery temporarily suspended" after the
				// first failure.
				"smtp_destination_concurrency_failed_cohort_limit = 100",
				"smtp_connect_timeout = 10s",
			}
		},
	})
	if err != nil {
		_ = mx.Close()
		return nil, err
	}
	r := &Relay{Instance: in, MX: mx, Domains: opts.Domains}
	for i := range max(opts.Messages, 0) {
		rcpt := fmt.Sprintf("user%d@%s", i+1, opts.Domains[i%len(opts.Domains)])
		if err := r.Send(ctx, "lab@"+opts.Hostname, rcpt); err != nil {
			_ = r.Stop()
			return nil, err
		}
	}
	if opts.Messages > 0 {
		if _, err := r.WaitLog(ctx, LogDeferredTLS, opts.Messages); err != nil {
			_ = r.Stop()
			return nil, err
		}
	}
	return r, nil
}

// Send submits one message from sender to rcpt through the relay's smtpd
// over SMTP, without TLS.
func (r *Relay) Send(ctx context.Context, sender, rcpt string) error {
	addr := r.Addr(OK)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("postfixlab: connect to the relay's smtpd: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	c, err := smtp.NewClient(conn, r.Hostname())
	if err != nil {
		return fmt.Errorf("postfixlab: relay greeting: %w", err)
	}
	defer c.Close()
	msg := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: gmailtls Postfix lab\r\nDate: %s\r\n\r\n"+
		"A message the lab relay cannot deliver: its MX resets every TLS handshake.\r\n",
		sender, rcpt, time.Now().Format(time.RFC1123Z))
	steps := []struct {
		what string
		do   func() error
	}{
		{"EHLO", func() error { return c.Hello("feeder.test.example") }},
		{"MAIL FROM", func() error { return c.Mail(sender) }},
		{"RCPT TO", func() error { return c.Rcpt(rcpt) }},
		{"DATA", func() error {
			w, err := c.Data()
			if err != nil {
				return err
			}
			if _, err := w.Write([]byte(msg)); err != nil {
				return err
			}
			return w.Close()
		}},
		{"QUIT", c.Quit},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("postfixlab: send to %s through the relay: %s: %w", rcpt, s.what, err)
		}
	}
	return nil
}

// Stop ends the relay and its lab MX.
func (r *Relay) Stop() error {
	err := r.Instance.Stop()
	if cerr := r.MX.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

func (r *Relay) cleanup(tb testing.TB) {
	if tb.Failed() {
		if lines, err := r.Log(); err == nil {
			tb.Logf("Postfix lab relay log (%s):\n%s", r.LogPath(), strings.Join(lines, "\n"))
		}
	}
	if err := r.Stop(); err != nil {
		tb.Errorf("stop the Postfix lab relay: %v", err)
	}
}
