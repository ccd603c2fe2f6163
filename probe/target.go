package probe

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults of Config's optional fields.
const (
	DefaultDomain        = "gmail.com"
	DefaultPort          = 25
	DefaultTimeout       = 20 * time.Second
	DefaultConcurrency   = 64
	DefaultMaxLineBytes  = 4096
	DefaultMaxReplyLines = 100
)

// Endpoint is one probe's target: an MX host's address, reached from one
// source address.
type Endpoint struct {
	// MX is the mail exchanger's host name (or the IP literal it was
	// pinned as).
	MX         string
	Preference uint16
	IP         netip.Addr
	Port       int
	// Source is the local address to bind to; the zero Addr lets the
	// system choose.
	Source netip.Addr

	dnsMS float64 // time its lookups took, recorded as Timings.DNS
}

// ParseTarget parses a pinned mail exchanger: "host", "host:port",
// "192.0.2.1:2525", "[2001:db8::1]:25" or a bare IPv6 literal. The port
// defaults to 25.
func ParseTarget(s string) (Target, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return Target{}, fmt.Errorf("%w: empty MX target", ErrConfig)
	}
	host, port := in, ""
	switch {
	case strings.HasPrefix(in, "["):
		h, p, err := net.SplitHostPort(in)
		if err != nil {
			if !strings.HasSuffix(in, "]") {
				return Target{}, fmt.Errorf("%w: MX target %q: want [IPv6]:port", ErrConfig, s)
			}
			h, p = strings.TrimSuffix(strings.TrimPrefix(in, "["), "]"), ""
		}
		a, err := netip.ParseAddr(h)
		if err != nil || !a.Is6() {
			return Target{}, fmt.Errorf("%w: MX target %q: %q in brackets is not an IPv6 address", ErrConfig, s, h)
		}
		host, port = h, p
	case strings.Count(in, ":") > 1:
		a, err := netip.ParseAddr(in)
		if err != nil {
			return Target{}, fmt.Errorf("%w: MX target %q: not an IPv6 address; write [IPv6]:port", ErrConfig, s)
		}
		host = a.String()
	case strings.Contains(in, ":"):
		var err error
		host, port, err = net.SplitHostPort(in)
		if err != nil {
			return Target{}, fmt.Errorf("%w: MX target %q: want host or host:port", ErrConfig, s)
		}
	}
	t := Target{Host: strings.ToLower(strings.TrimSuffix(host, ".")), Port: DefaultPort}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return Target{}, fmt.Errorf("%w: MX target %q: port %q is not a number from 1 to 65535", ErrConfig, s, port)
		}
		t.Port = n
	}
	if _, err := netip.ParseAddr(t.Host); err != nil && !validHostName(t.Host) {
		return Target{}, fmt.Errorf("%w: MX target %q: %q is neither an IP address nor a host name", ErrConfig, s, host)
	}
	return t, nil
}

// String formats the target as ParseTarget reads it.
func (t Target) String() string {
	port := t.Port
	if port == 0 {
		port = DefaultPort
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(port))
}

// ParseTargets parses every entry with ParseTarget and reports all bad
// entries at once.
func ParseTargets(list []string) ([]Target, error) {
	var errs []error
	out := make([]Target, 0, len(list))
	for _, s := range list {
		t, err := ParseTarget(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// validHostName accepts DNS names of letters, digits, hyphens and
// underscores between dots.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := range len(label) {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// ParseFamily checks an address family: "4", "6" or "any" ("" means any).
func ParseFamily(s string) (string, error) {
	switch s {
	case "", "any":
		return "any", nil
	case "4", "6":
		return s, nil
	}
	return "", fmt.Errorf("%w: family %q: want 4, 6 or any", ErrConfig, s)
}

// ParseSources parses source IP addresses and reports all bad ones at once.
func ParseSources(list []string) ([]netip.Addr, error) {
	var errs []error
	out := make([]netip.Addr, 0, len(list))
	for _, s := range list {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: source address %q is not an IP address", ErrConfig, s))
			continue
		}
		out = append(out, a.Unmap())
	}
	return out, errors.Join(errs...)
}

// LoadRoots returns the system roots plus the certificates of the PEM file
// at path, for Config.RootCAs. A file without any certificate is an error:
// a wrong path or format should not silently fall back to the system roots.
// LoadExtraRoots with Config.ExtraRoots trusts the same certificates
// without loading the system roots up front.
func LoadRoots(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: CA file: %w", ErrConfig, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrConfig, path)
	}
	return pool, nil
}

// LoadExtraRoots returns a pool of the certificates of the PEM file at
// path alone, for Config.ExtraRoots (trusted besides the system roots).
// A file without any certificate is an error.
func LoadExtraRoots(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: CA file: %w", ErrConfig, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrConfig, path)
	}
	return pool, nil
}

// NetDialer is the default Dialer: a net.Dialer bound to the source
// address when one is given.
type NetDialer struct{}

// DialContext dials address from source (the system's choice when zero).
func (NetDialer) DialContext(ctx context.Context, network, address string, source netip.Addr) (net.Conn, error) {
	var d net.Dialer
	if source.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: source.AsSlice(), Zone: source.Zone()}
	}
	return d.DialContext(ctx, network, address)
}

// withDefaults fills every zero optional field of c.
func (c Config) withDefaults() Config {
	if c.Relay == "" {
		c.Relay = "local"
	}
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	if c.Family == "" {
		c.Family = "any"
	}
	if c.HelloName == "" {
		c.HelloName = "localhost"
		if h, err := os.Hostname(); err == nil && validHostName(strings.ToLower(h)) {
			c.HelloName = h
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	for _, d := range []*time.Duration{&c.Timeouts.DNS, &c.Timeouts.Connect, &c.Timeouts.Banner,
		&c.Timeouts.EHLO, &c.Timeouts.StartTLS, &c.Timeouts.Handshake, &c.Timeouts.PostTLS} {
		if *d <= 0 {
			*d = c.Timeout
		}
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxLineBytes <= 0 {
		c.MaxLineBytes = DefaultMaxLineBytes
	}
	if c.MaxReplyLines <= 0 {
		c.MaxReplyLines = DefaultMaxReplyLines
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Dialer == nil {
		c.Dialer = NetDialer{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.chains = newChainCache()
	return c
}

// validate reports every problem of a defaulted config at once.
func (c Config) validate() error {
	var errs []error
	if _, err := ParseFamily(c.Family); err != nil {
		errs = append(errs, err)
	}
	if len(c.MX) == 0 && !validHostName(strings.ToLower(strings.TrimSuffix(c.Domain, "."))) {
		errs = append(errs, fmt.Errorf("%w: domain %q is not a domain name", ErrConfig, c.Domain))
	}
	for _, t := range c.MX {
		if t.Host == "" || t.Port < 0 || t.Port > 65535 {
			errs = append(errs, fmt.Errorf("%w: MX target %q: want host and port", ErrConfig, t.String()))
		}
	}
	if !safeWord(c.HelloName) {
		errs = append(errs, fmt.Errorf("%w: EHLO name %q must be one word of printable characters", ErrConfig, c.HelloName))
	}
	if c.ServerName != "" && !safeWord(c.ServerName) {
		errs = append(errs, fmt.Errorf("%w: servername %q must be one word of printable characters", ErrConfig, c.ServerName))
	}
	return errors.Join(errs...)
}

// safeWord reports whether s can go on an SMTP command line as one word.
func safeWord(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// CheckPinnedFamily refuses an address family that excludes every pinned
// MX: when each one is an IP literal of the other family nothing could be
// probed, and that is a usage error, not a DNS failure. A pinned host name
// may still have an address of the family. source names where the family
// was set, for the message ("--family 6").
func CheckPinnedFamily(mx []Target, family, source string) error {
	if len(mx) == 0 || (family != "4" && family != "6") {
		return nil
	}
	var others []string
	for _, t := range mx {
		a, err := netip.ParseAddr(t.Host)
		if err != nil || a.Unmap().Is4() == (family == "4") {
			return nil
		}
		others = append(others, t.String())
	}
	other, want := "IPv6", "IPv4"
	if family == "6" {
		other, want = "IPv4", "IPv6"
	}
	verb := "are"
	if len(others) == 1 {
		verb = "is"
	}
	return fmt.Errorf("%s excludes every pinned MX: %s %s %s; pin an %s address or use --family any",
		source, strings.Join(others, ", "), verb, other, want)
}
