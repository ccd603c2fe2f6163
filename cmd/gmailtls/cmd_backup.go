package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/storage"
)

const backupUsage = `usage: gmailtls backup [--config FILE] --to FILE

Writes a consistent, compacted copy of the SQLite database (VACUUM INTO)
while gmailtls keeps running. The target file must not exist yet. Restore by
stopping gmailtls and putting the copy in place of the database file (see
docs/operations.md). On PostgreSQL ([storage] driver = "postgres") it
refuses: back up with pg_dump, restore with pg_restore.

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
	if st := cfg.StorageSettings(); st.Driver == config.DriverPostgres {
		fmt.Fprintf(e.stderr, "gmailtls backup: the database is PostgreSQL (%s): gmailtls backup writes copies of SQLite files only; "+
			"back up PostgreSQL with pg_dump --format=custom and restore with pg_restore (docs/operations.md, \"Backups on PostgreSQL\")\n", st.Display())
		return exitUsage
	}
	st, err := openStore(ctx, cfg, storage.Options{Logger: svcLogger(e), Mode: storage.ModeReadOnly})
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
