package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

const storageUsage = `usage: gmailtls storage init [--config FILE]
       gmailtls storage copy --from DB --to DB [--config FILE]

storage init creates the database named by [storage] (the SQLite file of
path or GMAILTLS_STORAGE_PATH, or with driver = "postgres" the PostgreSQL
database of dsn_env or dsn_file), or migrates an existing one to this
gmailtls's schema, and records the configured relays. gmailtls serve does
the same when it starts; every other command refuses a missing or empty
database, so that a typo in the path or a truncated file is never reported
as a healthy, empty history.

storage copy copies the whole history (results, rollups, events, incidents,
outbox, audit...) from one database to another, keeping every id, in one
transaction, then checks the rows of every table against the source and
prints the counts. DB is one of
  sqlite:PATH      an SQLite file (relative to the working directory)
  sqlite           the SQLite file of the configuration's [storage] path
  postgres         the PostgreSQL database of the configuration's [storage]
                   dsn_env or dsn_file (with driver = "sqlite":
                   $GMAILTLS_POSTGRES_DSN)
  postgres:VAR     the PostgreSQL database whose connection string is in
                   the environment variable VAR
The source is opened read-only; the destination is created (or migrated)
and must hold no history. Stop gmailtls serve while copying: what it
writes to the source meanwhile would not be copied. See docs/operations.md.

`

// runStorage runs "gmailtls storage init" and "gmailtls storage copy".
func runStorage(ctx context.Context, e *env, args []string) int {
	if len(args) > 0 && args[0] == "copy" {
		return runStorageCopy(ctx, e, args[1:])
	}
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
	st, err := openStore(ctx, cfg, storage.Options{Logger: svcLogger(e), Mode: storage.ModeCreate})
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

// dbSpec is one side of "gmailtls storage copy": --from or --to.
type dbSpec struct {
	flag string // "--from" or "--to"
	text string // as given
	// driver is config.DriverSQLite or config.DriverPostgres.
	driver string
	path   string // sqlite:PATH
	env    string // postgres:VAR
}

// parseDBSpec reads sqlite:PATH, sqlite, postgres or postgres:VAR.
func parseDBSpec(flagName, text string) (dbSpec, error) {
	d := dbSpec{flag: flagName, text: text}
	kind, rest, hasRest := strings.Cut(text, ":")
	switch {
	case text == "":
		return d, fmt.Errorf("%s is required: sqlite:PATH, sqlite, postgres or postgres:VAR", flagName)
	case kind == config.DriverSQLite:
		d.driver, d.path = config.DriverSQLite, rest
		if hasRest && rest == "" {
			return d, fmt.Errorf("%s %s: name the SQLite file after \"sqlite:\", such as sqlite:gmailtls.db", flagName, text)
		}
	case kind == config.DriverPostgres:
		d.driver, d.env = config.DriverPostgres, rest
		if hasRest && rest == "" {
			return d, fmt.Errorf("%s %s: name the environment variable after \"postgres:\", such as postgres:GMAILTLS_POSTGRES_DSN", flagName, text)
		}
	default:
		return d, fmt.Errorf("%s %q: not a database: write sqlite:PATH, sqlite, postgres or postgres:VAR", flagName, text)
	}
	return d, nil
}

// needsConfig reports whether the database is named by the configuration.
func (d dbSpec) needsConfig() bool {
	return d.driver == config.DriverSQLite && d.path == "" || d.driver == config.DriverPostgres && d.env == ""
}

// settings resolves the database d names; cfg is nil when d does not need
// the configuration. Problems are worded for the operator and never show
// a connection string.
func (d dbSpec) settings(e *env, cfg *config.Config) (config.StorageSettings, error) {
	switch {
	case d.driver == config.DriverSQLite && d.path != "":
		p := d.path
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		return config.StorageSettings{Driver: config.DriverSQLite, Path: p}, nil
	case d.driver == config.DriverSQLite:
		return config.StorageSettings{Driver: config.DriverSQLite, Path: cfg.StoragePath()}, nil
	}
	env, note := d.env, ""
	if env == "" {
		if cfg.Storage.Driver == config.DriverPostgres {
			return cfg.StorageSettings(), nil
		}
		env, note = config.EnvPostgresDSN, " (the configuration's driver is sqlite: \"postgres\" means the database of "+config.EnvPostgresDSN+")"
	}
	dsn := strings.TrimSpace(e.getenv(env))
	if dsn == "" {
		return config.StorageSettings{}, fmt.Errorf("%s %s: the environment variable %s is empty or not set; it should hold the PostgreSQL connection string (postgres://user:password@host:5432/dbname)%s", d.flag, d.text, env, note)
	}
	return config.StorageSettings{Driver: config.DriverPostgres, DSN: config.Secret(dsn)}, nil
}

// sameDB reports whether a and b name one database, as far as can be told
// before opening them.
func sameDB(a, b config.StorageSettings) bool {
	if a.Driver != b.Driver {
		return false
	}
	if a.Driver == config.DriverPostgres {
		return a.DSN == b.DSN || a.Display() == b.Display()
	}
	if a.Path == b.Path {
		return true
	}
	fa, errA := os.Stat(a.Path)
	fb, errB := os.Stat(b.Path)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// runStorageCopy runs "gmailtls storage copy".
func runStorageCopy(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("storage copy", flag.ContinueOnError)
	cf := addConfigFlag(fs)
	from := fs.String("from", "", "the source `database`: sqlite:PATH, sqlite, postgres or postgres:VAR")
	to := fs.String("to", "", "the destination `database`: sqlite:PATH, sqlite, postgres or postgres:VAR")
	if code, ok := svcParse(e, fs, storageUsage, args); !ok {
		return code
	}
	src, err := parseDBSpec("--from", *from)
	if err == nil {
		var dst dbSpec
		if dst, err = parseDBSpec("--to", *to); err == nil {
			return storageCopy(ctx, e, cf, src, dst)
		}
	}
	fmt.Fprintf(e.stderr, "gmailtls storage copy: %v\n", err)
	return exitUsage
}

func storageCopy(ctx context.Context, e *env, cf *configFlag, from, to dbSpec) int {
	var cfg *config.Config
	if from.needsConfig() || to.needsConfig() {
		var err error
		if cfg, err = cf.load(e); err != nil {
			config.WriteProblems(e.stderr, err)
			return exitUsage
		}
	}
	var sides [2]config.StorageSettings
	for i, d := range []dbSpec{from, to} {
		st, err := d.settings(e, cfg)
		if err != nil {
			fmt.Fprintf(e.stderr, "gmailtls storage copy: %v\n", err)
			return exitUsage
		}
		sides[i] = st
	}
	if sameDB(sides[0], sides[1]) {
		fmt.Fprintf(e.stderr, "gmailtls storage copy: --from %s and --to %s are the same database (%s): copy to another one\n", from.text, to.text, sides[0].Display())
		return exitUsage
	}
	log := svcLogger(e)
	src, err := openSettings(ctx, sides[0], storage.Options{Logger: log, Mode: storage.ModeReadOnly})
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls storage copy: the source: %v\n", err)
		return storeExit(err)
	}
	defer src.Close()
	dst, err := openSettings(ctx, sides[1], storage.Options{Logger: log, Mode: storage.ModeCreate})
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls storage copy: the destination: %v\n", err)
		return storeExit(err)
	}
	defer dst.Close()
	counts, err := storage.Copy(ctx, dst, src)
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls storage copy: %v\n", err)
		if errors.Is(err, storage.ErrNotEmpty) || errors.Is(err, storage.ErrSameDatabase) {
			return exitUsage
		}
		if ctx.Err() != nil {
			return exitInterrupted
		}
		return exitFailed
	}
	fmt.Fprintf(e.stdout, "copied %s %s to %s %s (schema version %d); rows per table, checked against the source:\n",
		src.Engine(), src.Path(), dst.Engine(), dst.Path(), storage.SchemaVersion())
	width := len("total")
	var total int64
	for _, c := range counts {
		width = max(width, len(c.Table))
		total += c.Copied
	}
	fmt.Fprintf(e.stdout, "  %-*s %10s %10s\n", width, "table", "source", "copied")
	for _, c := range counts {
		fmt.Fprintf(e.stdout, "  %-*s %10d %10d\n", width, c.Table, c.Source, c.Copied)
	}
	fmt.Fprintf(e.stdout, "  %-*s %10d %10d\n", width, "total", total, total)
	return exitOK
}
