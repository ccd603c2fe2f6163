package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeenv returns a getenv over a map.
func fakeenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func readFile(name string) (string, error) {
	b, err := os.ReadFile(name)
	return string(b), err
}

// writeFiles writes name → content into a temporary folder and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// selfSigned returns a PEM certificate and key made in memory.
func selfSigned(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gmailtls test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		DNSNames:              []string{"relay-2.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func TestParseEmptyGivesDefaults(t *testing.T) {
	c, err := Parse(nil, "config.toml", "/etc/gmailtls", fakeenv(nil))
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	d.Dir = "/etc/gmailtls"
	c.meta = nil
	if !reflect.DeepEqual(c, d) {
		t.Errorf("Parse(nil) = %+v\nDefault() = %+v", c, d)
	}
	if len(c.Relays) != 1 || c.Relays[0].Name != "local" || c.Relays[0].Kind != "local" {
		t.Errorf("implicit relay: %+v", c.Relays)
	}
	if got := c.StoragePath(); got != "/etc/gmailtls/gmailtls.db" {
		t.Errorf("StoragePath = %q", got)
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

func TestDefaultsAreFresh(t *testing.T) {
	a, b := Default(), Default()
	a.Escalation.MOfK[0] = 99
	a.Relays[0].Name = "x"
	a.Agent.MaxProbes = 99
	if b.Escalation.MOfK[0] != 3 || b.Relays[0].Name != "local" || b.Agent.MaxProbes != 4 {
		t.Errorf("Default() shares state between calls: %+v", b)
	}
}

func TestParseValidFile(t *testing.T) {
	cert, _ := selfSigned(t)
	dir := writeFiles(t, map[string]string{
		"roots.pem":        cert,
		"secrets/relay-3":  "  file-secret-0123456789abcdef0123456789abcdef\n",
		"slack/bot":        "xoxb-from-file\n",
		"agent-ca/ca.pem":  cert,
		"unused/other.txt": "",
	})
	text := `
[target]
domain = "example.test."
mx = ["127.0.0.1:2525", "[::1]:2526", "mx.example.test"]
servername = "mx.example.test"
ca_file = "roots.pem"
timeout = "1d12h"
family = "4"
helo_name = "[192.0.2.1]"
concurrency = 4

[storage]
path = "/var/lib/gmailtls/db.sqlite"

[[relay]]
name = "relay-1"
source_ips = ["192.0.2.10", "2001:db8::10"]

[[relay]]
name = "relay-2"
kind = "agent"
url = "https://relay-2.test:9426"
secret_env = "R2"
ca_file = "agent-ca/ca.pem"
timeout = "90s"

[[relay]]
name = "relay-3"
kind = "agent"
url = "http://[::1]:9426/base"
secret_file = "secrets/relay-3"

[slack]
mode = "http"
api_url = "http://127.0.0.1:8080/api"
bot_token_file = "slack/bot"
listen = "127.0.0.1:3001"

[probing]
schedule = "off"

[[report]]
cron = "CRON_TZ=UTC 0 9 * * 1-5"
channel = "C0123ABCD"

[[report]]
cron = "@daily"
channel = "C0456EFGH"
window = "7d"

[escalation]
m_of_k = [2, 10]

[http]
listen = "off"

[log]
level = "WARNING"
`
	c, err := Parse([]byte(text), "config.toml", dir, fakeenv(map[string]string{"R2": "env-secret-0123456789abcdef0123456789abcdef", "SLACK_BOT_TOKEN": "xoxb-env"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Target.Timeout.Duration != 36*time.Hour {
		t.Errorf("timeout = %v", c.Target.Timeout)
	}
	r2, ok := c.RelayByName("relay-2")
	if !ok || r2.Secret.Value() != "env-secret-0123456789abcdef0123456789abcdef" || r2.Timeout.Duration != 90*time.Second {
		t.Errorf("relay-2 = %+v", r2)
	}
	r3, _ := c.RelayByName("relay-3")
	if r3.Secret.Value() != "file-secret-0123456789abcdef0123456789abcdef" || r3.Timeout.Duration != time.Minute {
		t.Errorf("relay-3 secret from file not trimmed or timeout not defaulted: %q %v", r3.Secret.Value(), r3.Timeout)
	}
	if _, ok := c.RelayByName("relay-4"); ok {
		t.Error("RelayByName found a relay that does not exist")
	}
	if c.Slack.APIURL != "http://127.0.0.1:8080/api/" {
		t.Errorf("api_url = %q, want the trailing slash added", c.Slack.APIURL)
	}
	if c.Slack.BotTokenEnv != "" || c.Slack.BotToken.Value() != "xoxb-from-file" {
		t.Errorf("bot_token_file should replace the default bot_token_env: env %q token %q", c.Slack.BotTokenEnv, c.Slack.BotToken.Value())
	}
	if c.Log.Level != "warn" {
		t.Errorf("log.level = %q, want warn", c.Log.Level)
	}
	if got := c.Resolve(r2.CAFile); got != filepath.Join(dir, "agent-ca/ca.pem") {
		t.Errorf("Resolve(ca_file) = %q", got)
	}
	if got := c.StoragePath(); got != "/var/lib/gmailtls/db.sqlite" {
		t.Errorf("StoragePath = %q", got)
	}
	if c.Reports[0].Window.Duration != 24*time.Hour || c.Reports[1].Window.Duration != 7*24*time.Hour {
		t.Errorf("report windows = %v, %v", c.Reports[0].Window, c.Reports[1].Window)
	}
}

func TestLoadResolvesAgainstTheFilesFolder(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"etc/config.toml": "[storage]\npath = \"data/gmailtls.db\"\n",
	})
	c, err := Load(filepath.Join(dir, "etc/config.toml"), fakeenv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Dir != filepath.Join(dir, "etc") {
		t.Errorf("Dir = %q", c.Dir)
	}
	if got, want := c.StoragePath(), filepath.Join(dir, "etc/data/gmailtls.db"); got != want {
		t.Errorf("StoragePath = %q, want %q", got, want)
	}
	for _, p := range []string{":memory:", "file:x.db?mode=memory"} {
		c.Storage.Path = p
		if got := c.StoragePath(); got != p {
			t.Errorf("StoragePath(%q) = %q", p, got)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "config.toml"), fakeenv(nil))
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want ErrInvalid and fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "config.toml: no such file") {
		t.Errorf("err = %v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{
		EnvStoragePath:  "/tmp/other.db",
		EnvSlackMode:    "http",
		EnvSlackAPIURL:  "http://127.0.0.1:9999/api",
		EnvHTTPListen:   "127.0.0.1:0",
		EnvLogLevel:     "debug",
		EnvLogFormat:    "json",
		EnvTargetDomain: "example.test",
	}
	c, err := Parse([]byte("[log]\nlevel = \"error\"\n[target]\ndomain = \"gmail.com\"\n"), "config.toml", "/etc", fakeenv(env))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.StoragePath(), c.Slack.Mode, c.Slack.APIURL, c.HTTP.Listen, c.Log.Level, c.Log.Format, c.Target.Domain}
	want := []string{"/tmp/other.db", "http", "http://127.0.0.1:9999/api/", "127.0.0.1:0", "debug", "json", "example.test"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("overrides = %v, want %v", got, want)
	}

	// A relative GMAILTLS_STORAGE_PATH is relative to the working directory.
	c, err = Parse(nil, "config.toml", "/etc", fakeenv(map[string]string{EnvStoragePath: "rel.db"}))
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if got := c.StoragePath(); got != filepath.Join(wd, "rel.db") {
		t.Errorf("relative env storage path = %q", got)
	}

	// A bad value names the variable.
	_, err = Parse([]byte("[log]\nlevel = \"info\"\n"), "config.toml", "", fakeenv(map[string]string{EnvLogLevel: "verbose", EnvHTTPListen: "nowhere"}))
	want2 := `config.toml: http.listen: "nowhere" is not a listen address host:port such as "127.0.0.1:9425" or "off" (set by the environment variable GMAILTLS_HTTP_LISTEN)` + "\n" +
		`config.toml: log.level: "verbose" is not a log level: use "debug", "info", "warn" or "error" (set by the environment variable GMAILTLS_LOG_LEVEL)`
	if err == nil || err.Error() != want2 {
		t.Errorf("err = %v\nwant %s", err, want2)
	}
}

func TestRequireSlack(t *testing.T) {
	dir := writeFiles(t, map[string]string{"app": "xoxb-wrong-kind\n"})
	for _, tc := range []struct {
		name string
		text string
		env  map[string]string
		want string
	}{
		{"socket ok", "", map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, ""},
		{"http ok", "[slack]\nmode = \"http\"\n", map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}, ""},
		{"nothing set", "", nil,
			"config.toml: slack.bot_token_env: the environment variable SLACK_BOT_TOKEN is empty or not set; it should hold the bot token (xoxb-…), needed by serve\n" +
				"config.toml: slack.app_token_env: the environment variable SLACK_APP_TOKEN is empty or not set; it should hold the app-level token for Socket Mode (xapp-…), needed by serve"},
		{"wrong prefixes", "[slack]\napp_token_file = \"app\"\n", map[string]string{"SLACK_BOT_TOKEN": "xoxp-user-token"},
			"config.toml:1: slack.bot_token_env: the value of the environment variable SLACK_BOT_TOKEN does not start with \"xoxb-\": it is not the bot token (xoxb-…)\n" +
				"config.toml:2: slack.app_token_file: the value of " + filepath.Join(dir, "app") + " does not start with \"xapp-\": it is not the app-level token for Socket Mode (xapp-…)"},
		{"http without signing secret", "[slack]\nmode = \"http\"\nsigning_secret_env = \"\"\n", map[string]string{"SLACK_BOT_TOKEN": "xoxb-1"},
			"config.toml:3: slack.signing_secret_env: is empty; serve needs the signing secret for HTTP mode: set signing_secret_env or signing_secret_file"},
		{"unreadable file", "[slack]\nbot_token_file = \"nope\"\n", map[string]string{"SLACK_APP_TOKEN": "xapp-1"},
			"config.toml:2: slack.bot_token_file: cannot read " + filepath.Join(dir, "nope") + ": no such file or directory; it should hold the bot token (xoxb-…), needed by serve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.text), "config.toml", dir, fakeenv(tc.env))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = c.RequireSlack()
			got := ""
			if err != nil {
				got = err.Error()
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("does not wrap ErrInvalid")
				}
				for _, v := range tc.env {
					if strings.Contains(got, v) {
						t.Errorf("error reveals a token")
					}
				}
			}
			if got != tc.want {
				t.Errorf("RequireSlack() =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestLoadAgent(t *testing.T) {
	cert, key := selfSigned(t)
	dir := writeFiles(t, map[string]string{
		"agent.toml": `
[target]
mx = ["127.0.0.1:2525"]

[agent]
listen = "0.0.0.0:9426"
tls_cert = "agent.crt"
tls_key = "agent.key"
secret_file = "agent.secret"
previous_secret_env = "OLD"
max_probes = 2
gmail_domains = ["workspace-customer.test", "Example.COM."]
`,
		"bad-domains.toml": "[agent]\ngmail_domains = [\"user@gmail.com\", \"localhost\"]\n",
		"agent.crt":        cert,
		"agent.key":        key,
		"agent.secret":     "new-secret-0123456789abcdef0123456789abcdef\n",
		"plain.toml":       "[agent]\n",
	})
	c, err := LoadAgent(filepath.Join(dir, "agent.toml"), fakeenv(map[string]string{"OLD": "old-secret-0123456789abcdef0123456789abcdef"}))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Agent
	if a.Secret.Value() != "new-secret-0123456789abcdef0123456789abcdef" || a.PreviousSecret.Value() != "old-secret-0123456789abcdef0123456789abcdef" || a.SecretEnv != "" || a.MaxProbes != 2 || a.Postqueue != "postqueue" {
		t.Errorf("agent = %+v", a)
	}

	if len(a.GmailDomains) != 2 || a.GmailDomains[0] != "workspace-customer.test" {
		t.Errorf("gmail_domains = %q", a.GmailDomains)
	}
	// An address or a bare host name is not a domain: both are reported.
	_, err = LoadAgent(filepath.Join(dir, "bad-domains.toml"), fakeenv(map[string]string{"GMAILTLS_AGENT_SECRET": "s-0123456789abcdef0123456789abcdef"}))
	if err == nil || !strings.Contains(err.Error(), "agent.gmail_domains[0]") || !strings.Contains(err.Error(), "agent.gmail_domains[1]") {
		t.Errorf("bad gmail_domains: %v", err)
	}

	// [agent] alone: the defaults (loopback, GMAILTLS_AGENT_SECRET).
	c, err = LoadAgent(filepath.Join(dir, "plain.toml"), fakeenv(map[string]string{"GMAILTLS_AGENT_SECRET": "s-0123456789abcdef0123456789abcdef"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Agent.Listen != "127.0.0.1:9426" || c.Agent.Secret.Value() != "s-0123456789abcdef0123456789abcdef" {
		t.Errorf("agent defaults = %+v", c.Agent)
	}

	// The bot's Load does not need the agent's secret.
	if _, err := Load(filepath.Join(dir, "plain.toml"), fakeenv(nil)); err != nil {
		t.Errorf("Load of a file with [agent] but no secret: %v", err)
	}
}

func TestAgentTLSFilesAreChecked(t *testing.T) {
	cert, _ := selfSigned(t)
	dir := writeFiles(t, map[string]string{"agent.crt": cert, "agent.key": "not a key"})
	_, err := Parse([]byte("[agent]\nlisten = \":9426\"\ntls_cert = \"agent.crt\"\ntls_key = \"agent.key\"\n"), "agent.toml", dir, fakeenv(nil))
	if err == nil || !strings.HasPrefix(err.Error(), "agent.toml:3: agent.tls_cert: cannot load the certificate and key") {
		t.Errorf("err = %v", err)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	c, err := Parse([]byte("[[relay]]\nname = \"r\"\nkind = \"agent\"\nurl = \"https://r.test\"\nsecret_env = \"S\"\n"),
		"config.toml", "", fakeenv(map[string]string{"S": "top-secret-relay-0123456789abcdef", "SLACK_BOT_TOKEN": "xoxb-top-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "secret", c.Relays[0].Secret, "token", c.Slack.BotToken, "relay", c.Relays[0])
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "secret", c.Relays[0].Secret, "config", c)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("%v %+v %#v %s %s %q", c, c, c, c.Relays[0].Secret, logs.String(), js)
	for _, s := range []string{"top-secret-relay-0123456789abcdef", "xoxb-top-secret"} {
		if strings.Contains(out, s) {
			t.Errorf("a secret was printed: %s", out)
		}
	}
	if !strings.Contains(logs.String(), "secret=[redacted]") {
		t.Errorf("log = %s", logs.String())
	}
	if Secret("").String() != "" || c.Relays[0].Secret.Value() != "top-secret-relay-0123456789abcdef" {
		t.Error("Secret String/Value")
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		out  string
	}{
		{"20s", 20 * time.Second, "20s"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"30d", 30 * day, "30d"},
		{"400d", 400 * day, "400d"},
		{"1d12h", 36 * time.Hour, "1d12h"},
		{"1.5d", 36 * time.Hour, "1d12h"},
		{"2d30m15s", 2*day + 30*time.Minute + 15*time.Second, "2d30m15s"},
		{"0", 0, "0s"},
		{"-1d", -day, "-1d"},
		{"250ms", 250 * time.Millisecond, "250ms"},
		{"24h", day, "1d"},
		{"1d1ns", day + 1, "1d1ns"},
	} {
		d, err := ParseDuration(tc.in)
		if err != nil || d != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, d, err, tc.want)
			continue
		}
		text, _ := Duration{d}.MarshalText()
		if string(text) != tc.out {
			t.Errorf("MarshalText(%v) = %q, want %q", d, text, tc.out)
		}
		var back Duration
		if err := back.UnmarshalText(text); err != nil || back.Duration != d {
			t.Errorf("round trip of %q: %v, %v", text, back, err)
		}
	}
	for _, bad := range []string{"", "d", "30", "1x", "1d2", "20 seconds", "1..5d", "99999999999d", "9999999999999h", "1e3d"} {
		if d, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", bad, d)
		}
	}
}

func TestCheckCron(t *testing.T) {
	for _, ok := range []string{"@every 5m", "@hourly", "@daily", "CRON_TZ=Europe/Berlin 0 9 * * 1-5", "TZ=UTC */15 * * * *", "0 9 * * MON-FRI"} {
		if err := CheckCron(ok); err != nil {
			t.Errorf("CheckCron(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "CRON_TZ=UTC", "CRON_TZ=Mars/Base 0 9 * * *", "61 * * * *", "@every 1d", "@every 10ms", "@yearly2", "0 0 31 2 *", "* * * * * *"} {
		if err := CheckCron(bad); err == nil {
			t.Errorf("CheckCron(%q) = nil, want an error", bad)
		}
	}
}

func TestKeyIndex(t *testing.T) {
	text := `# comment [[relay]]
title = """
[[relay]]
name = "not a key"
"""
'quoted key' = 1
[target]   # the target
domain = 'gmail.com' # trailing
mx = [
  "a", # one
  "b",
]
dotted.key = { inner = "x", "q k" = [1, 2] }

[[relay]]
name = "relay-1"
[[relay]]
  name = "relay-2"
  "source_ips" = ["192.0.2.1"]
[relay.sub]
x = '''
y = 1
'''
[[report]]
cron = "0 9 * * *"
`
	ix, err := indexKeys([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int{
		"title":                  2,
		"quoted key":             6,
		"target":                 7,
		"target.domain":          8,
		"target.mx":              9,
		"target.mx[1]":           11,
		"target.dotted.key":      13,
		"target.dotted.key.q k":  13,
		"relay[0]":               15,
		"relay[0].name":          16,
		"relay[1].name":          18,
		"relay[1].source_ips":    19,
		"relay[1].source_ips[0]": 19,
		"relay[1].sub.x":         21,
		"report[0].cron":         25,
		"report[0].channel":      24, // falls back to the table
		"relay[7].name":          0,
	} {
		if got := ix.lineOf(key); got != want {
			t.Errorf("lineOf(%q) = %d, want %d", key, got, want)
		}
	}
	if _, ok := ix.lines["relay[2]"]; ok {
		t.Errorf("the index took text inside a multi-line string for a table")
	}
}

func TestProblemsSplitsJoinedErrors(t *testing.T) {
	_, err := Parse([]byte("[target]\nfamily = \"5\"\ntimeout = \"0s\"\n"), "c.toml", "", fakeenv(nil))
	ps := Problems(err)
	if len(ps) != 2 {
		t.Fatalf("Problems = %v", ps)
	}
	var p *Problem
	if !errors.As(ps[1], &p) || p.Key != "target.timeout" || p.Line != 3 || p.File != "c.toml" {
		t.Errorf("problem = %+v", p)
	}
	if Problems(nil) != nil {
		t.Error("Problems(nil) != nil")
	}
}

func TestParseBadWrapsErrInvalid(t *testing.T) {
	_, err := Parse([]byte("[target]\nfamily = \"5\"\n"), "config.toml", "", fakeenv(nil))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if want := `config.toml:2: target.family: "5" is not one of "4", "6" or "any"`; err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
}

func TestAgentMailLog(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ value, want, err string }{
		{`""`, "", ""},
		{`"journald"`, "journald", ""},
		{`"/var/log/mail.log"`, "/var/log/mail.log", ""},
		{`"missing-yet.log"`, "missing-yet.log", ""},
		{`"."`, "", "agent.toml:2: agent.mail_log: " + dir + " is a folder"},
		{`" /var/log/mail.log"`, "", `agent.toml:2: agent.mail_log: " /var/log/mail.log" is not a file name`},
	} {
		c, err := Parse([]byte("[agent]\nmail_log = "+tc.value+"\n"), "agent.toml", dir, fakeenv(nil))
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("mail_log = %s: err = %v, want %q", tc.value, err, tc.err)
			}
			continue
		}
		if err != nil || c.Agent.MailLog != tc.want {
			t.Errorf("mail_log = %s: %v, %q", tc.value, err, c.Agent.MailLog)
		}
	}
}

// TestControlMX: [target] control_mx decodes (empty by default), takes
// host[:port] entries, and refuses a malformed entry and any of Gmail's MX
// hosts, naming the entry's key and line.
func TestControlMX(t *testing.T) {
	cfg, err := Parse([]byte("[target]\ncontrol_mx = [\"mx.example.net\", \"[2001:db8::25]:2525\", \"192.0.2.25\"]\n"), "config.toml", "", fakeenv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Target.ControlMX, " "); got != "mx.example.net [2001:db8::25]:2525 192.0.2.25" {
		t.Errorf("control_mx = %s", got)
	}
	if cfg, err := Parse(nil, "config.toml", "", fakeenv(nil)); err != nil || len(cfg.Target.ControlMX) != 0 {
		t.Errorf("default control_mx = %v (%v), want empty", cfg.Target.ControlMX, err)
	}
	for entry, want := range map[string]string{
		"mx.example.net:99999":             `config.toml:4: target.control_mx[1]: "mx.example.net:99999": port must be a number from 1 to 65535`,
		"ALT1.gmail-smtp-in.l.google.com.": `config.toml:4: target.control_mx[1]: "ALT1.gmail-smtp-in.l.google.com." is one of Gmail's MX hosts`,
		"gmail-smtp-in.l.google.com:25":    `config.toml:4: target.control_mx[1]: "gmail-smtp-in.l.google.com:25" is one of Gmail's MX hosts`,
		"gmr-smtp-in.l.googlemail.com":     `config.toml:4: target.control_mx[1]: "gmr-smtp-in.l.googlemail.com" is one of Gmail's MX hosts`,
		"not a host":                       `config.toml:4: target.control_mx[1]: "not a host": not a host name or IP address`,
	} {
		_, err := Parse([]byte("[target]\ncontrol_mx = [\n  \"mx.example.net\",\n  \""+entry+"\",\n]\n"), "config.toml", "", fakeenv(nil))
		if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: err = %v\nwant prefix %s", entry, err, want)
		}
	}
}
