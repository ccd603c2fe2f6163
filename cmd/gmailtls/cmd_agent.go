package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/logging"
	"github.com/gmailtls/gmailtls/relay"
)

// runAgent runs the relay agent: `gmailtls agent --config agent.toml`
// (relay.AgentDaemon) until ctx ends; SIGHUP re-reads the secrets.
func runAgent(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	path := fs.String("config", "agent.toml", "the agent's configuration `file` ([target] and [agent])")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: gmailtls agent [--config agent.toml]")
		fmt.Fprintln(e.stderr, "\nServes POST /v1/probe, GET /v1/info, GET /v1/queue (signed) and GET /healthz to the bot.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "gmailtls agent: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return exitUsage
	}
	cfg, err := config.LoadAgent(*path, e.getenv)
	if err == nil && cfg.Agent == nil {
		err = fmt.Errorf("%s has no [agent] table", *path)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls agent: %v\n", err)
		return exitUsage
	}
	logger := logging.New(e.stderr, cfg.Log.Format, cfg.Log.Level)
	a, err := relay.NewAgentDaemon(cfg, logger, version)
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls agent: %v\n", err)
		return exitUsage
	}
	defer a.Close()
	onSIGHUP(ctx, func() {
		// A file that no longer loads, or has no secret, changes nothing.
		cfg, err := config.LoadAgent(*path, e.getenv)
		if err == nil {
			err = a.ReloadSecrets(cfg)
		}
		if err != nil {
			logger.Error("agent: reload failed, keeping the current secrets", "config", *path, "error", err.Error())
		}
	})
	if err := a.Serve(ctx); err != nil {
		logger.Error("agent stopped", "error", err.Error())
		return exitFailed
	}
	return exitOK
}
