package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/maillog"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/storage"
)

// RunnerOptions tune the relays built by Runners. The zero value is usable.
type RunnerOptions struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Version is reported by local relays' host info.
	Version string
	// Resolver and Dialer replace the system's for local probes (tests).
	Resolver probe.Resolver
	Dialer   probe.Dialer
	// OnResults, when set, is handed the results of every probe a relay
	// built by Runners runs (serve counts them in /metrics).
	OnResults func([]probe.Result)
}

// ProbeConfig builds the probe configuration of the [target] section:
// domain or pinned MX list, servername, extra roots, family, timeout, EHLO
// name and concurrency. It is the one place where the configuration
// becomes probe settings: the bot's local relays, the agent and
// `gmailtls probe` all start from it (nil cfg: the default configuration's
// target); what is left zero is filled by the probe package's own defaults.
func ProbeConfig(cfg *config.Config, o RunnerOptions) (probe.Config, error) {
	if cfg == nil {
		cfg = config.Default()
	}
	t := cfg.Target
	pc := probe.Config{
		Domain:      t.Domain,
		ServerName:  t.ServerName,
		Family:      t.Family,
		HelloName:   t.HelloName,
		Timeout:     t.Timeout.Duration,
		Concurrency: t.Concurrency,
		Resolver:    o.Resolver,
		Dialer:      o.Dialer,
		Now:         o.Now,
		Logger:      o.Logger,
	}
	if len(t.MX) > 0 {
		mx, err := probe.ParseTargets(t.MX)
		if err != nil {
			return pc, fmt.Errorf("[target] mx: %w", err)
		}
		pc.MX = mx
	}
	fam, err := probe.ParseFamily(t.Family)
	if err != nil {
		return pc, fmt.Errorf("[target] family: %w", err)
	}
	pc.Family = fam
	if t.CAFile != "" {
		// Extra roots are tried before the system roots, so a lab CA never
		// pays for loading the system pool.
		roots, err := probe.LoadExtraRoots(cfg.Resolve(t.CAFile))
		if err != nil {
			return pc, fmt.Errorf("[target] ca_file: %w", err)
		}
		pc.ExtraRoots = roots
	}
	return pc, nil
}

// Runners builds a Runner for every configured relay: local relays
// probe from this host (bound to each source IP), agent relays ask their
// agent over signed HTTP(S), trusting the relay's ca_file.
func Runners(cfg *config.Config, o RunnerOptions) (map[string]Runner, error) {
	base, err := ProbeConfig(cfg, o)
	if err != nil {
		return nil, err
	}
	out := map[string]Runner{}
	var errs []error
	for _, rc := range cfg.Relays {
		switch rc.Kind {
		case "", KindLocal:
			srcs, err := probe.ParseSources(rc.SourceIPs)
			if err != nil {
				errs = append(errs, fmt.Errorf("relay %s: %w", rc.Name, err))
				continue
			}
			l := NewLocal(rc.Name, base, srcs)
			if l.Control, err = ControlTargets(cfg); err != nil {
				return nil, err
			}
			l.Version = o.Version
			l.Logger = o.Logger
			l.Now = o.Now
			l.MailLog = mailLogSource(cfg)
			if cfg.Target.CAFile != "" {
				l.CAFile = cfg.Resolve(cfg.Target.CAFile)
			}
			out[rc.Name] = observe(l, o.OnResults)
		case KindAgent:
			client, err := agentClient(cfg, rc)
			if err != nil {
				errs = append(errs, fmt.Errorf("relay %s: %w", rc.Name, err))
				continue
			}
			out[rc.Name] = observe(NewAgent(rc.Name, rc.URL, []byte(rc.Secret.Value()), client, rc.Timeout.Duration, o.Now).WithSources(rc.SourceIPs), o.OnResults)
		default:
			errs = append(errs, fmt.Errorf("relay %s: unknown kind %q (want local or agent)", rc.Name, rc.Kind))
		}
	}
	return out, errors.Join(errs...)
}

// agentClient is the HTTP client for one agent: its own transport, trusting
// the system roots plus the relay's ca_file.
func agentClient(cfg *config.Config, rc config.Relay) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if rc.CAFile != "" {
		pem, err := os.ReadFile(cfg.Resolve(rc.CAFile))
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", rc.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr}, nil
}

// RelaySpecs turns the configured relays into storage's form, for
// Store.SyncRelays.
func RelaySpecs(cfg *config.Config) []storage.RelaySpec {
	specs := make([]storage.RelaySpec, 0, len(cfg.Relays))
	for _, r := range cfg.Relays {
		kind := r.Kind
		if kind == "" {
			kind = KindLocal
		}
		specs = append(specs, storage.RelaySpec{Name: r.Name, Kind: kind, URL: r.URL, SourceIPs: r.SourceIPs})
	}
	return specs
}

// observe wraps r so that fn sees the results of its every probe; without
// fn, r is returned as it is. The wrapper keeps r's Info and Queue.
func observe(r Runner, fn func([]probe.Result)) Runner {
	if fn == nil {
		return r
	}
	o := observed{Runner: r, fn: fn}
	if iq, ok := r.(InfoQueuer); ok {
		oi := observedInfo{observed: o, InfoQueuer: iq}
		if lr, ok := r.(LogReader); ok {
			return observedInfoLog{observedInfo: oi, LogReader: lr}
		}
		return oi
	}
	return o
}

// observedInfoLog is observedInfo for a relay that also reads its mail
// log.
type observedInfoLog struct {
	observedInfo
	LogReader
}

// mailLogSource is [agent] mail_log as a Local reads it: "journald", or
// the path resolved against the configuration's folder; empty when unset.
func mailLogSource(cfg *config.Config) string {
	if cfg.Agent == nil || cfg.Agent.MailLog == "" {
		return ""
	}
	if cfg.Agent.MailLog == maillog.Journald {
		return maillog.Journald
	}
	return cfg.Resolve(cfg.Agent.MailLog)
}

// observed is a Runner whose probe results are handed to fn.
type observed struct {
	Runner
	fn func([]probe.Result)
}

// Probe runs the relay's probe and hands its results to fn.
func (o observed) Probe(ctx context.Context, opts Options) (probe.Report, error) {
	rep, err := o.Runner.Probe(ctx, opts)
	o.fn(rep.Results)
	return rep, err
}

// observedInfo is observed for a relay that also reports host facts and
// its queue.
type observedInfo struct {
	observed
	InfoQueuer
}

// ControlTargets are the configuration's control MX hosts ([target]
// control_mx), parsed; none when there are none.
func ControlTargets(cfg *config.Config) ([]probe.Target, error) {
	if cfg == nil || len(cfg.Target.ControlMX) == 0 {
		return nil, nil
	}
	t, err := probe.ParseTargets(cfg.Target.ControlMX)
	if err != nil {
		return nil, fmt.Errorf("target.control_mx: %w", err)
	}
	return t, nil
}
