package relay

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/probe"
)

// OneOffRequest is a probe asked for once, outside the bot (`gmailtls
// probe`): the configuration's [target], then what was given on top of it.
// Only the fields named in Given apply, so that an option given with its
// default value still overrides the configuration.
type OneOffRequest struct {
	// Relay names the configured relay to probe from ("" or "local": this
	// host).
	Relay                              string
	Domain, ServerName, CAFile, Family string
	MX, Sources                        []string
	Timeout                            time.Duration
	// NoRetry applies whether given or not: it only ever narrows.
	NoRetry bool
	// Given holds the names of the options given: domain, mx, servername,
	// ca-file, source, family, timeout.
	Given map[string]bool
	// Version is what a local relay reports as its gmailtls version.
	Version string
	Logger  *slog.Logger
}

// OneOff is a prepared one-off probe: from this host, or through a
// configured agent relay.
type OneOff struct {
	// Config is the probe configuration of a probe from this host.
	Config probe.Config
	req    OneOffRequest
	file   *config.Config
	agent  *config.Relay // nil: from this host
}

// PrepareOneOff checks a one-off probe against file (nil: no configuration)
// and builds its probe configuration; its errors are the asker's mistakes.
func PrepareOneOff(file *config.Config, req OneOffRequest) (*OneOff, error) {
	cfg, err := oneOffConfig(file, req)
	if err != nil {
		return nil, err
	}
	cfg.Logger = req.Logger
	o := &OneOff{Config: cfg, req: req, file: file}
	if file != nil {
		if rc, ok := file.RelayByName(req.Relay); ok && rc.Kind == KindAgent {
			o.agent = &rc
		}
	}
	// An agent probes its own target: only --mx and --family given here
	// apply to it.
	if o.agent == nil || req.Given["mx"] && req.Given["family"] {
		src := "family " + cfg.Family + " of the configuration"
		if req.Given["family"] {
			src = "--family " + cfg.Family
		}
		if err := probe.CheckPinnedFamily(cfg.MX, cfg.Family, src); err != nil {
			return nil, err
		}
	}
	if o.agent != nil {
		for _, fl := range []string{"domain", "servername", "ca-file", "source"} {
			if req.Given[fl] {
				return nil, fmt.Errorf("--%s cannot be used with the agent relay %s: the agent probes its own configured target (only --mx, to pick some of its MX hosts, --family and --no-retry apply)", fl, o.agent.Name)
			}
		}
	}
	return o, nil
}

// Run runs the probe; the text report of a probe from this host names the
// pinned MX hosts it was given (TextOptions).
func (o *OneOff) Run(ctx context.Context) (probe.Report, probe.TextOptions, error) {
	if o.agent == nil {
		rep, err := probe.Run(ctx, o.Config)
		return rep, probe.TextOptions{Pinned: o.Config.MX}, err
	}
	if err := o.file.RequireRelaySecrets(); err != nil {
		return probe.Report{}, probe.TextOptions{}, err
	}
	runners, err := Runners(o.file, RunnerOptions{Logger: o.req.Logger, Version: o.req.Version})
	if err != nil {
		return probe.Report{}, probe.TextOptions{}, err
	}
	opts := Options{MX: o.req.MX, NoRetry: o.req.NoRetry, MTAStack: true}
	if o.req.Given["family"] {
		opts.Family = o.req.Family
	}
	rep, err := runners[o.agent.Name].Probe(ctx, opts) // a relay of o.file
	return rep, probe.TextOptions{}, err
}

// oneOffConfig builds the probe configuration: the [target] section of
// file when there is one, then every option given on top of it.
func oneOffConfig(file *config.Config, req OneOffRequest) (probe.Config, error) {
	cfg, err := ProbeConfig(file, RunnerOptions{})
	if err != nil {
		return cfg, err
	}
	relayName, relaySources, err := pickRelay(file, req.Relay)
	if err != nil {
		return cfg, err
	}
	cfg.Relay = relayName
	if len(relaySources) > 0 {
		if cfg.Sources, err = probe.ParseSources(relaySources); err != nil {
			return cfg, fmt.Errorf("relay %s: source_ips: %w", relayName, err)
		}
	}
	given := req.Given
	if given["domain"] {
		cfg.Domain, cfg.MX = req.Domain, nil
	}
	if given["mx"] {
		if cfg.MX, err = probe.ParseTargets(req.MX); err != nil {
			return cfg, fmt.Errorf("--mx: %w", err)
		}
	}
	if given["servername"] {
		cfg.ServerName = req.ServerName
	}
	if given["ca-file"] {
		if cfg.ExtraRoots, err = probe.LoadExtraRoots(req.CAFile); err != nil {
			return cfg, fmt.Errorf("--ca-file: %w", err)
		}
	}
	if given["source"] {
		if cfg.Sources, err = probe.ParseSources(req.Sources); err != nil {
			return cfg, fmt.Errorf("--source: %w", err)
		}
	}
	if given["family"] {
		if cfg.Family, err = probe.ParseFamily(req.Family); err != nil {
			return cfg, fmt.Errorf("--family: %w", err)
		}
	}
	if given["timeout"] {
		if req.Timeout <= 0 {
			return cfg, fmt.Errorf("--timeout %s: want a positive duration such as 20s", req.Timeout)
		}
		cfg.Timeout = req.Timeout
	}
	cfg.NoRetry = cfg.NoRetry || req.NoRetry
	return cfg, nil
}

// pickRelay resolves a one-off probe's relay: empty or "local" is this
// host; another name must be a relay of the configuration; for a local
// relay its source_ips are returned (an agent relay probes on the relay
// itself).
func pickRelay(file *config.Config, name string) (string, []string, error) {
	name = cmp.Or(name, "local")
	var names []string
	if file != nil {
		if r, ok := file.RelayByName(name); ok {
			return name, r.SourceIPs, nil
		}
		for _, r := range file.Relays {
			names = append(names, r.Name)
		}
	}
	switch {
	case name == "local":
		return name, nil, nil
	case file == nil:
		return "", nil, fmt.Errorf("there is no relay %q: no configuration names any (give --config, or put one in ./%s or $%s)", name, config.DefaultFile, config.EnvFile)
	}
	return "", nil, fmt.Errorf("there is no relay %q; the relays are %s", name, strings.Join(names, ", "))
}
