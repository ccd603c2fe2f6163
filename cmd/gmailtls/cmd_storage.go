package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

const storageUsage = `usage: gmailtls storage init [--config FILE]

Creates the database named by [storage] path (or GMAILTLS_STORAGE_PATH),
or migrates an existing one to this gmailtls's schema, and records the
configured relays. gmailtls serve does the same when it starts; every other
command refuses a missing or empty database file, so that a typo in the
path or a truncated file is never reported as a healthy, empty history.

`

// runStorage runs "gmailtls storage init".
func runStorage(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] != "init" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(e.stderr, storageUsage)
			return exitOK
		}
		if len(args) > 0 {
			fmt.Fprintf(e.stderr, "gmailtls storage: unknown subcommand %q\n\n", args[0])
		}
		fmt.Fprint(e.stderr, storageUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet("storage init", flag.ContinueOnError)
	cf := addConfigFlag(fs)
	if code, ok := svcParse(e, fs, storageUsage, args[1:]); !ok {
		return code
	}
	cfg, err := cf.load(e)
	if err != nil {
		config.WriteProblems(e.stderr, err)
		return exitUsage
	}
	st, err := storage.Open(ctx, cfg.StoragePath(), storage.Options{Logger: svcLogger(e), Mode: storage.ModeCreate})
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls storage init: %v\n", err)
		return storeExit(err)
	}
	defer st.Close()
	if err := st.SyncRelays(ctx, relay.RelaySpecs(cfg)); err != nil {
		fmt.Fprintf(e.stderr, "gmailtls storage init: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(e.stdout, "database %s ready (schema version %d, %d relays)\n", st.Path(), storage.SchemaVersion(), len(cfg.Relays))
	return exitOK
}
