package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/gmailtls/gmailtls/storage"
)

const backupUsage = `usage: gmailtls backup [--config FILE] --to FILE

Writes a consistent, compacted copy of the database (VACUUM INTO) while
gmailtls keeps running. The target file must not exist yet. Restore by
stopping gmailtls and putting the copy in place of the database file (see
docs/operations.md).

`

func runBackup(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	cf := addConfigFlag(fs)
	to := fs.String("to", "", "the backup `file` to write (must not exist)")
	if code, ok := svcParse(e, fs, backupUsage, args); !ok {
		return code
	}
	if *to == "" {
		fmt.Fprintln(e.stderr, "gmailtls backup: --to FILE is required")
		return exitUsage
	}
	cfg, err := cf.load(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls backup: %v\n", err)
		return exitUsage
	}
	st, err := storage.Open(ctx, cfg.StoragePath(), storage.Options{Logger: svcLogger(e), Mode: storage.ModeReadOnly})
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls backup: %v\n", err)
		return storeExit(err)
	}
	defer st.Close()
	if err := st.Backup(ctx, *to); err != nil {
		fmt.Fprintf(e.stderr, "gmailtls backup: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(e.stdout, "backed up %s to %s\n", st.Path(), *to)
	return exitOK
}
