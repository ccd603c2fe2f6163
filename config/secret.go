package config

import "log/slog"

// MarshalText returns the redacted form, so that encoding a Config (JSON,
// TOML) never writes a secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue makes log/slog print the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// GoString keeps %#v redacted too.
func (s Secret) GoString() string { return `config.Secret("` + s.String() + `")` }
