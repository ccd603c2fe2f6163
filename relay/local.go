package relay

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/probe"
)

// Local probes in process, from this host, optionally bound to each of the
// relay's source IPs in turn. The exported fields are optional and must be
// set before the first call.
type Local struct {
	name    string
	base    probe.Config
	sources []netip.Addr

	// Control are the control MX hosts of this host's own configuration
	// ([target] control_mx): a request may name them instead of the
	// target's MX hosts, and they are then probed as pinned hosts, each
	// verified under its own name. No other host is ever probed.
	Control []probe.Target
	// MTAStack allows Options.MTAStack: run the host's own openssl and
	// posttls-finger toward the IPs the native probe reached.
	MTAStack bool
	// CAFile is the PEM file of extra roots that the MTA-stack tools are
	// given (the native probe uses base.RootCAs).
	CAFile string
	// CAPath is the hashed certificate folder of the system trust store
	// given to posttls-finger (default /etc/ssl/certs).
	CAPath string
	// Commands runs openssl, posttls-finger, postqueue, postconf and exim
	// (default: an ExecRunner of its own, logging to Logger).
	Commands CommandRunner
	// Postqueue is the postqueue program (default "postqueue").
	Postqueue string
	// MailLog is the MTA's mail log Log reads: a file path, or
	// maillog.Journald; empty: none.
	MailLog string
	// LogCommands runs journalctl for Log (default: an ExecRunner of its
	// own with an output cap for the journal).
	LogCommands CommandRunner
	// GmailBound decides which queue recipients are Gmail-bound beyond
	// gmail.com and googlemail.com (nil: those two only).
	GmailBound *GmailBound
	// MailConfig is the Postfix configuration directory Policy reads
	// (postconf -c; default: $MAIL_CONFIG, else Postfix's own default).
	MailConfig string
	// Version is the gmailtls version reported by Info.
	Version string
	// Hostname returns the host name reported by Info (default os.Hostname).
	Hostname func() (string, error)
	// InterfaceAddrs lists the host's addresses for Info (default
	// net.InterfaceAddrs).
	InterfaceAddrs func() ([]net.Addr, error)
	// OwnAddr reports whether a requested source address (Options.Sources)
	// is one of this host's own (default: whether a socket can be bound to
	// it).
	OwnAddr func(netip.Addr) bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives debug and error logs (default: the base config's
	// logger, else discarded).
	Logger *slog.Logger

	execOnce sync.Once
	exec     *ExecRunner

	logExecOnce sync.Once
	logExec     *ExecRunner

	mxMu sync.Mutex
	mxes map[string]bool // hosts seen in a DNS target's MX set
}

// maxRememberedMX bounds the MX hosts a Local remembers.
const maxRememberedMX = 256

// rememberMX notes hosts seen in the DNS target's MX set, so that a
// narrowed probe can still be told apart from a request for another host
// while the MX lookup fails.
func (l *Local) rememberMX(hosts ...string) {
	l.mxMu.Lock()
	defer l.mxMu.Unlock()
	if l.mxes == nil {
		l.mxes = make(map[string]bool)
	}
	for _, h := range hosts {
		if h != "" && len(l.mxes) < maxRememberedMX {
			l.mxes[h] = true
		}
	}
}

func (l *Local) seenMX(host string) bool {
	l.mxMu.Lock()
	defer l.mxMu.Unlock()
	return l.mxes[host]
}

// NewLocal returns a relay that probes from this host. base says what to
// probe (the configured target); sourceIPs, when not empty, replace
// base.Sources so that each outbound IP of the relay is probed on its own.
func NewLocal(name string, base probe.Config, sourceIPs []netip.Addr) *Local {
	base.Relay = name
	if len(sourceIPs) > 0 {
		base.Sources = slices.Clone(sourceIPs)
	}
	return &Local{name: name, base: base, sources: base.Sources}
}

// Name is the relay's name.
func (l *Local) Name() string { return l.name }

// Kind is KindLocal.
func (l *Local) Kind() string { return KindLocal }

// Base returns the probe configuration the relay probes with.
func (l *Local) Base() probe.Config { return l.base }

func (l *Local) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	if l.base.Now != nil {
		return l.base.Now()
	}
	return time.Now()
}

func (l *Local) logger() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	if l.base.Logger != nil {
		return l.base.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (l *Local) commands() CommandRunner {
	if l.Commands != nil {
		return l.Commands
	}
	l.execOnce.Do(func() { l.exec = &ExecRunner{Logger: l.logger()} })
	return l.exec
}

// Probe runs the native probe toward the configured target, narrowed to
// opts.MX, and, when opts.MTAStack is set and the relay allows it, the
// relay's own TLS tools toward the same IPs. An MX host outside the target
// is an error wrapping ErrNotConfigured; a bad family wraps ErrOptions.
func (l *Local) Probe(ctx context.Context, opts Options) (probe.Report, error) {
	cfg, prefs, failed, err := l.plan(ctx, opts)
	if err != nil {
		return probe.Report{}, err
	}
	if failed != nil {
		return *failed, nil
	}
	if opts.OnResult != nil {
		onResult, name := opts.OnResult, l.name
		cfg.OnResult = func(r probe.Result) {
			if r.Relay == "" {
				r.Relay = name
			}
			if r.Engine == "" {
				r.Engine = probe.EngineNative
			}
			onResult(r)
		}
	}
	var stack *mtaStack
	if opts.MTAStack && l.MTAStack {
		// The relay's own tools run beside the native probe, not after it.
		stack = l.newMTAStack(ctx, cfg)
		cfg.OnEndpoints = stack.start
		onResult := cfg.OnResult
		cfg.OnResult = func(r probe.Result) {
			stack.native(r)
			if onResult != nil {
				onResult(r)
			}
		}
	}
	rep, err := probe.Run(ctx, cfg)
	if err != nil {
		if stack != nil {
			stack.finish(nil)
		}
		return rep, fmt.Errorf("relay %s: %w", l.name, err)
	}
	if rep.Relay == "" {
		rep.Relay = l.name
	}
	if prefs != nil {
		// Hosts narrowed from the domain's MX set came from DNS: the
		// report names the domain.
		rep.Domain = strings.TrimSuffix(cmp.Or(l.base.Domain, probe.DefaultDomain), ".")
	}
	for i := range rep.Results {
		r := &rep.Results[i]
		if r.Engine == "" {
			r.Engine = probe.EngineNative
		}
		if p, ok := prefs[strings.ToLower(r.MX)]; ok && r.Preference == 0 {
			r.Preference = p
		}
	}
	if len(l.base.MX) == 0 && len(opts.MX) == 0 {
		// A probe of the whole DNS target: its hosts are the MX set, except
		// the result that says the MX lookup itself failed.
		domain := cmp.Or(cfg.Domain, "gmail.com")
		for _, r := range rep.Results {
			if r.Stage != probe.StageDNS || normHost(r.MX) != normHost(domain) {
				l.rememberMX(normHost(r.MX))
			}
		}
	}
	if stack != nil {
		rep.Results = append(rep.Results, stack.finish(rep.Results)...)
	}
	return rep, nil
}

// ValidFamily reports whether f is an accepted Options.Family.
func ValidFamily(f string) bool {
	switch f {
	case "", "4", "6", "any":
		return true
	}
	return false
}

// plan turns options into the probe configuration to run. prefs carries the
// MX preferences learnt while narrowing a DNS target (pinned targets lose
// them). failed is set when narrowing itself failed at the DNS stage.
func (l *Local) plan(ctx context.Context, opts Options) (cfg probe.Config, prefs map[string]uint16, failed *probe.Report, err error) {
	cfg = l.base
	if !ValidFamily(opts.Family) {
		return cfg, nil, nil, fmt.Errorf("%w: family %q (want 4, 6 or any)", ErrOptions, opts.Family)
	}
	if opts.Family != "" {
		cfg.Family = opts.Family
	}
	cfg.NoRetry = cfg.NoRetry || opts.NoRetry
	if len(opts.Sources) > 0 {
		srcs, err := probe.ParseSources(opts.Sources)
		if err != nil {
			return cfg, nil, nil, fmt.Errorf("%w: %w", ErrOptions, err)
		}
		own := l.OwnAddr
		if own == nil {
			own = ownAddr
		}
		for _, a := range srcs {
			if err := CheckSourceIP(a); err != nil {
				return cfg, nil, nil, fmt.Errorf("%w: %w", ErrOptions, err)
			}
			if !own(a) {
				return cfg, nil, nil, fmt.Errorf("%w: source IP %s is not an address of this host (%s)", ErrOptions, a, l.name)
			}
		}
		cfg.Sources = srcs
	}
	if len(opts.MX) == 0 {
		return cfg, nil, nil, nil
	}
	if control, ok, err := l.planControl(opts.MX); err != nil {
		return cfg, nil, nil, err
	} else if ok {
		cfg.MX, cfg.ServerName, cfg.Domain = control, "", ""
		return cfg, nil, nil, nil
	}
	if len(l.base.MX) > 0 {
		var narrowed []probe.Target
		for _, want := range opts.MX {
			t, ok := matchPinned(l.base.MX, want)
			if !ok {
				return cfg, nil, nil, fmt.Errorf("%w: %q is not one of the configured MX hosts", ErrNotConfigured, want)
			}
			if !slices.Contains(narrowed, t) {
				narrowed = append(narrowed, t)
			}
		}
		cfg.MX = narrowed
		return cfg, nil, nil, nil
	}
	// A DNS target: only hosts of the domain's MX set may be asked for.
	domain := cfg.Domain
	if domain == "" {
		domain = "gmail.com"
	}
	var res probe.Resolver = net.DefaultResolver
	if cfg.Resolver != nil {
		res = cfg.Resolver
	}
	lctx := ctx
	if d := dnsTimeout(cfg); d > 0 {
		var cancel context.CancelFunc
		lctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	start := l.now()
	mxs, lerr := res.LookupMX(lctx, domain)
	if lerr != nil {
		// Without the MX set, a requested host is only probed (that is,
		// reported as a DNS failure) when it was seen in the set before:
		// anything else may be outside the target.
		for _, want := range opts.MX {
			if !l.seenMX(normHost(want)) {
				return cfg, nil, nil, fmt.Errorf("%w: cannot confirm that %q is in the MX set of %s, as the MX lookup failed on this relay (%v); a probe of all MX hosts reports the DNS failure",
					ErrNotConfigured, want, domain, lerr)
			}
		}
		rep := probe.Report{Relay: l.name, Domain: domain, StartedAt: start}
		for _, want := range opts.MX {
			rep.Results = append(rep.Results, probe.Result{
				Relay: l.name, Engine: probe.EngineNative, MX: want, Port: 25,
				StartedAt: start, Stage: probe.StageDNS, Failure: probe.FailDNSError,
				Error:      fmt.Sprintf("MX lookup of %s: %v", domain, lerr),
				Hints:      []string{"check the relay's resolver and its DNS egress"},
				Transcript: []string{},
				Timings:    probe.Timings{Total: ms(l.now().Sub(start))},
			})
		}
		return cfg, nil, &rep, nil
	}
	prefs = make(map[string]uint16)
	for _, mx := range mxs {
		prefs[normHost(mx.Host)] = mx.Pref
	}
	l.rememberMX(slices.Collect(maps.Keys(prefs))...)
	var narrowed []probe.Target
	for _, want := range opts.MX {
		h := normHost(want)
		if _, ok := prefs[h]; !ok {
			return cfg, nil, nil, fmt.Errorf("%w: %q is not in the MX set of %s", ErrNotConfigured, want, domain)
		}
		t := probe.Target{Host: h, Port: 25}
		if !slices.Contains(narrowed, t) {
			narrowed = append(narrowed, t)
		}
	}
	cfg.MX = narrowed
	return cfg, prefs, nil, nil
}

func dnsTimeout(cfg probe.Config) time.Duration {
	if cfg.Timeouts.DNS > 0 {
		return cfg.Timeouts.DNS
	}
	return cfg.Timeout
}

// matchPinned finds want ("host" or "host:port") among pinned targets.
// planControl reports whether the requested hosts are control hosts of
// this host's own configuration (Local.Control), and which. A request that
// mixes control hosts with others is refused: a control run is apart.
func (l *Local) planControl(want []string) ([]probe.Target, bool, error) {
	var out []probe.Target
	matched := 0
	for _, w := range want {
		t, ok := matchPinned(l.Control, w)
		if !ok {
			continue
		}
		matched++
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	switch matched {
	case 0:
		return nil, false, nil
	case len(want):
		return out, true, nil
	}
	return nil, false, fmt.Errorf("%w: %s mixes control MX hosts with others; a control run names control hosts only", ErrNotConfigured, strings.Join(want, ", "))
}

func matchPinned(pinned []probe.Target, want string) (probe.Target, bool) {
	w := normHost(want)
	for _, t := range pinned {
		h := normHost(t.Host)
		if w == h || w == normHost(net.JoinHostPort(t.Host, strconv.Itoa(t.Port))) {
			return t, true
		}
	}
	return probe.Target{}, false
}

func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// CheckSourceIP refuses source addresses that can never be where mail
// leaves from: the unspecified address (0.0.0.0, ::), multicast addresses
// and the IPv4 broadcast address. Whether the address belongs to the host
// is checked separately.
func CheckSourceIP(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return errors.New("source IP is empty")
	case a.IsUnspecified():
		return fmt.Errorf("source IP %s is the unspecified address: name one of the relay's own outbound addresses", a)
	case a.IsMulticast():
		return fmt.Errorf("source IP %s is a multicast address: name one of the relay's own unicast addresses", a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("source IP %s is the broadcast address: name one of the relay's own unicast addresses", a)
	}
	return nil
}

// ownAddr reports whether a is a unicast address of this host: a socket
// can be bound to it, and it is not the broadcast address of one of the
// host's IPv4 networks (Linux lets sockets bind to those too).
func ownAddr(a netip.Addr) bool {
	if a.Is4() {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, ia := range addrs {
				if n, ok := ia.(*net.IPNet); ok && isBroadcastOf(a, n) {
					return false
				}
			}
		}
	}
	return bindable(a)
}

// isBroadcastOf reports whether a is the directed broadcast address of the
// IPv4 network n (networks of /31 and /32 have none).
func isBroadcastOf(a netip.Addr, n *net.IPNet) bool {
	ip, ok := netip.AddrFromSlice(n.IP)
	ones, bits := n.Mask.Size()
	if !ok || bits == 0 {
		return false
	}
	if bits == 128 && ip.Is4In6() {
		ones -= 96
	}
	ip = ip.Unmap()
	if !ip.Is4() || ones < 0 || ones >= 31 {
		return false
	}
	v := binary.BigEndian.Uint32(ip.AsSlice()) | (1<<(32-ones) - 1)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b) == a
}

// bindable reports whether a socket can be bound to a on this host, that is
// whether a is one of its addresses. Nothing is sent.
func bindable(a netip.Addr) bool {
	c, err := net.ListenPacket("udp", netip.AddrPortFrom(a, 0).String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}
