// Package config loads gmailtls's TOML configuration: it decodes bytes
// strictly (unknown keys are errors with their line), applies defaults and
// environment overrides, resolves secrets from the environment or files, and
// validates every section, reporting all problems at once.
package config

import "time"

// The methods of Duration and Secret are in duration.go and secret.go; the
// loading, defaults and validation in load.go and validate.go; where each
// key of a file is written in locate.go.

// Config is the whole configuration file.
type Config struct {
	Target    Target    `toml:"target"`
	Storage   Storage   `toml:"storage"`
	Retention Retention `toml:"retention"`
	// Relays is never empty after Load: with no [[relay]], one relay
	// {name "local", kind "local"} is implied.
	Relays     []Relay    `toml:"relay"`
	Slack      Slack      `toml:"slack"`
	Access     Access     `toml:"access"`
	Probing    Probing    `toml:"probing"`
	Reports    []Report   `toml:"report"`
	Alerts     Alerts     `toml:"alerts"`
	Escalation Escalation `toml:"escalation"`
	HTTP       HTTP       `toml:"http"`
	Log        Log        `toml:"log"`
	// Agent is never nil after Load, Parse or Default: without an [agent]
	// table it holds the defaults. LoadAgent requires the table.
	Agent *Agent `toml:"agent"`

	// Dir is the folder of the file the config came from; relative paths
	// (storage.path, ca_file, secret_file) are resolved against it.
	Dir string `toml:"-"`

	// meta remembers where each key was written (for error messages) and
	// which keys came from the environment; nil for a Config built in code.
	meta *meta
}

// Target says which mail exchangers are probed.
type Target struct {
	Domain     string   `toml:"domain"`     // default "gmail.com"
	MX         []string `toml:"mx"`         // pinned host[:port] list
	ServerName string   `toml:"servername"` // SNI and verification name
	CAFile     string   `toml:"ca_file"`    // extra roots (PEM)
	Timeout    Duration `toml:"timeout"`    // per stage, default 20s
	Family     string   `toml:"family"`     // "4", "6" or "any" (default)
	HelloName  string   `toml:"helo_name"`  // EHLO argument, default host name
	// Concurrency bounds the probes of one run (default 64, as
	// probe.DefaultConcurrency).
	Concurrency int `toml:"concurrency"`
	// ControlMX is a non-Gmail MX set (host[:port]) the operator trusts,
	// probed from the same relay beside every check and round: when it
	// fails like Gmail does, the relay's own network is at fault (scope
	// local_infrastructure), not Gmail. Empty: no control. An agent
	// probes only the control hosts of its own configuration.
	ControlMX []string `toml:"control_mx"`
}

// Storage says which database engine keeps the history and where.
type Storage struct {
	// Driver is "sqlite" (the default: one file, Path) or "postgres" (a
	// PostgreSQL database shared by several serve replicas, reached with
	// the connection string from DSNEnv or DSNFile).
	Driver string `toml:"driver"`
	Path   string `toml:"path"` // SQLite: default "gmailtls.db", relative to Dir
	// DSNEnv / DSNFile hold the PostgreSQL connection string, like every
	// other secret; with driver "postgres" and neither set, DSNEnv is
	// EnvPostgresDSN.
	DSNEnv  string `toml:"dsn_env"`
	DSNFile string `toml:"dsn_file"`

	// DSN is resolved from DSNEnv or DSNFile (driver "postgres" only);
	// never logged.
	DSN Secret `toml:"-"`
}

// Retention bounds how long history is kept.
type Retention struct {
	Raw    Duration `toml:"raw"`    // default 30 days
	Rollup Duration `toml:"rollup"` // default 400 days
}

// Relay is a named place a probe runs from.
type Relay struct {
	Name       string   `toml:"name"`
	Kind       string   `toml:"kind"`        // "local" or "agent"
	SourceIPs  []string `toml:"source_ips"`  // probe from each outbound IP (agents: their own addresses)
	URL        string   `toml:"url"`         // agent
	SecretEnv  string   `toml:"secret_env"`  // agent: env var holding the secret
	SecretFile string   `toml:"secret_file"` // agent: file holding the secret
	CAFile     string   `toml:"ca_file"`     // agent: CA of the agent's TLS cert
	Timeout    Duration `toml:"timeout"`     // agent request timeout, default 60s

	// Secret is resolved from SecretEnv or SecretFile; never logged.
	Secret Secret `toml:"-"`
}

// Slack configures the bot's connection to Slack.
type Slack struct {
	Mode              string `toml:"mode"`    // "socket" (default) or "http"
	APIURL            string `toml:"api_url"` // a missing trailing "/" is added
	BotTokenEnv       string `toml:"bot_token_env"`
	BotTokenFile      string `toml:"bot_token_file"`
	AppTokenEnv       string `toml:"app_token_env"`
	AppTokenFile      string `toml:"app_token_file"`
	SigningSecretEnv  string `toml:"signing_secret_env"`
	SigningSecretFile string `toml:"signing_secret_file"`
	Listen            string `toml:"listen"`  // http mode
	Command           string `toml:"command"` // default "/gmailtls"
	// ResponseURLHosts are the hosts the bot posts a payload's
	// response_url to (default Slack's, "hooks.slack.com"); host:port
	// for a test server.
	ResponseURLHosts []string `toml:"response_url_hosts"`

	BotToken      Secret `toml:"-"`
	AppToken      Secret `toml:"-"`
	SigningSecret Secret `toml:"-"`
}

// Access says who may run what.
type Access struct {
	Channels []string `toml:"channels"` // empty: any channel
	Users    []string `toml:"users"`    // empty: anyone
	Admins   []string `toml:"admins"`
}

// Probing is the periodic probing of every relay.
type Probing struct {
	Schedule string `toml:"schedule"` // default "@every 5m"; "" or "off" disables
	// On-demand checks (Slack, buttons, console) are rate limited with
	// token buckets; scheduled rounds and alert confirmations are not.
	// Each person may start UserBurst relay probes at once ("check all"
	// is one per relay), then one more every UserInterval; each relay is
	// probed on demand RelayBurst times at once, then once every
	// RelayInterval. A burst of 0 turns that limit off.
	UserBurst     int      `toml:"user_burst"`     // default 6
	UserInterval  Duration `toml:"user_interval"`  // default 20s
	RelayBurst    int      `toml:"relay_burst"`    // default 3
	RelayInterval Duration `toml:"relay_interval"` // default 10s
}

// Report is one scheduled health summary.
type Report struct {
	Cron    string   `toml:"cron"`
	Channel string   `toml:"channel"`
	Window  Duration `toml:"window"` // default 24h
}

// Alerts says where level changes are posted.
type Alerts struct {
	Channel     string   `toml:"channel"`
	RemindEvery Duration `toml:"remind_every"` // default 1h
	PostWatch   bool     `toml:"post_watch"`   // default false
	// FlapLimit is the number of level changes in an hour above which a
	// relay is reported once as flapping (default 4).
	FlapLimit int `toml:"flap_limit"`
}

// Escalation is the policy that turns history into levels.
type Escalation struct {
	Consecutive  int      `toml:"consecutive"`   // default 3
	MOfK         []int    `toml:"m_of_k"`        // default [3, 5]
	Window       Duration `toml:"window"`        // x failures in y: y, default 15m
	WindowCount  int      `toml:"window_count"`  // x failures in y: x, default 3
	RecoverAfter int      `toml:"recover_after"` // default 2
	// LogFailures TLS or connection failures toward Gmail in a relay's mail
	// log over the last hour make a relay whose probes pass watch.
	LogFailures int `toml:"log_failures"` // default 10
}

// HTTP serves /metrics, /healthz and /readyz.
type HTTP struct {
	Listen string `toml:"listen"` // default "127.0.0.1:9425"; "off" disables
}

// Log configures logging.
type Log struct {
	Format string `toml:"format"` // "text" (default) or "json"
	Level  string `toml:"level"`  // "debug", "info" (default), "warn", "error"
}

// Agent is the configuration of `gmailtls agent`.
type Agent struct {
	Listen     string `toml:"listen"` // default "127.0.0.1:9426"
	TLSCert    string `toml:"tls_cert"`
	TLSKey     string `toml:"tls_key"`
	SecretEnv  string `toml:"secret_env"`
	SecretFile string `toml:"secret_file"`
	// PreviousSecretEnv / PreviousSecretFile hold the old secret during a
	// rotation: both are accepted until it is removed.
	PreviousSecretEnv  string `toml:"previous_secret_env"`
	PreviousSecretFile string `toml:"previous_secret_file"`
	MaxProbes          int    `toml:"max_probes"` // default 4
	MTAStack           bool   `toml:"mta_stack"`  // also run openssl/posttls-finger (default true)
	Postqueue          string `toml:"postqueue"`  // default "postqueue"
	// MailLog is the MTA's mail log that GET /v1/log reads: a file
	// ("/var/log/mail.log", followed across rotation into mail.log.1) or
	// "journald" (the postfix and exim units through journalctl); empty:
	// off.
	MailLog string `toml:"mail_log"`
	// GmailDomains are recipient domains counted as Gmail-bound in the
	// queue besides gmail.com, googlemail.com and the domains whose MX
	// hosts are Google's (looked up): Google-hosted domains whose MX the
	// relay cannot see, for instance.
	GmailDomains []string `toml:"gmail_domains"`
	// StateDir is where the agent keeps its replay cache across restarts;
	// empty: in memory only.
	StateDir string `toml:"state_dir"`

	Secret         Secret `toml:"-"`
	PreviousSecret Secret `toml:"-"`
}

// Duration is a time.Duration written as a Go duration string ("20s",
// "1h30m") or with a day suffix ("30d").
type Duration struct{ time.Duration }

// Secret is a value that must never reach a log: its String and
// MarshalText forms are redacted.
type Secret string

// String returns a redacted form.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }
