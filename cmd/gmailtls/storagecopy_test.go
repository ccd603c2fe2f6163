package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/internal/pglab"
	"github.com/gmailtls/gmailtls/storage"
)

// TestStorageCopySQLite: storage copy moves a history recorded by checks
// into a new SQLite file, prints the checked counts, and refuses to copy
// onto a database with history, onto the source itself, or from a
// misspelt database.
func TestStorageCopySQLite(t *testing.T) {
	cfgPath, _ := svcTestSetup(t)
	svcTestConsole(t, cfgPath, "check all")
	dst := filepath.Join(t.TempDir(), "copy.db")

	code, out, errs := svcTestRun(t, "", "storage", "copy", "--config", cfgPath, "--from", "sqlite", "--to", "sqlite:"+dst)
	if code != exitOK || errs != "" {
		t.Fatalf("storage copy: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"copied sqlite " + filepath.Join(filepath.Dir(cfgPath), "history.db") + " to sqlite " + dst, "checked against the source"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	results := tableLine(t, out, "results")
	if len(results) != 3 || results[1] == "0" || results[1] != results[2] {
		t.Errorf("results line = %q; want equal, non-zero source and copied counts\n%s", results, out)
	}
	st, err := storage.Open(context.Background(), dst, storage.Options{Mode: storage.ModeReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"relay-1", "relay-2", "relay-3"} {
		if run, res, err := st.LastRun(context.Background(), r); err != nil || len(res) == 0 || run.Relay != r {
			t.Errorf("the copy lacks %s's run: %+v %d %v", r, run, len(res), err)
		}
	}
	st.Close()

	for _, tc := range []struct {
		name     string
		from, to string
		want     string
	}{
		{"destination with history", "sqlite", "sqlite:" + dst, "already holds history"},
		{"onto itself", "sqlite", "sqlite:" + filepath.Join(filepath.Dir(cfgPath), "history.db"), "are the same database"},
		{"misspelt source", "sqlit:x.db", "sqlite:" + dst, "not a database: write sqlite:PATH"},
		{"no --to", "sqlite", "", "--to is required"},
		{"missing source", "sqlite:" + filepath.Join(t.TempDir(), "none.db"), "sqlite:" + filepath.Join(t.TempDir(), "n.db"), "storage init"},
		{"postgres without a connection string", "sqlite", "postgres", "GMAILTLS_POSTGRES_DSN is empty or not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"storage", "copy", "--config", cfgPath, "--from", tc.from}
			if tc.to != "" {
				args = append(args, "--to", tc.to)
			}
			code, out, errs := svcTestRun(t, "", args...)
			if code != exitUsage || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q (stdout %q)", code, errs, tc.want, out)
			}
		})
	}
}

// tableLine returns the fields of the count line of table in storage
// copy's output.
func tableLine(t *testing.T, out, table string) []string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == table {
			return f
		}
	}
	t.Errorf("no line for %s in:\n%s", table, out)
	return nil
}

// TestStorageCopyPostgres: a history moves from SQLite to PostgreSQL and
// back; the commands read it on PostgreSQL through driver = "postgres";
// backup refuses PostgreSQL and names pg_dump.
func TestStorageCopyPostgres(t *testing.T) {
	dsn := pglab.NewDatabase(t)
	cfgPath, _ := svcTestSetup(t)
	svcTestConsole(t, cfgPath, "check all")
	environ := map[string]string{"PG_TEST_DSN": dsn}
	ctx := context.Background()

	code, out, errs := runEnv(ctx, t, environ, "storage", "copy", "--config", cfgPath, "--from", "sqlite", "--to", "postgres:PG_TEST_DSN")
	if code != exitOK || errs != "" {
		t.Fatalf("storage copy to postgres: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, " to postgres postgres://") || strings.Contains(out, dsn) {
		t.Errorf("output does not name the PostgreSQL database by its display form:\n%s", out)
	}
	toPG := tableLine(t, out, "results")

	// The same configuration on PostgreSQL: the connection string from
	// the default variable.
	text, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	pgCfg := filepath.Join(filepath.Dir(cfgPath), "pg.toml")
	if err := os.WriteFile(pgCfg, []byte(strings.Replace(string(text), "[storage]\n", "[storage]\ndriver = \"postgres\"\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	pgEnv := map[string]string{"GMAILTLS_POSTGRES_DSN": dsn}
	code, out, errs = runEnv(ctx, t, pgEnv, "relays", "--json", "--config", pgCfg)
	if code != exitOK {
		t.Fatalf("relays on postgres: exit %d\n%s\n%s", code, out, errs)
	}
	var relays struct{ Relays []map[string]any }
	if err := json.Unmarshal([]byte(out), &relays); err != nil || len(relays.Relays) != 3 {
		t.Errorf("relays --json on postgres = %s (%v); want the three copied relays", out, err)
	}
	code, out, errs = runEnv(ctx, t, pgEnv, "config", "check", "--config", pgCfg)
	if code != exitOK || !strings.Contains(out, "storage: postgres (postgres://") || strings.Contains(out+errs, dsn) {
		t.Errorf("config check on postgres: exit %d\n%s\n%s", code, out, errs)
	}
	code, _, errs = runEnv(ctx, t, pgEnv, "backup", "--config", pgCfg, "--to", filepath.Join(t.TempDir(), "b.db"))
	if code != exitUsage || !strings.Contains(errs, "pg_dump") || strings.Contains(errs, dsn) {
		t.Errorf("backup on postgres: exit %d %q; want 2 and pg_dump named", code, errs)
	}

	// And back, into a new SQLite file, from the configuration's
	// PostgreSQL database.
	back := filepath.Join(t.TempDir(), "back.db")
	code, out, errs = runEnv(ctx, t, pgEnv, "storage", "copy", "--config", pgCfg, "--from", "postgres", "--to", "sqlite:"+back)
	if code != exitOK || errs != "" {
		t.Fatalf("storage copy from postgres: exit %d\n%s\n%s", code, out, errs)
	}
	if got := tableLine(t, out, "results"); strings.Join(got, " ") != strings.Join(toPG, " ") {
		t.Errorf("results back = %q, there %q", got, toPG)
	}
	// A second copy into the PostgreSQL database is refused: it holds
	// history now.
	code, _, errs = runEnv(ctx, t, pgEnv, "storage", "copy", "--config", pgCfg, "--from", "sqlite:"+back, "--to", "postgres")
	if code != exitUsage || !strings.Contains(errs, "already holds history") {
		t.Errorf("copy into postgres with history: exit %d %q", code, errs)
	}
	code, _, errs = runEnv(ctx, t, pgEnv, "storage", "copy", "--config", pgCfg, "--from", "postgres", "--to", "postgres:GMAILTLS_POSTGRES_DSN")
	if code != exitUsage || !strings.Contains(errs, "same database") {
		t.Errorf("copy postgres onto itself: exit %d %q", code, errs)
	}
}
