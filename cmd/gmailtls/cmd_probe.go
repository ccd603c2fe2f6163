package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

const probeUsage = `usage: gmailtls probe [flags]

Probes STARTTLS toward the MX hosts of a domain (default gmail.com), or a
pinned list, from this host: every MX host × address × source address, and
says which stage broke (connect, banner, ehlo, starttls, handshake, verify,
post_tls) and what to check first. No mail is sent.

When there is a configuration (--config, else ./config.toml, else
$GMAILTLS_CONFIG), its [target] is probed; flags override it. With --relay
NAME the probe runs from that configured relay: a local relay from this
host with its source_ips, an agent relay on the relay itself through its
gmailtls agent (the agent probes its own configured target). --record
stores the run in the configuration's database and re-evaluates
escalation, as a probe from Slack would (gmailtls check NAME does both).

Exit status: 0 when every probe succeeded, 1 when any failed, 2 on a usage
or configuration error, 130 when interrupted (nothing is recorded).

Examples:
  gmailtls probe
  gmailtls probe --source 192.0.2.10 --source 192.0.2.11 --family 4
  gmailtls probe --mx 127.0.0.1:2525 --servername mx.test.example --ca-file ca.pem
  gmailtls probe --relay relay-2 --record

Flags:
`

// probeFlags are the parsed flags of gmailtls probe.
type probeFlags struct {
	domain, servername, caFile, family, relay string
	mx, sources                               []string
	timeout                                   time.Duration
	json, noRetry, record                     bool
	set                                       map[string]bool // flags given on the command line
	config                                    *configFlag
}

// runProbe runs `gmailtls probe`.
func runProbe(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	var f probeFlags
	f.config = addConfigFlag(fs)
	fs.StringVar(&f.domain, "domain", probe.DefaultDomain, "`domain` whose MX set is probed")
	fs.Func("mx", "pinned MX `host[:port]` instead of the MX lookup (repeatable)", appendTo(&f.mx))
	fs.StringVar(&f.servername, "servername", "", "`name` for SNI and certificate verification (default: each MX host name)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM `file` of extra roots, trusted besides the system roots")
	fs.Func("source", "source `IP` to probe from, each on its own (repeatable)", appendTo(&f.sources))
	fs.StringVar(&f.family, "family", "any", "address family of the MX addresses: 4, 6 or any")
	fs.DurationVar(&f.timeout, "timeout", probe.DefaultTimeout, "timeout of each stage")
	fs.BoolVar(&f.json, "json", false, "print the report as one JSON object")
	fs.StringVar(&f.relay, "relay", "", "run from this configured `relay` (local, or an agent on the relay; default: local)")
	fs.BoolVar(&f.record, "record", false, "store the results in the configuration's database and re-evaluate escalation")
	fs.BoolVar(&f.noRetry, "no-retry", false, "do not retry a reset or timed-out handshake with narrower ClientHellos")
	if code, ok := svcParse(e, fs, probeUsage, args); !ok {
		return code
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })

	cfg, file, err := probeConfigFromFlags(e, f)
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls probe: %v\n", err)
		return exitUsage
	}
	cfg.Logger = svcLogger(e)
	rc, viaAgent := config.Relay{}, false
	if file != nil {
		rc, viaAgent = file.RelayByName(f.relay)
		viaAgent = viaAgent && rc.Kind == relay.KindAgent
	}
	// An agent probes its own target: only --mx and --family given here
	// apply to it.
	if !viaAgent || f.set["mx"] && f.set["family"] {
		src := "family " + cfg.Family + " of the configuration"
		if f.set["family"] {
			src = "--family " + cfg.Family
		}
		if err := probe.CheckPinnedFamily(cfg.MX, cfg.Family, src); err != nil {
			fmt.Fprintf(e.stderr, "gmailtls probe: %v\n", err)
			return exitUsage
		}
	}
	var (
		rep  probe.Report
		opts probe.TextOptions
		rec  *svc
	)
	if f.record {
		// The database is opened first: a missing or empty one is an
		// error before any probe runs, not after.
		var code int
		if rec, code = svcOpen(ctx, e, f.config, svcOptions{mode: storage.ModeExisting}); rec == nil {
			return code
		}
		defer rec.store.Close()
	}
	if viaAgent {
		rep, err = probeThroughAgent(ctx, file, rc, f, cfg.Logger)
	} else {
		rep, err = probe.Run(ctx, cfg)
		opts.Pinned = cfg.MX
	}
	if ctx.Err() != nil {
		// Interrupted: what the probe saw is no result; nothing is shown
		// or recorded.
		fmt.Fprintln(e.stderr, "interrupted")
		return exitInterrupted
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls probe: %v\n", err)
		return exitUsage
	}
	if f.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = probe.WriteTextOptions(e.stdout, rep, opts)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls probe: writing the report: %v\n", err)
		return exitFailed
	}
	if rec != nil {
		if code := recordReport(ctx, e, rec, rep); code != exitOK {
			return code
		}
	}
	if !rep.OK() {
		return exitFailed
	}
	return exitOK
}

// appendTo is a repeatable flag's setter.
func appendTo(list *[]string) func(string) error {
	return func(s string) error {
		*list = append(*list, s)
		return nil
	}
}

// probeThroughAgent asks a relay's agent to probe. The agent probes its own
// configured target, so flags that would change the target are refused.
func probeThroughAgent(ctx context.Context, file *config.Config, rc config.Relay, f probeFlags, log *slog.Logger) (probe.Report, error) {
	for _, fl := range []string{"domain", "servername", "ca-file", "source"} {
		if f.set[fl] {
			return probe.Report{}, fmt.Errorf("--%s cannot be used with the agent relay %s: the agent probes its own configured target (only --mx, to pick some of its MX hosts, --family and --no-retry apply)", fl, rc.Name)
		}
	}
	if err := file.RequireRelaySecrets(); err != nil {
		return probe.Report{}, err
	}
	runners, err := relay.Runners(file, relay.RunnerOptions{Logger: log, Version: version})
	if err != nil {
		return probe.Report{}, err
	}
	opts := relay.Options{MX: f.mx, NoRetry: f.noRetry, MTAStack: true}
	if f.set["family"] {
		opts.Family = f.family
	}
	return runners[rc.Name].Probe(ctx, opts) // rc is a relay of file
}

// recordReport stores rep in the configuration's database (opened before
// the probe) and re-evaluates escalation, printing the outcome on stderr
// so that stdout stays the report.
func recordReport(ctx context.Context, e *env, s *svc, rep probe.Report) int {
	run := storage.Run{Relay: rep.Relay, Trigger: message.SourceCLI, RequestedBy: cmp.Or(e.getenv("USER"), "cli"), StartedAt: rep.StartedAt}
	runID, ids, err := s.store.RecordRun(ctx, run, rep.Results)
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls probe: recording the run: %v\n", err)
		return exitFailed
	}
	ev, err := s.mon.Evaluate(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls probe: re-evaluating escalation: %v\n", err)
		return exitFailed
	}
	st, _ := ev.Assessment.Relay(rep.Relay)
	fmt.Fprintf(e.stderr, "recorded run %d (%d results) in %s; %s is at level %s", runID, len(ids), s.store.Path(), rep.Relay, escalation.Max(st.Level))
	for _, c := range ev.Changes {
		fmt.Fprintf(e.stderr, "; %s: %s → %s", cmp.Or(c.Relay, "all relays"), c.From, c.To)
	}
	fmt.Fprintln(e.stderr)
	return exitOK
}

// probeConfigFromFlags builds the probe configuration: the [target]
// section of the configuration when there is one (--config, ./config.toml,
// $GMAILTLS_CONFIG), then every flag set on the command line on top of it.
func probeConfigFromFlags(e *env, f probeFlags) (probe.Config, *config.Config, error) {
	var (
		cfg  probe.Config
		file *config.Config
		err  error
	)
	if path, found := f.config.resolve(e); found {
		if file, err = config.LoadWithoutSecrets(path, e.getenv); err != nil {
			return cfg, file, err
		}
	}
	if cfg, err = relay.ProbeConfig(file, relay.RunnerOptions{}); err != nil {
		return cfg, file, err
	}

	relayName, relaySources, err := pickRelay(file, f.relay)
	if err != nil {
		return cfg, file, err
	}
	cfg.Relay = relayName
	if len(relaySources) > 0 {
		if cfg.Sources, err = probe.ParseSources(relaySources); err != nil {
			return cfg, file, fmt.Errorf("relay %s: source_ips: %w", relayName, err)
		}
	}

	if f.set["domain"] {
		cfg.Domain, cfg.MX = f.domain, nil
	}
	if f.set["mx"] {
		if cfg.MX, err = probe.ParseTargets(f.mx); err != nil {
			return cfg, file, fmt.Errorf("--mx: %w", err)
		}
	}
	if f.set["servername"] {
		cfg.ServerName = f.servername
	}
	if f.set["ca-file"] {
		if cfg.ExtraRoots, err = probe.LoadExtraRoots(f.caFile); err != nil {
			return cfg, file, fmt.Errorf("--ca-file: %w", err)
		}
	}
	if f.set["source"] {
		if cfg.Sources, err = probe.ParseSources(f.sources); err != nil {
			return cfg, file, fmt.Errorf("--source: %w", err)
		}
	}
	if f.set["family"] {
		if cfg.Family, err = probe.ParseFamily(f.family); err != nil {
			return cfg, file, fmt.Errorf("--family: %w", err)
		}
	}
	if f.set["timeout"] {
		if f.timeout <= 0 {
			return cfg, file, fmt.Errorf("--timeout %s: want a positive duration such as 20s", f.timeout)
		}
		cfg.Timeout = f.timeout
	}
	cfg.NoRetry = cfg.NoRetry || f.noRetry
	return cfg, file, nil
}

// pickRelay resolves --relay: empty or "local" is this host; another name
// must be a relay of the configuration; for a local relay its source_ips
// are returned (an agent relay probes on the relay itself).
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
