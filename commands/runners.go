package commands

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
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
}

// ProbeConfig builds the probe configuration of the [target] section:
// domain or pinned MX list, servername, extra roots, family, timeout, EHLO
// name and concurrency.
func ProbeConfig(cfg *config.Config, o RunnerOptions) (probe.Config, error) {
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

// Runners builds a relay.Runner for every configured relay: local relays
// probe from this host (bound to each source IP), agent relays ask their
// agent over signed HTTP(S), trusting the relay's ca_file.
func Runners(cfg *config.Config, o RunnerOptions) (map[string]relay.Runner, error) {
	base, err := ProbeConfig(cfg, o)
	if err != nil {
		return nil, err
	}
	out := map[string]relay.Runner{}
	var errs []error
	for _, rc := range cfg.Relays {
		switch rc.Kind {
		case "", relay.KindLocal:
			srcs, err := probe.ParseSources(rc.SourceIPs)
			if err != nil {
				errs = append(errs, fmt.Errorf("relay %s: %w", rc.Name, err))
				continue
			}
			l := relay.NewLocal(rc.Name, base, srcs)
			l.Version = o.Version
			l.Logger = o.Logger
			l.Now = o.Now
			if cfg.Target.CAFile != "" {
				l.CAFile = cfg.Resolve(cfg.Target.CAFile)
			}
			out[rc.Name] = l
		case relay.KindAgent:
			client, err := agentClient(cfg, rc)
			if err != nil {
				errs = append(errs, fmt.Errorf("relay %s: %w", rc.Name, err))
				continue
			}
			out[rc.Name] = relay.NewAgent(rc.Name, rc.URL, []byte(rc.Secret.Value()), client, rc.Timeout.Duration, o.Now).WithSources(rc.SourceIPs)
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
			kind = relay.KindLocal
		}
		specs = append(specs, storage.RelaySpec{Name: r.Name, Kind: kind, URL: r.URL, SourceIPs: r.SourceIPs})
	}
	return specs
}
