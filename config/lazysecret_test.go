package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadWithoutSecrets: the read-only commands load a file whose agent
// relay secrets are not in the environment; Load (serve, config check)
// still refuses it, and RequireRelaySecrets names what is missing.
func TestLoadWithoutSecrets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	text := "[[relay]]\nname = \"relay-1\"\nkind = \"local\"\n\n[[relay]]\nname = \"relay-2\"\nkind = \"agent\"\nurl = \"https://relay-2.test:9426\"\nsecret_env = \"RELAY2_SECRET\"\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := fakeenv(map[string]string{})
	if _, err := Load(path, noEnv); err == nil || !strings.Contains(err.Error(), "RELAY2_SECRET is empty or not set") {
		t.Errorf("Load without the secret = %v; want the missing secret named", err)
	}
	cfg, err := LoadWithoutSecrets(path, noEnv)
	if err != nil {
		t.Fatalf("LoadWithoutSecrets: %v", err)
	}
	err = cfg.RequireRelaySecrets()
	if err == nil || !strings.Contains(err.Error(), "relay[1] (relay-2): secret_env: the environment variable RELAY2_SECRET is empty or not set") {
		t.Errorf("RequireRelaySecrets = %v", err)
	}
	cfg, err = LoadWithoutSecrets(path, fakeenv(map[string]string{"RELAY2_SECRET": "relay2-secret-value-0123456789abcdef"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.RequireRelaySecrets(); err != nil {
		t.Errorf("RequireRelaySecrets with the secret set: %v", err)
	}
	// A present secret is still checked for its length at load.
	if _, err := LoadWithoutSecrets(path, fakeenv(map[string]string{"RELAY2_SECRET": "short"})); err == nil {
		t.Error("a too-short relay secret passed LoadWithoutSecrets")
	}
}
