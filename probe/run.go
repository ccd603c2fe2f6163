package probe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// ErrConfig marks a probe configuration that cannot run.
var ErrConfig = errors.New("probe: invalid configuration")

// Run probes every MX × IP × source combination that cfg names and returns
// one result each. A failed probe is a Result with a failure class; the
// error is non-nil only when the probe could not run at all (ErrConfig).
//
// The MX set comes from DNS (cfg.Domain, default gmail.com) sorted by
// preference, or from cfg.MX. Every probe runs concurrently under
// cfg.Concurrency; one failing target never cancels the others. Results
// are sorted by preference, MX host, IP, port and source address. Probes
// go only to the targets cfg names. cfg.OnEndpoints learns the endpoints
// before the probes start, cfg.OnResult each result as it completes.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return Report{}, err
	}
	rep := Report{Relay: cfg.Relay, StartedAt: cfg.Now()}
	if len(cfg.MX) == 0 {
		// The domain names the target only when its MX set was looked up;
		// pinned MX hosts are not the domain's (docs/architecture.md,
		// "Wire formats").
		rep.Domain = strings.TrimSuffix(cfg.Domain, ".")
	}
	endpoints, failed := plan(ctx, &cfg)
	if len(endpoints) == 0 && len(failed) == 0 {
		return Report{}, fmt.Errorf("%w: no source address has the family of any MX address", ErrConfig)
	}
	if cfg.OnEndpoints != nil {
		cfg.OnEndpoints(slices.Clone(endpoints))
	}
	if cfg.OnResult != nil {
		for _, r := range failed {
			cfg.OnResult(r)
		}
	}
	results := make([]Result, len(endpoints))
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = safeProbe(ctx, &cfg, ep)
			if cfg.OnResult != nil {
				cfg.OnResult(results[i])
			}
		})
	}
	wg.Wait()
	results = append(results, failed...)
	sortResults(results)
	rep.Results = results
	return rep, nil
}

// safeProbe runs one probe and turns a panic (a bug met by outside input)
// into a failed result instead of a crashed process.
func safeProbe(ctx context.Context, cfg *Config, ep Endpoint) (res Result) {
	defer func() {
		if p := recover(); p != nil {
			cfg.Logger.Error("probe panicked", "mx", ep.MX, "ip", ep.IP, "panic", p)
			res = Result{
				Relay: cfg.Relay, Engine: EngineNative, MX: ep.MX, Preference: ep.Preference,
				IP: ep.IP.String(), Port: ep.Port, StartedAt: cfg.Now(),
				Stage: StageConnect, Failure: FailSMTPProtocol,
				Error:      fmt.Sprintf("internal error in the probe: %v", p),
				Hints:      []string{"this is a bug in gmailtls: please report it with the transcript"},
				Transcript: []string{},
			}
		}
	}()
	return probeOne(ctx, cfg, ep)
}

// mxHost is one mail exchanger to resolve.
type mxHost struct {
	name string
	pref uint16
	port int
}

// plan resolves the targets into endpoints (MX × IP × source). Lookups
// that fail become dns_error results.
func plan(ctx context.Context, cfg *Config) ([]Endpoint, []Result) {
	var hosts []mxHost
	var failed []Result
	dnsStart := cfg.Now()
	if len(cfg.MX) > 0 {
		for _, t := range cfg.MX {
			port := t.Port
			if port == 0 {
				port = DefaultPort
			}
			hosts = append(hosts, mxHost{name: t.Host, port: port})
		}
	} else {
		lctx, cancel := context.WithTimeout(ctx, cfg.Timeouts.DNS)
		mxs, err := cfg.Resolver.LookupMX(lctx, cfg.Domain)
		cancel()
		if err == nil && len(mxs) == 0 {
			err = fmt.Errorf("%s has no MX records", cfg.Domain)
		}
		if err == nil && len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
			err = fmt.Errorf("%s publishes a null MX: it accepts no mail", cfg.Domain)
		}
		if err != nil {
			r := dnsFailure(cfg, strings.TrimSuffix(cfg.Domain, "."), 0, DefaultPort,
				fmt.Errorf("MX lookup of %s: %w", cfg.Domain, err))
			r.Timings.DNS = ms(cfg.Now().Sub(dnsStart))
			return nil, []Result{r}
		}
		for _, mx := range mxs {
			hosts = append(hosts, mxHost{name: strings.ToLower(strings.TrimSuffix(mx.Host, ".")), pref: mx.Pref, port: DefaultPort})
		}
		slices.SortStableFunc(hosts, func(a, b mxHost) int {
			return cmp.Or(cmp.Compare(a.pref, b.pref), strings.Compare(a.name, b.name))
		})
	}

	// Address lookups, one per host, under the same bound as the probes.
	addrs := make([][]netip.Addr, len(hosts))
	errs := make([]error, len(hosts))
	took := make([]float64, len(hosts)) // ms from the MX lookup's start
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	for i, h := range hosts {
		if a, err := netip.ParseAddr(h.name); err == nil {
			addrs[i] = []netip.Addr{a.Unmap()}
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			lctx, cancel := context.WithTimeout(ctx, cfg.Timeouts.DNS)
			defer cancel()
			ips, err := cfg.Resolver.LookupIPAddr(lctx, h.name)
			took[i] = ms(cfg.Now().Sub(dnsStart))
			if err != nil {
				errs[i] = fmt.Errorf("address lookup of %s: %w", h.name, err)
				return
			}
			addrs[i] = ipAddrs(ips)
		})
	}
	wg.Wait()

	var eps []Endpoint
	for i, h := range hosts {
		if errs[i] != nil {
			r := dnsFailure(cfg, h.name, h.pref, h.port, errs[i])
			r.Timings.DNS = took[i]
			failed = append(failed, r)
			continue
		}
		list := filterFamily(addrs[i], cfg.Family)
		if len(list) == 0 {
			err := fmt.Errorf("%s has no address of family %s", h.name, familyName(cfg.Family))
			r := dnsFailure(cfg, h.name, h.pref, h.port, err)
			r.Timings.DNS = took[i]
			failed = append(failed, r)
			continue
		}
		for _, ip := range list {
			if len(cfg.Sources) == 0 {
				eps = append(eps, Endpoint{MX: h.name, Preference: h.pref, IP: ip, Port: h.port, dnsMS: took[i]})
				continue
			}
			for _, src := range cfg.Sources {
				if src.Unmap().Is4() != ip.Is4() {
					cfg.Logger.Debug("source and MX address families differ; skipped",
						"source", src, "mx", h.name, "ip", ip)
					continue
				}
				eps = append(eps, Endpoint{MX: h.name, Preference: h.pref, IP: ip, Port: h.port, Source: src.Unmap(), dnsMS: took[i]})
			}
		}
	}
	return eps, failed
}

// ipAddrs converts and de-duplicates looked-up addresses, in order.
func ipAddrs(ips []net.IPAddr) []netip.Addr {
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		a, ok := netip.AddrFromSlice(ip.IP)
		if !ok {
			continue
		}
		a = a.Unmap().WithZone(ip.Zone)
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func filterFamily(list []netip.Addr, family string) []netip.Addr {
	out := make([]netip.Addr, 0, len(list))
	for _, a := range list {
		switch {
		case family == "4" && !a.Is4(), family == "6" && a.Is4():
			continue
		}
		out = append(out, a)
	}
	return out
}

func familyName(f string) string {
	if f == "4" {
		return "IPv4"
	}
	return "IPv6"
}

// dnsFailure is the result of a failed lookup.
func dnsFailure(cfg *Config, host string, pref uint16, port int, err error) Result {
	r := Result{
		Relay:      cfg.Relay,
		Engine:     EngineNative,
		MX:         host,
		Preference: pref,
		Port:       port,
		StartedAt:  cfg.Now(),
		Stage:      StageDNS,
		Failure:    FailDNSError,
		Error:      err.Error(),
		Hints:      []string{Hint(FailDNSError)},
		Transcript: []string{Note + "dns failed (dns_error): " + err.Error()},
	}
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		r.Hints = append(r.Hints, "the name does not exist (NXDOMAIN) for this host's resolver")
	}
	return r
}

// sortResults orders results by preference, MX host, IP, port and source.
func sortResults(rs []Result) {
	slices.SortStableFunc(rs, func(a, b Result) int {
		return cmp.Or(
			cmp.Compare(a.Preference, b.Preference),
			strings.Compare(a.MX, b.MX),
			compareAddr(a.IP, b.IP),
			cmp.Compare(a.Port, b.Port),
			compareAddr(a.SourceIP, b.SourceIP),
		)
	})
}

func compareAddr(a, b string) int {
	x, errA := netip.ParseAddr(a)
	y, errB := netip.ParseAddr(b)
	if errA == nil && errB == nil {
		return x.Compare(y)
	}
	return strings.Compare(a, b)
}

// levelFor logs failures at Info and successes at Debug.
func levelFor(r Result) slog.Level {
	if r.OK {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

func slogAttrs(r Result) []slog.Attr {
	return []slog.Attr{
		slog.String("relay", r.Relay), slog.String("mx", r.MX), slog.String("ip", r.IP),
		slog.Int("port", r.Port), slog.String("source", r.SourceIP), slog.Bool("ok", r.OK),
		slog.String("stage", string(r.Stage)), slog.String("failure", string(r.Failure)),
		slog.Float64("total_ms", r.Timings.Total),
	}
}
