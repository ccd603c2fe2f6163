package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// configCheck runs "gmailtls <args>" in-process with the given environment.
func configCheck(t *testing.T, environ map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return environ[k] }}
	code = dispatch(context.Background(), e, args)
	return code, out.String(), errb.String()
}

func writeConfig(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigCheckExample(t *testing.T) {
	code, out, errs := configCheck(t, nil, "config", "check", "--config", "../../config.toml.example")
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		"config OK: 1 relays, target gmail.com (MX from DNS)\n",
		"  relays: relay-1 (local)\n",
		"  probing: @every 5m\n",
		`  report[0]: "CRON_TZ=Europe/Berlin 0 9 * * 1-5" to CREPLACE1, window 1d` + "\n",
		"  alerts: CREPLACE2, reminders every 1h\n",
		"  slack: socket mode; serve would not start until this is fixed:\n",
		`report[0]: channel: "CREPLACE1" is the example's placeholder`,
		`alerts.channel: "CREPLACE2" is the example's placeholder`,
		"  storage: " + demoDB + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
}

// demoDB is where config.toml.example keeps the console demo's database:
// under demo/ (gitignored), apart from a deployment's.
var demoDB = func() string {
	p, err := filepath.Abs("../../demo/gmailtls-demo.db")
	if err != nil {
		panic(err)
	}
	return p
}()

func TestConfigCheckPinnedAndSlackReady(t *testing.T) {
	p := writeConfig(t, "config.toml", `
[target]
mx = ["127.0.0.1:2525", "[::1]:2525"]

[[relay]]
name = "relay-1"

[[relay]]
name = "relay-2"
kind = "agent"
url = "http://127.0.0.1:9426"
secret_env = "R2"

[probing]
schedule = "off"
`)
	code, out, errs := configCheck(t, map[string]string{"R2": "relay-2-secret-0123456789abcdef0123", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"},
		"config", "check", "-config", p)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		"config OK: 2 relays, target gmail.com (MX pinned: 127.0.0.1:2525, [::1]:2525)\n",
		"  relays: relay-1 (local); relay-2 (agent http://127.0.0.1:9426)\n",
		"  probing: off\n",
		"  reports: none\n",
		"  slack: socket mode, tokens present\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "relay-2-secret-0123456789abcdef0123") {
		t.Error("the summary printed a secret")
	}
}

func TestConfigCheckProblems(t *testing.T) {
	p := writeConfig(t, "config.toml", `[target]
family = "5"

[[relay]]
name = "relay-1"
sorce_ips = ["192.0.2.1"]

[log]
level = "loud"
`)
	code, out, errs := configCheck(t, nil, "config", "check", "--config", p)
	if code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	if out != "" {
		t.Errorf("stdout = %q, want nothing", out)
	}
	want := p + `:2: target.family: "5" is not one of "4", "6" or "any"` + "\n" +
		p + `:6: unknown key relay.sorce_ips (did you mean source_ips?)` + "\n" +
		p + `:9: log.level: "loud" is not a log level: use "debug", "info", "warn" or "error"` + "\n"
	if errs != want {
		t.Errorf("stderr =\n%s\nwant\n%s", errs, want)
	}
}

func TestConfigCheckMissingAndBinaryFiles(t *testing.T) {
	dir := t.TempDir()
	code, _, errs := configCheck(t, nil, "config", "check", "--config", filepath.Join(dir, "nope.toml"))
	if code != exitUsage || !strings.Contains(errs, "nope.toml: no such file") {
		t.Errorf("missing file: exit %d, stderr %q", code, errs)
	}
	bin := writeConfig(t, "gmailtls.db", "SQLite format 3\x00\x10\x00\x01\x01")
	code, _, errs = configCheck(t, nil, "config", "check", "--config", bin)
	if code != exitUsage || !strings.Contains(errs, "this is an SQLite database, not a configuration file") {
		t.Errorf("binary file: exit %d, stderr %q", code, errs)
	}
}

func TestConfigCheckDefaultPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte("[log]\nlevel = \"debug\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	code, out, errs := configCheck(t, nil, "config", "check")
	if code != exitOK || !strings.HasPrefix(out, "config OK: 1 relays, target gmail.com (MX from DNS)\n") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestConfigCheckAgent(t *testing.T) {
	p := writeConfig(t, "agent.toml", "[target]\ndomain = \"gmail.com\"\n\n[agent]\nlisten = \"127.0.0.1:9426\"\n")
	code, out, errs := configCheck(t, map[string]string{"GMAILTLS_AGENT_SECRET": "agent-secret-0123456789abcdef0123456"}, "config", "check", "--agent", "--config", p)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if want := "agent config OK: listen 127.0.0.1:9426 (plain HTTP, loopback only), target gmail.com (MX from DNS)\n"; !strings.HasPrefix(out, want) {
		t.Errorf("stdout = %q, want prefix %q", out, want)
	}
	if strings.Contains(out, "agent-secret-0123456789abcdef0123456") {
		t.Error("the summary printed a secret")
	}

	code, _, errs = configCheck(t, nil, "config", "check", "--agent", "--config", p)
	if code != exitUsage || !strings.Contains(errs, "agent.secret_env: the environment variable GMAILTLS_AGENT_SECRET is empty or not set") {
		t.Errorf("agent without secret: exit %d, stderr %q", code, errs)
	}
}

func TestConfigUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"config"}, exitUsage},
		{[]string{"config", "validate"}, exitUsage},
		{[]string{"config", "check", "--bogus"}, exitUsage},
		{[]string{"config", "check", "extra"}, exitUsage},
		{[]string{"config", "-h"}, exitOK},
		{[]string{"config", "check", "-h"}, exitOK},
	} {
		code, out, errs := configCheck(t, nil, tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
		if !strings.Contains(out+errs, "usage: gmailtls config check") {
			t.Errorf("%v: no usage in %q", tc.args, out+errs)
		}
	}
}
