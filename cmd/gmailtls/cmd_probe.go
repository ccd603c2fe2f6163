package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"

	"github.com/gmailtls/gmailtls/config"
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

// runProbe runs `gmailtls probe`.
func runProbe(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	var (
		req            relay.OneOffRequest
		asJSON, record bool
	)
	conf := addConfigFlag(fs)
	fs.StringVar(&req.Domain, "domain", probe.DefaultDomain, "`domain` whose MX set is probed")
	fs.Func("mx", "pinned MX `host[:port]` instead of the MX lookup (repeatable)", appendTo(&req.MX))
	fs.StringVar(&req.ServerName, "servername", "", "`name` for SNI and certificate verification (default: each MX host name)")
	fs.StringVar(&req.CAFile, "ca-file", "", "PEM `file` of extra roots, trusted besides the system roots")
	fs.Func("source", "source `IP` to probe from, each on its own (repeatable)", appendTo(&req.Sources))
	fs.StringVar(&req.Family, "family", "any", "address family of the MX addresses: 4, 6 or any")
	fs.DurationVar(&req.Timeout, "timeout", probe.DefaultTimeout, "timeout of each stage")
	fs.BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	fs.StringVar(&req.Relay, "relay", "", "run from this configured `relay` (local, or an agent on the relay; default: local)")
	fs.BoolVar(&record, "record", false, "store the results in the configuration's database and re-evaluate escalation")
	fs.BoolVar(&req.NoRetry, "no-retry", false, "do not retry a reset or timed-out handshake with narrower ClientHellos")
	if code, ok := svcParse(e, fs, probeUsage, args); !ok {
		return code
	}
	req.Given = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { req.Given[fl.Name] = true })
	req.Logger, req.Version = svcLogger(e), version

	var file *config.Config
	var err error
	if path, found := conf.resolve(e); found {
		file, err = config.LoadWithoutSecrets(path, e.getenv)
	}
	var one *relay.OneOff
	if err == nil {
		one, err = relay.PrepareOneOff(file, req)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls probe: %v\n", err)
		return exitUsage
	}
	var rec *svc
	if record {
		// The database is opened first: a missing or empty one is an
		// error before any probe runs, not after.
		var code int
		if rec, code = svcOpen(ctx, e, conf, svcOptions{mode: storage.ModeExisting}); rec == nil {
			return code
		}
		defer rec.store.Close()
	}
	rep, opts, err := one.Run(ctx)
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
	if asJSON {
		err = probe.WriteJSON(e.stdout, rep)
	} else {
		err = probe.WriteTextOptions(e.stdout, rep, opts)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls probe: writing the report: %v\n", err)
		return exitFailed
	}
	if rec != nil {
		// The outcome goes to stderr, so that stdout stays the report.
		r, err := rec.mon.Record(ctx, rep, cmp.Or(e.getenv("USER"), "cli"))
		if err != nil {
			fmt.Fprintf(e.stderr, "gmailtls probe: %v\n", err)
			return exitFailed
		}
		fmt.Fprint(e.stderr, r.Summary(rep.Relay, rec.store.Path()))
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
