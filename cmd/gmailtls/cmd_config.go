package main

import (
	"context"
	"flag"
	"fmt"

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
	load, write := config.Load, config.WriteSummary
	if *agent {
		load, write = config.LoadAgent, config.WriteAgentSummary
	}
	path, _ := cf.resolve(e)
	cfg, err := load(path, e.getenv)
	if err != nil {
		config.WriteProblems(e.stderr, err)
		return exitUsage
	}
	write(e.stdout, cfg)
	return exitOK
}
