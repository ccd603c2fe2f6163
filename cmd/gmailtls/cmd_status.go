package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"

	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/logging"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// defaultConfigPath is used when --config is not given.
const defaultConfigPath = "config.toml"

// svc is what status, history, relays and console share: the
// configuration, the database and the command handler over them.
type svc struct {
	cfg   *config.Config
	store *storage.Store
	mon   *monitor.Monitor
	h     *commands.Handler
	log   *slog.Logger
}

// Close closes the database.
func (s *svc) Close() error { return s.store.Close() }

// svcFlags registers --config on fs and returns a function telling whether
// it was given explicitly.
func svcFlags(fs *flag.FlagSet) (path *string, explicit func() bool) {
	path = fs.String("config", defaultConfigPath, "the configuration `file`")
	return path, func() bool {
		given := false
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "config" {
				given = true
			}
		})
		return given
	}
}

// svcLoadConfig loads the configuration. Without --config and without a
// config.toml in the working directory, the defaults are used (one local
// relay probing gmail.com) with a note on stderr.
func svcLoadConfig(e *env, path string, explicit bool) (*config.Config, error) {
	if !explicit {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(e.stderr, "gmailtls: no %s here; using the built-in defaults (one local relay, target gmail.com, database %s). Give a file with --config.\n", path, config.Default().StoragePath())
			return config.Default(), nil
		}
	}
	return config.Load(path, e.getenv)
}

// svcLogger logs warnings and errors to stderr: the CLI's stdout is for
// its answer.
func svcLogger(e *env) *slog.Logger {
	return logging.New(e.stderr, "text", "warn")
}

// svcOpen loads the configuration, opens the database (creating it if
// needed), syncs the configured relays into it and builds the handler. On
// failure it prints the reason and returns the exit code.
func svcOpen(ctx context.Context, e *env, path string, explicit bool) (*svc, int) {
	cfg, err := svcLoadConfig(e, path, explicit)
	if err != nil {
		for _, p := range config.Problems(err) {
			fmt.Fprintln(e.stderr, p)
		}
		return nil, exitUsage
	}
	log := svcLogger(e)
	runners, err := relay.Runners(cfg, relay.RunnerOptions{Logger: log, Version: version})
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls: %v\n", err)
		return nil, exitUsage
	}
	st, err := storage.Open(ctx, cfg.StoragePath(), storage.Options{Logger: log})
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls: %v\n", err)
		return nil, exitFailed
	}
	if err := st.SyncRelays(ctx, relay.RelaySpecs(cfg)); err != nil {
		st.Close()
		fmt.Fprintf(e.stderr, "gmailtls: %v\n", err)
		return nil, exitFailed
	}
	mon := monitor.New(monitor.Deps{Config: cfg, Store: st, Runners: runners, Logger: log})
	h := commands.New(commands.Deps{Service: mon, Store: st, Logger: log})
	return &svc{cfg: cfg, store: st, mon: mon, h: h, log: log}, exitOK
}

// svcParse parses a subcommand's flags; it returns false with the exit
// code when the command must stop (help, bad flags, stray arguments).
func svcParse(e *env, fs *flag.FlagSet, usage string, args []string) (int, bool) {
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "gmailtls %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, false
	}
	return exitOK, true
}

// writeJSON prints v indented, with a final newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

const statusUsage = `usage: gmailtls status [--config FILE] [--json]

Prints each relay's escalation level from the stored history: level, scope,
advice, last success, last failure (class and time), and the level across
relays. It only reads: looking never changes or announces a level.

`

func runStatus(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	path, explicit := svcFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if code, ok := svcParse(e, fs, statusUsage, args); !ok {
		return code
	}
	s, code := svcOpen(ctx, e, *path, explicit())
	if s == nil {
		return code
	}
	defer s.Close()
	m, err := s.h.Status(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls status: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		err = writeJSON(e.stdout, m)
	} else {
		err = commands.RenderText(e.stdout, s.h.StatusResponse(m))
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls status: %v\n", err)
		return exitFailed
	}
	return exitOK
}
