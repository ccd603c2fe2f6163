package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
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
