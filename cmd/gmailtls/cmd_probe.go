package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/probe"
)

const probeUsage = `usage: gmailtls probe [flags]

Probes STARTTLS toward the MX hosts of a domain (default gmail.com), or a
pinned list, from this host: every MX host × address × source address, and
says which stage broke (connect, banner, ehlo, starttls, handshake, verify,
post_tls) and what to check first. No mail is sent.

Exit status: 0 when every probe succeeded, 1 when any failed, 2 on a usage
or configuration error.

Examples:
  gmailtls probe
  gmailtls probe --source 192.0.2.10 --source 192.0.2.11 --family 4
  gmailtls probe --mx 127.0.0.1:2525 --servername mx.test.example --ca-file ca.pem

Flags:
`

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// probeFlags are the parsed flags of gmailtls probe.
type probeFlags struct {
	domain, servername, caFile, family, config, relay string
	mx, sources                                       stringList
	timeout                                           time.Duration
	json, noRetry                                     bool
	set                                               map[string]bool // flags given on the command line
}

// runProbe runs `gmailtls probe`.
func runProbe(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), probeUsage)
		fs.PrintDefaults()
	}
	var f probeFlags
	fs.StringVar(&f.domain, "domain", probe.DefaultDomain, "`domain` whose MX set is probed")
	fs.Var(&f.mx, "mx", "pinned MX `host[:port]` instead of the MX lookup (repeatable)")
	fs.StringVar(&f.servername, "servername", "", "`name` for SNI and certificate verification (default: each MX host name)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM `file` of extra roots, trusted besides the system roots")
	fs.Var(&f.sources, "source", "source `IP` to probe from, each on its own (repeatable)")
	fs.StringVar(&f.family, "family", "any", "address family of the MX addresses: 4, 6 or any")
	fs.DurationVar(&f.timeout, "timeout", probe.DefaultTimeout, "timeout of each stage")
	fs.BoolVar(&f.json, "json", false, "print the report as one JSON object")
	fs.StringVar(&f.config, "config", "", "take [target] (and relays) from this configuration `file`; flags override it")
	fs.StringVar(&f.relay, "relay", "", "run as this configured `relay` (local relays only; default: local)")
	fs.BoolVar(&f.noRetry, "no-retry", false, "do not retry a reset or timed-out handshake with narrower ClientHellos")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "gmailtls probe: unexpected argument %q (pin MX hosts with --mx)\n", fs.Arg(0))
		return exitUsage
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })

	cfg, err := probeConfigFromFlags(e, f)
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls probe: %v\n", err)
		return exitUsage
	}
	cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := probe.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls probe: %v\n", err)
		return exitUsage
	}
	if err := writeReport(e.stdout, rep, f.json); err != nil {
		fmt.Fprintf(e.stderr, "gmailtls probe: writing the report: %v\n", err)
		return exitFailed
	}
	if !rep.OK() {
		return exitFailed
	}
	return exitOK
}

// writeReport prints rep as JSON (exactly the Report object) or as text.
func writeReport(w io.Writer, rep probe.Report, asJSON bool) error {
	if !asJSON {
		return probe.WriteText(w, rep)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// probeConfigFromFlags builds the probe configuration: the [target]
// section of --config when given, then every flag set on the command line
// on top of it.
func probeConfigFromFlags(e *env, f probeFlags) (probe.Config, error) {
	var (
		cfg  probe.Config
		file *config.Config
		err  error
	)
	if f.config != "" {
		file, err = config.Load(f.config, e.getenv)
		if err != nil {
			return cfg, err
		}
		cfg, err = probeConfigFromTarget(file.Target, file.Dir)
		if err != nil {
			return cfg, err
		}
	} else {
		cfg = probe.Config{Domain: probe.DefaultDomain, Timeout: probe.DefaultTimeout, Family: "any"}
	}

	relayName, relaySources, err := pickRelay(file, f.relay)
	if err != nil {
		return cfg, err
	}
	cfg.Relay = relayName
	if len(relaySources) > 0 {
		if cfg.Sources, err = probe.ParseSources(relaySources); err != nil {
			return cfg, fmt.Errorf("relay %s: source_ips: %w", relayName, err)
		}
	}

	if f.set["domain"] {
		cfg.Domain, cfg.MX = f.domain, nil
	}
	if f.set["mx"] {
		if cfg.MX, err = probe.ParseTargets(f.mx); err != nil {
			return cfg, fmt.Errorf("--mx: %w", err)
		}
	}
	if f.set["servername"] {
		cfg.ServerName = f.servername
	}
	if f.set["ca-file"] {
		if cfg.ExtraRoots, err = probe.LoadExtraRoots(f.caFile); err != nil {
			return cfg, fmt.Errorf("--ca-file: %w", err)
		}
	}
	if f.set["source"] {
		if cfg.Sources, err = probe.ParseSources(f.sources); err != nil {
			return cfg, fmt.Errorf("--source: %w", err)
		}
	}
	if f.set["family"] {
		if cfg.Family, err = probe.ParseFamily(f.family); err != nil {
			return cfg, fmt.Errorf("--family: %w", err)
		}
	}
	if f.set["timeout"] {
		if f.timeout <= 0 {
			return cfg, fmt.Errorf("--timeout %s: want a positive duration such as 20s", f.timeout)
		}
		cfg.Timeout = f.timeout
	}
	cfg.NoRetry = cfg.NoRetry || f.noRetry
	return cfg, nil
}

// pickRelay resolves --relay: empty or "local" is this host; another name
// must be a local relay of the configuration, whose source_ips it returns.
// Agent relays are not run from here (yet).
func pickRelay(file *config.Config, name string) (string, []string, error) {
	if name == "" {
		name = "local"
	}
	if file != nil {
		for _, r := range file.Relays {
			if r.Name != name {
				continue
			}
			if r.Kind != "" && r.Kind != "local" {
				return "", nil, fmt.Errorf("relay %s: unknown relay (it is an %s relay; gmailtls probe runs local relays only)", name, r.Kind)
			}
			return name, r.SourceIPs, nil
		}
	}
	if name == "local" {
		return name, nil, nil
	}
	return "", nil, fmt.Errorf("relay %s: unknown relay", name)
}

// probeConfigFromTarget turns a configuration's [target] section into a
// probe configuration; relative paths (ca_file) resolve against dir, the
// configuration file's folder. serve and agent can build on it.
func probeConfigFromTarget(t config.Target, dir string) (probe.Config, error) {
	cfg := probe.Config{
		Domain:      t.Domain,
		ServerName:  t.ServerName,
		HelloName:   t.HelloName,
		Timeout:     t.Timeout.Duration,
		Concurrency: t.Concurrency,
	}
	var errs []error
	var err error
	if cfg.Family, err = probe.ParseFamily(t.Family); err != nil {
		errs = append(errs, fmt.Errorf("[target] family: %w", err))
	}
	if len(t.MX) > 0 {
		if cfg.MX, err = probe.ParseTargets(t.MX); err != nil {
			errs = append(errs, fmt.Errorf("[target] mx: %w", err))
		}
	}
	if t.CAFile != "" {
		path := t.CAFile
		if !filepath.IsAbs(path) && dir != "" {
			path = filepath.Join(dir, path)
		}
		if cfg.ExtraRoots, err = probe.LoadExtraRoots(path); err != nil {
			errs = append(errs, fmt.Errorf("[target] ca_file: %w", err))
		}
	}
	return cfg, errors.Join(errs...)
}
