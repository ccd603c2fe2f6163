package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStorageSettings: the SQLite default, and PostgreSQL with its
// connection string from the default variable, a named one or a file.
func TestStorageSettings(t *testing.T) {
	dir := t.TempDir()
	const dsn = "postgres://gmailtls:hunter2@db.internal:5432/gmailtls?sslmode=verify-full"
	if err := os.WriteFile(filepath.Join(dir, "pg.dsn"), []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, text string
		env        map[string]string
		want       StorageSettings
	}{
		{"default", "", nil, StorageSettings{Driver: DriverSQLite, Path: filepath.Join(dir, "gmailtls.db")}},
		{"sqlite", "[storage]\ndriver = \"sqlite\"\npath = \"h.db\"\n", nil, StorageSettings{Driver: DriverSQLite, Path: filepath.Join(dir, "h.db")}},
		{"postgres default env", "[storage]\ndriver = \"postgres\"\n", map[string]string{EnvPostgresDSN: " " + dsn + " "},
			StorageSettings{Driver: DriverPostgres, DSN: dsn}},
		{"postgres dsn_env", "[storage]\ndriver = \"postgres\"\ndsn_env = \"PG\"\n", map[string]string{"PG": dsn, EnvPostgresDSN: "postgres://other/x"},
			StorageSettings{Driver: DriverPostgres, DSN: dsn}},
		{"postgres dsn_file", "[storage]\ndriver = \"postgres\"\ndsn_file = \"pg.dsn\"\n", map[string]string{EnvPostgresDSN: "postgres://other/x"},
			StorageSettings{Driver: DriverPostgres, DSN: dsn}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.text), "config.toml", dir, fakeenv(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.StorageSettings(); got != tc.want {
				t.Errorf("StorageSettings() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestStorageSummary: config check names the PostgreSQL database without
// its password or parameters.
func TestStorageSummary(t *testing.T) {
	cfg, err := Parse([]byte("[storage]\ndriver = \"postgres\"\n"), "config.toml", t.TempDir(),
		fakeenv(map[string]string{EnvPostgresDSN: "postgres://gmailtls:hunter2@db.internal:5432/gmailtls?sslmode=require&password=hunter2"}))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	WriteSummary(&b, cfg)
	if !strings.Contains(b.String(), "  storage: postgres (postgres://gmailtls@db.internal:5432/gmailtls)\n") {
		t.Errorf("summary does not name the database as wanted:\n%s", b.String())
	}
	if strings.Contains(b.String(), "hunter2") {
		t.Errorf("summary reveals the password:\n%s", b.String())
	}
}

// TestDisplayDSN: both forms of a connection string lose their password;
// what cannot be read is never echoed.
func TestDisplayDSN(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://u:hunter2@h:5433/db?sslmode=disable":                    "postgres://u@h:5433/db",
		"postgresql://u@h/db":                                               "postgres://u@h/db",
		"postgres:///db?host=/run/postgresql":                               "postgres:///db",
		"host=h port=5433 user=u password=hunter2 dbname=db":                "postgres://u@h:5433/db",
		"host='h' user='a \\'quoted\\' user' password='hun ter2' dbname=db": "postgres://a 'quoted' user@h/db",
		"dbname=db":                      "postgres:///db",
		"hunter2":                        "postgres://(unreadable connection string)",
		"host='hunter2":                  "postgres://(unreadable connection string)",
		"postgres://u:hunter2@h:port/db": "postgres://(unreadable connection string)",
		"":                               "postgres://(unreadable connection string)",
	} {
		if got := DisplayDSN(dsn); got != want {
			t.Errorf("DisplayDSN(%q) = %q, want %q", dsn, got, want)
		}
	}
}

// TestStorageAgentFile: the agent's own file does not need the database's
// connection string.
func TestStorageAgentFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.toml")
	text := "[storage]\ndriver = \"postgres\"\n\n[agent]\nlisten = \"127.0.0.1:9426\"\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := fakeenv(map[string]string{"GMAILTLS_AGENT_SECRET": "agent-secret-value-1234-0123456789abcdef"})
	if _, err := LoadAgent(path, env); err != nil {
		t.Errorf("LoadAgent: %v", err)
	}
	if _, err := Load(path, env); err == nil || !strings.Contains(err.Error(), "GMAILTLS_POSTGRES_DSN is empty or not set") {
		t.Errorf("Load = %v; want the missing connection string named", err)
	}
}
