package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// DefaultFile is the configuration every subcommand reads, from the
// working directory, when not told otherwise.
const DefaultFile = "config.toml"

// EnvFile names the configuration file when there is no ./config.toml.
const EnvFile = "GMAILTLS_CONFIG"

// Find names the configuration file a subcommand reads: flag (its --config)
// when given, else ./config.toml when there is one, else $GMAILTLS_CONFIG.
// found is false when there is none of them; path is then DefaultFile.
func Find(flag string, getenv func(string) string) (path string, found bool) {
	if flag != "" {
		return flag, true
	}
	if _, err := os.Stat(DefaultFile); !errors.Is(err, fs.ErrNotExist) {
		return DefaultFile, true
	}
	if p := getenv(EnvFile); p != "" {
		return p, true
	}
	return DefaultFile, false
}

// LoopbackAddr is where a client on this host reaches the HTTP server:
// Listen, with an unspecified host (0.0.0.0, ::, none) replaced by
// loopback. It is an error when the server is off.
func (h HTTP) LoopbackAddr() (string, error) {
	if h.Listen == "off" {
		return "", errors.New("[http] listen is off: there is no /metrics or /healthz")
	}
	host, port, err := net.SplitHostPort(h.Listen)
	if err != nil {
		return "", fmt.Errorf("[http] listen %q: %w", h.Listen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port), nil
}

// PrepareDemo reports whether path is the demo configuration (a file named
// *.example, such as config.toml.example): only on it may the console
// create its database (the example keeps it under demo/, apart from a
// deployment's). On any other configuration the database must exist:
// gmailtls serve or "gmailtls storage init" creates it. For the demo it
// creates the database's folder. A demo file that does not load is still
// the demo; loading it again reports its problems.
func PrepareDemo(path string, getenv func(string) string) (bool, error) {
	if !strings.HasSuffix(path, ".example") {
		return false, nil
	}
	cfg, err := LoadWithoutSecrets(path, getenv)
	if err != nil || cfg.Storage.Driver == DriverPostgres {
		return true, nil
	}
	db := cfg.StoragePath()
	if db == ":memory:" || strings.HasPrefix(db, "file:") {
		return true, nil
	}
	if err := os.MkdirAll(filepath.Dir(db), 0o750); err != nil {
		return true, fmt.Errorf("creating the demo database's folder: %w", err)
	}
	return true, nil
}
