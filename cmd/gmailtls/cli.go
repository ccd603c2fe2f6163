package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"

	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/logging"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/mtasts"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// configFlag is --config, as every subcommand takes it.
type configFlag struct{ path string }

func addConfigFlag(fs *flag.FlagSet) *configFlag {
	c := &configFlag{}
	fs.StringVar(&c.path, "config", "", "the configuration `file` (default ./"+config.DefaultFile+", else $"+config.EnvFile+")")
	return c
}

// resolve names the configuration file: --config, else ./config.toml,
// else $GMAILTLS_CONFIG (config.Find).
func (c *configFlag) resolve(e *env) (path string, found bool) {
	return config.Find(c.path, e.getenv)
}

// load loads the configuration. Without one (no --config, no
// ./config.toml, no $GMAILTLS_CONFIG) the defaults are used, one local
// relay probing gmail.com, with a note on stderr. Agent relays' secrets
// are not required here: only what talks to agents needs them
// (svcOptions.agents).
func (c *configFlag) load(e *env) (*config.Config, error) {
	path, found := c.resolve(e)
	if !found {
		fmt.Fprintf(e.stderr, "gmailtls: no ./%s and no $%s; using the built-in defaults (one local relay, target gmail.com, database %s). Give a file with --config.\n", config.DefaultFile, config.EnvFile, config.Default().StoragePath())
		return config.Default(), nil
	}
	return config.LoadWithoutSecrets(path, e.getenv)
}

// svc is what the CLI twins and the console share: the database, the
// monitor and the command handler over them.
type svc struct {
	store *storage.Store
	mon   *monitor.Monitor
	h     *commands.Handler
}

// svcLogger logs warnings and errors to stderr: the CLI's stdout is for
// its answer.
func svcLogger(e *env) *slog.Logger {
	return logging.New(e.stderr, "text", "warn")
}

// svcOptions say what a command does with the database and the relays.
type svcOptions struct {
	// mode: storage.ModeReadOnly for the commands that only look
	// (status, history, relays, evidence, report); storage.ModeExisting
	// for those that record; storage.ModeCreate only for the console's
	// demo.
	mode storage.Mode
	// agents: the command talks to the relays (probes, or asks for a
	// relay's host facts and queue), so agent relays' secrets are
	// required and the runners are built.
	agents bool
}

// verbOptions is how the CLI twin of v opens the database: to record
// when the verb writes, read-only otherwise; with the relays' runners when
// it talks to them.
func verbOptions(v commands.Verb) svcOptions {
	o := svcOptions{mode: storage.ModeReadOnly, agents: v.AsksRelays()}
	if v.Writes() {
		o.mode = storage.ModeExisting
	}
	return o
}

// svcOpen loads the configuration, opens the database as o says, syncs
// the configured relays into it (unless read-only) and builds the
// handler. On failure it prints the reason and returns the exit code: 2
// for a configuration problem or a missing, empty or foreign database.
func svcOpen(ctx context.Context, e *env, cf *configFlag, o svcOptions) (*svc, int) {
	cfg, err := cf.load(e)
	if err == nil && o.agents {
		err = cfg.RequireRelaySecrets()
	}
	if err != nil {
		config.WriteProblems(e.stderr, err)
		return nil, exitUsage
	}
	log := svcLogger(e)
	// A command that does not talk to relays knows them by name and kind
	// only: no runner, so no agent secret and no connection.
	runners := relay.NamesOnly(cfg)
	if o.agents {
		if runners, err = relay.Runners(cfg, relay.RunnerOptions{Logger: log, Version: version}); err != nil {
			fmt.Fprintf(e.stderr, "gmailtls: %v\n", err)
			return nil, exitUsage
		}
	}
	st, err := openStore(ctx, cfg, storage.Options{Logger: log, Mode: o.mode})
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls: %v\n", err)
		return nil, storeExit(err)
	}
	if o.mode != storage.ModeReadOnly {
		if err := st.SyncRelays(ctx, relay.RelaySpecs(cfg)); err != nil {
			st.Close()
			fmt.Fprintf(e.stderr, "gmailtls: %v\n", err)
			return nil, exitFailed
		}
	}
	mon := monitor.New(monitor.Deps{Config: cfg, Store: st, Runners: runners, Logger: log, MTASTS: &mtasts.Client{}})
	h := commands.New(commands.Deps{Service: mon, Logger: log})
	return &svc{store: st, mon: mon, h: h}, exitOK
}

// storeExit is the exit code for a failed storage.Open: 2 when there is
// no usable database at the configured path (a typo, an empty or foreign
// file, a schema a read-only command will not migrate), 1 otherwise.
func storeExit(err error) int {
	if errors.Is(err, storage.ErrNoDatabase) || errors.Is(err, storage.ErrNeedsMigration) || errors.Is(err, storage.ErrTooNew) {
		return exitUsage
	}
	return exitFailed
}

// svcParse parses a subcommand's flags; it returns false with the exit
// code when the command must stop: -h (usage on stderr, 0), bad flags or
// stray arguments (2).
func svcParse(e *env, fs *flag.FlagSet, usage string, args []string) (int, bool) {
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err), false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "gmailtls %s: unexpected argument %q; 'gmailtls %s -h' lists the flags\n", fs.Name(), fs.Arg(0), fs.Name())
		return exitUsage, false
	}
	return exitOK, true
}

// flagExit is the exit status of a flag parse that failed: 0 for -h.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// runVerb is the CLI twin of a chat command: the same arguments, the same
// handler (a request from the command line), its answer as plain text or,
// with --json, as the data behind it (commands.CLI.Run).
func runVerb(v commands.Verb) func(context.Context, *env, []string) int {
	return func(ctx context.Context, e *env, args []string) int {
		cli, _ := commands.NewCLI(v, e.stderr)
		cf := addConfigFlag(cli.Flags)
		cmd, err := cli.Parse(args)
		if err != nil {
			return flagExit(err)
		}
		s, code := svcOpen(ctx, e, cf, verbOptions(v))
		if s == nil {
			return code
		}
		defer s.store.Close()
		req := message.Request{UserName: cmp.Or(e.getenv("USER"), "cli"), Source: message.SourceCLI}
		stdout, stderr := e.stdout, e.stderr
		if cmd.Verb == commands.VerbCheck && !cli.JSON {
			// Each MX address as it answers, not 20 s of silence; the
			// counter ends before the answer or the error is printed.
			var stop func()
			ctx, stop = commands.CheckProgress(ctx, e.stdout, s.mon.Snapshot(), cmd.Relay)
			defer stop()
			once := &sync.Once{}
			stdout, stderr = commands.StopBeforeWrite{W: e.stdout, Once: once, Stop: stop}, commands.StopBeforeWrite{W: e.stderr, Once: once, Stop: stop}
		}
		return cli.Run(ctx, s.h, req, cmd, stdout, stderr)
	}
}
