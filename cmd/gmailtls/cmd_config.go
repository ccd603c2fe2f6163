package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/gmailtls/gmailtls/config"
)

const configUsage = `usage: gmailtls config check [--config FILE] [--agent]

Validates a configuration file and prints a summary. Every problem is
printed on its own line as FILE:LINE: KEY: what is wrong; the exit status is
2 when there is any, 0 otherwise.

With --agent it checks an agent's file (gmailtls agent --config FILE): it
needs [agent] and the agent's secret, not [slack].

`

// runConfig runs "gmailtls config check".
func runConfig(_ context.Context, e *env, args []string) int {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(e.stderr, configUsage)
		return exitOK
	}
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 {
			fmt.Fprintf(e.stderr, "gmailtls config: unknown subcommand %q\n\n", args[0])
		}
		fmt.Fprint(e.stderr, configUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	cf := addConfigFlag(fs)
	agent := fs.Bool("agent", false, "check an agent's configuration file")
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, configUsage); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "gmailtls config check: unexpected argument %q (give the file with --config)\n\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	load := config.Load
	if *agent {
		load = config.LoadAgent
	}
	path, _ := cf.resolve(e)
	cfg, err := load(path, e.getenv)
	if err != nil {
		for _, p := range config.Problems(err) {
			fmt.Fprintln(e.stderr, p)
		}
		return exitUsage
	}
	if *agent {
		printAgentSummary(e.stdout, cfg)
	} else {
		printConfigSummary(e.stdout, cfg)
	}
	return exitOK
}

// targetSummary is "gmail.com (MX from DNS)" or the pinned list.
func targetSummary(t config.Target) string {
	if len(t.MX) == 0 {
		return t.Domain + " (MX from DNS)"
	}
	return fmt.Sprintf("%s (MX pinned: %s)", t.Domain, strings.Join(t.MX, ", "))
}

func printConfigSummary(w io.Writer, cfg *config.Config) {
	// The first line's wording is fixed ("config OK: N relays, target ..."):
	// scripts match it.
	fmt.Fprintf(w, "config OK: %d relays, target %s\n", len(cfg.Relays), targetSummary(cfg.Target))
	var relays []string
	for _, r := range cfg.Relays {
		s := r.Name + " (" + r.Kind
		switch {
		case r.Kind == "agent":
			s += " " + r.URL
		case len(r.SourceIPs) > 0:
			s += ", from " + strings.Join(r.SourceIPs, ", ")
		}
		relays = append(relays, s+")")
	}
	fmt.Fprintf(w, "  relays: %s\n", strings.Join(relays, "; "))
	fmt.Fprintf(w, "  storage: %s\n", cfg.StoragePath())
	if s := cfg.Probing.Schedule; s == "" || s == "off" {
		fmt.Fprintln(w, "  probing: off")
	} else {
		fmt.Fprintf(w, "  probing: %s\n", s)
	}
	if len(cfg.Reports) == 0 {
		fmt.Fprintln(w, "  reports: none")
	}
	for i, r := range cfg.Reports {
		fmt.Fprintf(w, "  report[%d]: %q to %s, window %s\n", i, r.Cron, r.Channel, r.Window)
	}
	if cfg.Alerts.Channel == "" {
		fmt.Fprintln(w, "  alerts: not posted (alerts.channel is empty)")
	} else {
		fmt.Fprintf(w, "  alerts: %s, reminders every %s\n", cfg.Alerts.Channel, cfg.Alerts.RemindEvery)
	}
	if cfg.HTTP.Listen == "off" {
		fmt.Fprintln(w, "  http: off")
	} else {
		fmt.Fprintf(w, "  http: %s (/metrics, /healthz, /readyz)\n", cfg.HTTP.Listen)
	}
	if err := cfg.RequireSlack(); err != nil {
		fmt.Fprintf(w, "  slack: %s mode; serve would not start until this is fixed:\n", cfg.Slack.Mode)
		for _, p := range config.Problems(err) {
			fmt.Fprintf(w, "    %s\n", p)
		}
	} else {
		fmt.Fprintf(w, "  slack: %s mode, tokens present\n", cfg.Slack.Mode)
	}
}

func printAgentSummary(w io.Writer, cfg *config.Config) {
	a := cfg.Agent
	mode := "HTTPS"
	if a.TLSCert == "" {
		mode = "plain HTTP, loopback only"
	}
	fmt.Fprintf(w, "agent config OK: listen %s (%s), target %s\n", a.Listen, mode, targetSummary(cfg.Target))
	secret := "secret_env " + a.SecretEnv
	if a.SecretFile != "" {
		secret = "secret_file " + cfg.Resolve(a.SecretFile)
	}
	if a.PreviousSecret != "" {
		secret += ", and a previous secret (rotation in progress)"
	}
	fmt.Fprintf(w, "  secret: from %s\n", secret)
	fmt.Fprintf(w, "  max_probes: %d, postqueue: %s, mta_stack: %t\n", a.MaxProbes, a.Postqueue, a.MTAStack)
}
