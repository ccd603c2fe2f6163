// Command gmailtls probes STARTTLS toward Gmail's MX hosts from mail relays,
// keeps the history in SQLite, escalates from blip to incident and answers
// from Slack. main only parses flags and wires the packages together.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/gmailtls/gmailtls/commands"

	// Zone data for CRON_TZ= schedules, so the static image needs none.
	_ "time/tzdata"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

// env is what every subcommand gets from the process: streams and the
// environment, passed in so that tests can run subcommands in-process.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// subcommand is one entry of the command table.
type subcommand struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) int
}

// Exit codes shared by every subcommand: the CLI twins' (commands.CLI.Run).
const (
	exitOK          = commands.ExitOK
	exitFailed      = commands.ExitFailed
	exitUsage       = commands.ExitUsage
	exitInterrupted = commands.ExitInterrupted
)

// commandTable lists the subcommands: the CLI twin of every chat command
// with one (from the verb table), then the program's own.
func commandTable() map[string]subcommand {
	t := map[string]subcommand{
		"probe":       {"run a STARTTLS probe toward the target's MX hosts from this host or a relay", runProbe},
		"version":     {"print the version", runVersion},
		"config":      {"config check: validate a configuration file", runConfig},
		"serve":       {"run the Slack bot, the scheduler and the metrics endpoint", runServe},
		"console":     {"type bot commands in a terminal, without Slack", runConsole},
		"agent":       {"run the relay agent (HTTPS probe endpoint for the bot)", runAgent},
		"backup":      {"copy the live database consistently to a file", runBackup},
		"storage":     {"storage init: create or migrate the database; storage copy: move the history to another database", runStorage},
		"healthcheck": {"exit 0 if /healthz answers ok (for container HEALTHCHECK)", runHealthcheck},
	}
	for _, v := range commands.CLIVerbs() {
		t[string(v)] = subcommand{v.Explain(), runVerb(v)}
	}
	return t
}

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	return dispatch(ctx, e, os.Args[1:])
}

// dispatch runs the subcommand named by args[0]; "help NAME" is "NAME -h".
func dispatch(ctx context.Context, e *env, args []string) int {
	table := commandTable()
	if len(args) == 2 && args[0] == "help" {
		if _, ok := table[args[1]]; ok {
			args = []string{args[1], "-h"}
		}
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stderr, table)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := table[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "gmailtls: unknown command %q\n\n", args[0])
		usage(e.stderr, table)
		return exitUsage
	}
	return cmd.run(ctx, e, args[1:])
}

func usage(w io.Writer, table map[string]subcommand) {
	fmt.Fprintln(w, "usage: gmailtls <command> [flags] [arguments]")
	fmt.Fprintln(w, "\ncommands:")
	for _, n := range slices.Sorted(maps.Keys(table)) {
		fmt.Fprintf(w, "  %-12s %s\n", n, table[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'gmailtls <command> -h' for a command's flags. --config defaults to ./config.toml,\nelse $GMAILTLS_CONFIG.")
}

// onSIGHUP calls reload for every SIGHUP until ctx ends. It returns at
// once; the loop runs in its own goroutine.
func onSIGHUP(ctx context.Context, reload func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload()
			}
		}
	}()
}

func runVersion(_ context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if code, ok := svcParse(e, fs, "usage: gmailtls version\n\nPrints the version.\n", args); !ok {
		return code
	}
	fmt.Fprintf(e.stdout, "gmailtls %s\n", version)
	return exitOK
}
