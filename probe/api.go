package probe

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// Resolver looks up the MX set of a domain and the addresses of a host.
// *net.Resolver satisfies it.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Dialer opens the TCP connection of one probe. source is the local address
// to bind to; the zero netip.Addr lets the system choose. It exists to
// facilitate testing and source-address binding.
type Dialer interface {
	DialContext(ctx context.Context, network, address string, source netip.Addr) (net.Conn, error)
}

// Timeouts bounds each stage of a probe. A zero field takes its default.
type Timeouts struct {
	DNS       time.Duration
	Connect   time.Duration
	Banner    time.Duration
	EHLO      time.Duration
	StartTLS  time.Duration
	Handshake time.Duration
	PostTLS   time.Duration
}

// Target is one pinned mail exchanger: a host name or IP literal and a port.
type Target struct {
	Host string
	Port int
}

// Config says what to probe and how. The zero value of every optional field
// takes a sensible default.
type Config struct {
	// Relay is the name recorded in every result ("local" when empty).
	Relay string
	// Domain whose MX set is probed (default "gmail.com"); ignored when MX
	// is set, except as the report's domain.
	Domain string
	// MX pins the mail exchangers instead of looking up the domain's MX set.
	MX []Target
	// ServerName, when set, is the SNI and verification name for every
	// target instead of the MX host name.
	ServerName string
	// RootCAs verifies the server's certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// ExtraRoots are trusted besides RootCAs (a lab's CA, --ca-file). A
	// chain that verifies against ExtraRoots alone is accepted without
	// loading the system roots, which saves a process ~10 ms; any other
	// chain is verified against RootCAs.
	ExtraRoots *x509.CertPool
	// Sources are the local addresses to probe from, each on its own; empty
	// means the system's choice.
	Sources []netip.Addr
	// Family is "4", "6" or "any" (default "any").
	Family string
	// HelloName is the EHLO argument (default: the host name).
	HelloName string
	// Timeouts per stage; Timeout, when set, is the default for every stage.
	Timeouts Timeouts
	Timeout  time.Duration
	// Concurrency bounds the probes that run at once (default 64). A run
	// has one probe per MX address and source address: gmail.com's five
	// MX hosts with an IPv4 and an IPv6 address each make 10 per source,
	// so the default runs up to six sources in one wave. Probes spend
	// their time waiting for the network, hold one socket each, and each
	// server address still sees at most one connection per source; a
	// bound of 16 made a 40-probe run take three probes' time instead of
	// little more than one (BenchmarkFanout).
	Concurrency int
	// MaxLineBytes and MaxReplyLines bound what a server may send
	// (defaults 4096 and 100).
	MaxLineBytes  int
	MaxReplyLines int
	// NoRetry disables the narrower-ClientHello retries after tls_reset or
	// tls_timeout.
	NoRetry bool

	// OnEndpoints, when set, is called once per Run with the endpoints
	// about to be probed (MX × IP × source), as soon as the lookups are
	// done and before any probe starts: work that goes to the same
	// addresses (the relay's own TLS tools) can start beside the probes.
	OnEndpoints func([]Endpoint)
	// OnResult, when set, is called with each result as it completes
	// (one per MX × IP × source, failed lookups included), from the
	// probe's own goroutine, so possibly from several at once and in no
	// particular order; Run's report still has them all, sorted. It must
	// not block for long: the probe's slot waits for it.
	OnResult func(Result)

	Resolver Resolver
	Dialer   Dialer
	Now      func() time.Time
	Logger   *slog.Logger

	// chains caches the chains that verified during one Run or ProbeOne
	// (set by withDefaults).
	chains *chainCache
}
