package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// relayName is the syntax of relay names: they appear in Slack commands
// ("/gmailtls check relay-2"), metrics labels and the database.
var relayName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`) })

// reservedNames cannot name a relay: "check all" must stay unambiguous.
var reservedNames = map[string]bool{"all": true}

// problem builds a Problem about key ("relay[2].url"), with the line it was
// written on, or the environment variable that set it.
func (c *Config) problem(key, format string, args ...any) *Problem {
	p := &Problem{Key: key, Subject: c.subject(key), Msg: fmt.Sprintf(format, args...)}
	if m := c.meta; m != nil {
		p.File = m.file
		if env := m.env[key]; env != "" {
			p.Msg += " (set by the environment variable " + env + ")"
		} else {
			p.Line = m.keys.lineOf(key)
		}
	}
	return p
}

// subject shows a key for an operator: list items are named by index and,
// for relays, by name: "relay[2] (relay-3): url".
func (c *Config) subject(key string) string {
	head, rest, _ := strings.Cut(key, ".")
	open := strings.IndexByte(head, '[')
	if open < 0 || !strings.HasSuffix(head, "]") {
		return key
	}
	item := head
	if head[:open] == "relay" {
		if i, err := strconv.Atoi(head[open+1 : len(head)-1]); err == nil && i >= 0 && i < len(c.Relays) {
			if n := c.Relays[i].Name; relayName().MatchString(n) {
				item += " (" + n + ")"
			}
		}
	}
	if rest == "" {
		return item
	}
	return item + ": " + rest
}

// Validate checks every section and returns all problems at once
// (errors.Join of *Problem, each wrapping ErrInvalid), each naming the key
// and, when the Config came from a file, the line.
func (c *Config) Validate() error {
	v := &validator{c: c}
	v.target()
	v.storage()
	v.relays()
	v.slack()
	v.access()
	v.schedules()
	v.alerts()
	v.escalation()
	if c.HTTP.Listen != "off" {
		v.listen("http.listen", c.HTTP.Listen, `or "off"`)
	}
	v.log()
	if c.Agent != nil {
		v.agent()
	}
	return errors.Join(v.probs...)
}

type validator struct {
	c     *Config
	probs []error
}

func (v *validator) add(key, format string, args ...any) {
	v.probs = append(v.probs, v.c.problem(key, format, args...))
}

func (v *validator) positive(key string, d Duration) {
	if d.Duration <= 0 {
		v.add(key, "must be longer than zero, such as \"20s\", \"5m\" or \"1h\"")
	}
}

func (v *validator) atLeast(key string, n, lo int) {
	if n < lo {
		v.add(key, "must be %d or more, not %d", lo, n)
	}
}

func (v *validator) target() {
	t := &v.c.Target
	if !validDomain(t.Domain) {
		v.add("target.domain", "%q is not a domain name (letters, digits, hyphens and dots; write international names in their xn-- form)", t.Domain)
	}
	for i, mx := range t.MX {
		if err := checkHostPort(mx); err != nil {
			v.add(fmt.Sprintf("target.mx[%d]", i), "%q: %v", mx, err)
		}
	}
	for i, mx := range t.ControlMX {
		key := fmt.Sprintf("target.control_mx[%d]", i)
		if err := checkHostPort(mx); err != nil {
			v.add(key, "%q: %v", mx, err)
			continue
		}
		if gmailMX(mx) {
			v.add(key, "%q is one of Gmail's MX hosts: the control must be a destination other than Gmail (an MX you trust, such as your own domain's)", mx)
		}
	}
	if t.ServerName != "" && !validDomain(t.ServerName) {
		v.add("target.servername", "%q is not a host name (the name the MX certificate must carry)", t.ServerName)
	}
	v.caFile("target.ca_file", t.CAFile)
	v.positive("target.timeout", t.Timeout)
	switch t.Family {
	case "4", "6", "any":
	default:
		v.add("target.family", "%q is not one of \"4\", \"6\" or \"any\"", t.Family)
	}
	if t.HelloName != "" && !validDomain(t.HelloName) && !addressLiteral(t.HelloName) {
		v.add("target.helo_name", "%q is not a host name or an address literal such as [192.0.2.1]", t.HelloName)
	}
	if t.Concurrency < 1 || t.Concurrency > 1024 {
		v.add("target.concurrency", "must be between 1 and 1024, not %d", t.Concurrency)
	}
}

func (v *validator) storage() {
	v.storageDriver()
	r := v.c.Retention
	v.positive("retention.raw", r.Raw)
	v.positive("retention.rollup", r.Rollup)
	if r.Raw.Duration > 0 && r.Rollup.Duration > 0 && r.Rollup.Duration < r.Raw.Duration {
		v.add("retention.rollup", "%s is shorter than retention.raw (%s); hourly rollups must outlive the raw results", r.Rollup, r.Raw)
	}
}

func (v *validator) relays() {
	seen := map[string]int{}
	for i := range v.c.Relays {
		r := &v.c.Relays[i]
		item := fmt.Sprintf("relay[%d]", i)
		switch {
		case r.Name == "":
			v.add(item+".name", "is missing; every relay needs a name such as \"relay-1\"")
		case !relayName().MatchString(r.Name):
			v.add(item+".name", "%q is not a valid relay name: use lower-case letters, digits and hyphens, starting with a letter or digit, at most 63 characters", r.Name)
		case reservedNames[r.Name]:
			v.add(item+".name", "%q is reserved (\"check all\" means every relay); choose another name", r.Name)
		default:
			if j, dup := seen[r.Name]; dup {
				v.add(item+".name", "%q is already the name of relay[%d]; relay names must be unique", r.Name, j)
			} else {
				seen[r.Name] = i
			}
		}
		ips := map[string]bool{}
		for j, s := range r.SourceIPs {
			key := fmt.Sprintf("%s.source_ips[%d]", item, j)
			ip := net.ParseIP(s)
			switch {
			case ip == nil:
				v.add(key, "%q is not an IP address (write the literal outbound address, such as \"192.0.2.10\")", s)
			case ips[ip.String()]:
				v.add(key, "%q is listed twice", s)
			case ip.IsUnspecified() || ip.IsMulticast() || ip.Equal(net.IPv4bcast):
				v.add(key, "%q is not a unicast address: name one of the relay's own outbound addresses, such as \"192.0.2.10\"", s)
			}
			if ip != nil {
				ips[ip.String()] = true
			}
		}
		v.positive(item+".timeout", r.Timeout)
		switch r.Kind {
		case "local":
			for _, f := range []struct{ key, val string }{
				{"url", r.URL}, {"secret_env", r.SecretEnv}, {"secret_file", r.SecretFile}, {"ca_file", r.CAFile},
			} {
				if f.val != "" {
					v.add(item+"."+f.key, "is only used by relays of kind \"agent\"; remove it or set kind = \"agent\"")
				}
			}
		case "agent":
			v.agentURL(item+".url", r.URL)
			v.caFile(item+".ca_file", r.CAFile)
			switch {
			case r.SecretEnv != "" && r.SecretFile != "":
				v.add(item+".secret_file", "set secret_env or secret_file, not both")
			case r.SecretEnv == "" && r.SecretFile == "":
				v.add(item, "an agent relay needs its shared secret: set secret_env (an environment variable) or secret_file")
			case r.Secret == "":
				if v.c.meta == nil || !v.c.meta.relaySecretsLater {
					v.missingSecret(item+".secret", r.SecretEnv, r.SecretFile, "the shared secret of this relay's agent")
				}
			default:
				v.secretLength(item+".secret", r.SecretEnv, r.SecretFile, r.Secret)
			}
		default:
			v.add(item+".kind", "%q is not a relay kind: use \"local\" (probe from this host) or \"agent\" (a remote gmailtls agent)", r.Kind)
		}
	}
}

// missingSecret reports a secret that resolved to nothing. key is the key
// without its _env/_file suffix. The message never contains a value.
func (v *validator) missingSecret(key, env, file, what string) {
	v.probs = append(v.probs, v.c.missingSecret(key, env, file, what))
}

func (c *Config) missingSecret(key, env, file, what string) *Problem {
	if file != "" {
		if c.meta != nil {
			if err := c.meta.secretErrs[key+"_file"]; err != nil {
				return c.problem(key+"_file", "cannot read %s: %s; it should hold %s", c.Resolve(file), errText(err), what)
			}
		}
		return c.problem(key+"_file", "%s is empty; it should hold %s", c.Resolve(file), what)
	}
	return c.problem(key+"_env", "the environment variable %s is empty or not set; it should hold %s", env, what)
}

func (v *validator) agentURL(key, raw string) {
	if raw == "" {
		v.add(key, "is missing; an agent relay needs the agent's address, such as \"https://relay-2.internal:9426\"")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		v.add(key, "is not an absolute URL such as \"https://relay-2.internal:9426\"")
		return
	}
	if u.User != nil {
		v.add(key, "must not carry credentials; the agent is authenticated with secret_env or secret_file")
		return
	}
	if u.RawQuery != "" || u.Fragment != "" {
		v.add(key, "%q must not have a query or fragment", u.Redacted())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			v.add(key, "%q: port must be 1-65535", u.Redacted())
		}
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackHost(u.Hostname()) {
			v.add(key, "%q uses plain http to a host that is not loopback; use https (the agent serves TLS with tls_cert and tls_key)", u.Redacted())
		}
	default:
		v.add(key, "%q: scheme must be https (or http to a loopback address)", u.Redacted())
	}
}

// caFile checks that an extra-roots file can be read and holds a certificate.
func (v *validator) caFile(key, p string) {
	if p == "" {
		return
	}
	data, err := os.ReadFile(v.c.Resolve(p))
	if err != nil {
		v.add(key, "cannot read %s: %s", v.c.Resolve(p), errText(err))
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		v.add(key, "%s holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")", v.c.Resolve(p))
	}
}

func (v *validator) slack() {
	s := &v.c.Slack
	switch s.Mode {
	case "socket", "http":
	default:
		v.add("slack.mode", "%q is not a mode: use \"socket\" (Socket Mode, no public URL) or \"http\" (Events API over HTTP)", s.Mode)
	}
	if s.APIURL != "" {
		u, err := url.Parse(s.APIURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.add("slack.api_url", "is not an http(s) URL such as \"https://slack.com/api/\"")
		}
	}
	if !strings.HasPrefix(s.Command, "/") || len(s.Command) < 2 || strings.ContainsAny(s.Command, " \t") {
		v.add("slack.command", "%q is not a slash command such as \"/gmailtls\"", s.Command)
	}
	if len(s.ResponseURLHosts) == 0 {
		v.add("slack.response_url_hosts", "is empty: leave it out for Slack's own host (\"hooks.slack.com\")")
	}
	for _, h := range s.ResponseURLHosts {
		if u, err := url.Parse("https://" + h); err != nil || u.Host != h || u.Hostname() == "" || h != strings.TrimSpace(h) {
			v.add("slack.response_url_hosts", "%q is not a host name such as \"hooks.slack.com\" (no scheme, no path; host:port for a test server)", h)
		}
	}
	if s.Mode == "http" || s.Listen != "127.0.0.1:3000" {
		v.listen("slack.listen", s.Listen, "")
	}
	for _, name := range []string{"bot_token", "app_token", "signing_secret"} {
		if v.c.explicitBoth("slack." + name) {
			v.add("slack."+name+"_file", "set %s_env or %s_file, not both", name, name)
		}
	}
}

// explicitBoth reports whether the file wrote both key_env and key_file.
func (c *Config) explicitBoth(key string) bool {
	return c.meta != nil && c.meta.explicit[key+"_env"] && c.meta.explicit[key+"_file"]
}

// userID is the syntax of a Slack user ID: U (W in Enterprise Grid)
// followed by upper-case letters and digits.
var userID = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[UW][A-Z0-9]+$`) })

func (v *validator) access() {
	a := v.c.Access
	for i, s := range a.Channels {
		k := fmt.Sprintf("access.channels[%d]", i)
		switch {
		case strings.TrimSpace(s) == "":
			v.add(k, "is empty")
		case strings.HasPrefix(s, "#"):
			v.add(k, "%q is a name; use the channel ID instead (Slack sends IDs, not names)", s)
		case !channelID().MatchString(s):
			v.add(k, "%q is not a Slack channel ID: %s", s, channelIDHint)
		}
	}
	// Users are matched by ID only: a name can be changed by its owner and
	// is not unique, so a name here would let anyone in who takes it.
	users := func(key string, list []string) {
		for i, s := range list {
			k := fmt.Sprintf("%s[%d]", key, i)
			switch {
			case strings.TrimSpace(s) == "":
				v.add(k, "is empty; write a Slack member ID such as \"U0123ABCD\"")
			case !userID().MatchString(s):
				v.add(k, "%q is not a Slack user ID: use the member ID (such as \"U0123ABCD\"; in Slack, open the person's profile, ⋮ → \"Copy member ID\"), not the display name, which anyone can change", s)
			}
		}
	}
	users("access.users", a.Users)
	users("access.admins", a.Admins)
}

func (v *validator) channel(key, ch string, required bool) {
	switch {
	case ch == "":
		if required {
			v.add(key, "is missing; name the Slack channel ID (such as \"C0123ABCD\") the report goes to")
		}
	case strings.HasPrefix(ch, "#"):
		v.add(key, "%q is a channel name; use the channel ID (such as \"C0123ABCD\", from the channel's details)", ch)
	case !channelID().MatchString(ch):
		v.add(key, "%q is not a Slack channel ID: %s", ch, channelIDHint)
	}
}

// channelID is the shape of a Slack conversation ID: C (public channel),
// G (private channel) or D (direct message), then at least 8 upper-case
// letters and digits.
var channelID = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[CGD][A-Z0-9]{8,}$`) })

// placeholderChannel reports whether ch is one of config.toml.example's
// placeholders ("CREPLACE1"): valid in shape, so that the example passes
// config check, but serve refuses to start with one.
func placeholderChannel(ch string) bool { return strings.Contains(ch, "REPLACE") }

// channelIDHint says what a channel ID looks like and where to find it.
const channelIDHint = "a channel ID is C (or G for an old private channel) followed by upper-case letters and digits, such as \"C0123ABCD\"; in Slack, open the channel's name → About, and copy the Channel ID at the bottom"

func (v *validator) schedules() {
	p := v.c.Probing
	v.atLeast("probing.user_burst", p.UserBurst, 0)
	v.atLeast("probing.relay_burst", p.RelayBurst, 0)
	if p.UserBurst > 0 {
		v.positive("probing.user_interval", p.UserInterval)
	}
	if p.RelayBurst > 0 {
		v.positive("probing.relay_interval", p.RelayInterval)
	}
	if s := v.c.Probing.Schedule; s != "" && s != "off" {
		if err := CheckCron(s); err != nil {
			v.add("probing.schedule", "%v; \"off\" disables periodic probing", err)
		}
	}
	for i, r := range v.c.Reports {
		item := fmt.Sprintf("report[%d]", i)
		if r.Cron == "" {
			v.add(item+".cron", "is missing; say when the report is posted, such as \"CRON_TZ=Europe/Berlin 0 9 * * 1-5\"")
		} else if err := CheckCron(r.Cron); err != nil {
			v.add(item+".cron", "%v", err)
		}
		v.channel(item+".channel", r.Channel, true)
		v.positive(item+".window", r.Window)
	}
}

// CheckCron checks a schedule the way the scheduler will parse it
// (robfig/cron/v3 ParseStandard: five fields, descriptors such as
// "@every 5m" or "@daily", an optional "CRON_TZ=Zone " prefix) and that it
// fires at all.
func CheckCron(spec string) error {
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		eq := strings.IndexByte(spec, '=')
		sp := strings.IndexByte(spec, ' ')
		if sp < 0 {
			return fmt.Errorf("%q has a time zone but no schedule after it", spec)
		}
		zone := spec[eq+1 : sp]
		if _, err := time.LoadLocation(zone); err != nil {
			return fmt.Errorf("unknown time zone %q in %q (use an IANA zone name such as \"Europe/Berlin\" or \"UTC\")", zone, spec)
		}
	}
	sched, err := parseStandard(spec)
	if err != nil {
		return fmt.Errorf("%q is not a cron schedule: %v (use five fields \"minute hour day month weekday\", or \"@every 5m\", \"@hourly\", \"@daily\")", spec, err)
	}
	rest := spec
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		rest = strings.TrimSpace(spec[strings.IndexByte(spec, ' '):])
	}
	if every, ok := strings.CutPrefix(rest, "@every "); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(every)); err == nil && d < time.Second {
			return fmt.Errorf("%q: the interval must be at least 1s", spec)
		}
	}
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if sched.Next(from).IsZero() {
		return fmt.Errorf("%q never fires (no such date within five years)", spec)
	}
	return nil
}

// parseStandard is cron.ParseStandard, which panics on some malformed
// input ("CRON_TZ=UTC" with nothing after it).
func parseStandard(spec string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("malformed schedule")
		}
	}()
	return cron.ParseStandard(spec)
}

func (v *validator) alerts() {
	a := v.c.Alerts
	v.channel("alerts.channel", a.Channel, false)
	if a.RemindEvery.Duration < 0 {
		v.add("alerts.remind_every", "must not be negative (\"0s\" turns reminders off)")
	}
	v.atLeast("alerts.flap_limit", a.FlapLimit, 1)
}

func (v *validator) escalation() {
	e := v.c.Escalation
	v.atLeast("escalation.consecutive", e.Consecutive, 1)
	if len(e.MOfK) != 2 {
		v.add("escalation.m_of_k", "must be two numbers [M, K]: M failures among the last K probes, such as [3, 5]")
	} else if m, k := e.MOfK[0], e.MOfK[1]; m < 1 || k > 100 || m > k {
		v.add("escalation.m_of_k", "[%d, %d]: need 1 ≤ M ≤ K ≤ 100 (M failures among the last K probes)", m, k)
	}
	v.positive("escalation.window", e.Window)
	v.atLeast("escalation.window_count", e.WindowCount, 1)
	v.atLeast("escalation.recover_after", e.RecoverAfter, 1)
	v.atLeast("escalation.log_failures", e.LogFailures, 1)
}

func (v *validator) log() {
	switch v.c.Log.Format {
	case "text", "json":
	default:
		v.add("log.format", "%q is not a log format: use \"text\" or \"json\"", v.c.Log.Format)
	}
	switch v.c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", "%q is not a log level: use \"debug\", \"info\", \"warn\" or \"error\"", v.c.Log.Level)
	}
}

func (v *validator) agent() {
	a := v.c.Agent
	host, ok := v.listen("agent.listen", a.Listen, "")
	switch {
	case (a.TLSCert == "") != (a.TLSKey == ""):
		if a.TLSCert == "" {
			v.add("agent.tls_cert", "is missing: tls_key is set; configure both tls_cert and tls_key, or neither")
		} else {
			v.add("agent.tls_key", "is missing: tls_cert is set; configure both tls_cert and tls_key, or neither")
		}
	case a.TLSCert == "":
		if ok && !loopbackHost(host) {
			v.add("agent.listen", "%q is not a loopback address, and plain HTTP is allowed only on loopback; configure tls_cert and tls_key to serve HTTPS", a.Listen)
		}
	default:
		if _, err := tls.LoadX509KeyPair(v.c.Resolve(a.TLSCert), v.c.Resolve(a.TLSKey)); err != nil {
			v.add("agent.tls_cert", "cannot load the certificate and key (%s, %s): %s", v.c.Resolve(a.TLSCert), v.c.Resolve(a.TLSKey), errText(err))
		}
	}
	v.atLeast("agent.max_probes", a.MaxProbes, 1)
	if strings.TrimSpace(a.Postqueue) == "" {
		v.add("agent.postqueue", "is empty; name the postqueue command (default \"postqueue\")")
	}
	v.mailLog(a.MailLog)
	for i, d := range a.GmailDomains {
		if !plainDomain(d) {
			v.add(fmt.Sprintf("agent.gmail_domains[%d]", i), "%q is not a domain name such as \"example.com\"", d)
		}
	}
	bothSecret := v.c.explicitBoth("agent.secret")
	if bothSecret {
		v.add("agent.secret_file", "set secret_env or secret_file, not both")
	}
	bothPrevious := v.c.explicitBoth("agent.previous_secret")
	if bothPrevious {
		v.add("agent.previous_secret_file", "set previous_secret_env or previous_secret_file, not both")
	}
	if v.c.meta == nil || !v.c.meta.agent {
		return
	}
	switch {
	case bothSecret:
	case a.SecretEnv == "" && a.SecretFile == "":
		v.add("agent.secret_env", "is empty; the agent needs the shared secret of its relay entry: set secret_env or secret_file")
	case a.Secret == "":
		v.missingSecret("agent.secret", a.SecretEnv, a.SecretFile, "the shared secret the bot's relay entry uses")
	default:
		v.secretLength("agent.secret", a.SecretEnv, a.SecretFile, a.Secret)
	}
	if (a.PreviousSecretEnv != "" || a.PreviousSecretFile != "") && !bothPrevious {
		if a.PreviousSecret == "" {
			v.missingSecret("agent.previous_secret", a.PreviousSecretEnv, a.PreviousSecretFile, "the previous secret during a rotation (remove previous_secret_* when the rotation is over)")
		} else {
			v.secretLength("agent.previous_secret", a.PreviousSecretEnv, a.PreviousSecretFile, a.PreviousSecret)
		}
	}
}

// minSecretBytes is the shortest shared secret an agent and its relay
// entry accept: 32 bytes, as many as HMAC-SHA256's output.
const minSecretBytes = 32

// secretLength refuses a shared secret shorter than minSecretBytes. key is
// the key without its _env/_file suffix. The message never contains the
// value.
func (v *validator) secretLength(key, env, file string, s Secret) {
	n := len(s.Value())
	if n >= minSecretBytes {
		return
	}
	src, k := "the environment variable "+env, key+"_env"
	if file != "" {
		src, k = v.c.Resolve(file), key+"_file"
	}
	v.add(k, "the secret in %s is %d bytes long; a shared secret needs at least %d bytes: make one with \"openssl rand -hex 32\" (docs/agent.md)",
		src, n, minSecretBytes)
}

// listen checks a host:port listen address and returns its host.
func (v *validator) listen(key, addr, alt string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		var n int
		n, err = strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			err = errors.New("bad port")
		}
	}
	if err == nil && host != "" && net.ParseIP(host) == nil && !validDomain(host) {
		err = errors.New("bad host")
	}
	if err != nil {
		if alt != "" {
			alt = " " + alt
		}
		v.add(key, "%q is not a listen address host:port such as \"127.0.0.1:9425\"%s", addr, alt)
		return "", false
	}
	return host, true
}

// validDomain reports whether s is a DNS name made of letters, digits and
// hyphens (a trailing dot is allowed).
func validDomain(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// addressLiteral reports whether s is an SMTP address literal: [192.0.2.1]
// or [IPv6:2001:db8::1].
func addressLiteral(s string) bool {
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		return false
	}
	inner := s[1 : len(s)-1]
	if rest, ok := strings.CutPrefix(inner, "IPv6:"); ok {
		ip := net.ParseIP(rest)
		return ip != nil && ip.To4() == nil
	}
	ip := net.ParseIP(inner)
	return ip != nil && ip.To4() != nil
}

// checkHostPort checks a pinned MX entry: host, host:port, an IP address,
// or [IPv6]:port. The default port is 25.
// gmailMX reports whether a host[:port] entry names one of Gmail's MX
// hosts (any host under google.com or googlemail.com, where Gmail's MX
// set lives).
func gmailMX(s string) bool {
	host := s
	if h, _, err := net.SplitHostPort(s); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, d := range []string{"google.com", "googlemail.com"} {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

func checkHostPort(s string) error {
	if s == "" {
		return errors.New("empty entry")
	}
	if net.ParseIP(s) != nil {
		return nil
	}
	host := s
	if strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1 {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			return errors.New("not host[:port] (write IPv6 addresses with a port as [2001:db8::1]:25)")
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return errors.New("port must be a number from 1 to 65535")
		}
		host = h
	}
	if net.ParseIP(host) == nil && !validDomain(host) {
		return errors.New("not a host name or IP address")
	}
	return nil
}

// loopbackHost reports whether host is "localhost" or a loopback address.
func loopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// RequireRelaySecrets checks that every agent relay's shared secret was
// found: what talks to agents (serve, console, check, probe --relay) calls
// it after [LoadWithoutSecrets]; reading the database needs no secret.
// Messages name the variable or file, never a value.
func (c *Config) RequireRelaySecrets() error {
	var probs []error
	for i, r := range c.Relays {
		if r.Kind == "agent" && (r.SecretEnv != "" || r.SecretFile != "") && r.Secret == "" {
			probs = append(probs, c.missingSecret(fmt.Sprintf("relay[%d].secret", i), r.SecretEnv, r.SecretFile, "the shared secret of this relay's agent"))
		}
	}
	return errors.Join(probs...)
}

// RequireSlack checks that the secrets the configured Slack mode needs are
// present and look right: the bot token (xoxb-) always, the app-level token
// (xapp-) in socket mode, the signing secret in http mode. serve calls it;
// the CLI and the console work without Slack. Messages name the variable
// or file, never a value.
func (c *Config) RequireSlack() error {
	s := &c.Slack
	var probs []error
	need := func(key string, val Secret, env, file, what, prefix string) {
		switch {
		case env == "" && file == "":
			probs = append(probs, c.problem(key+"_env", "is empty; serve needs %s: set %s_env or %s_file", what, key[len("slack."):], key[len("slack."):]))
		case val == "":
			probs = append(probs, c.missingSecret(key, env, file, what+", needed by serve"))
		case prefix != "" && !strings.HasPrefix(val.Value(), prefix):
			src := "the environment variable " + env
			k := key + "_env"
			if file != "" {
				src, k = c.Resolve(file), key+"_file"
			}
			probs = append(probs, c.problem(k, "the value of %s does not start with %q: it is not %s", src, prefix, what))
		}
	}
	for i, r := range c.Reports {
		if placeholderChannel(r.Channel) {
			probs = append(probs, c.problem(fmt.Sprintf("report[%d].channel", i), "%q is the example's placeholder: put the ID of the channel the report goes to (%s)", r.Channel, channelIDHint))
		}
	}
	if placeholderChannel(c.Alerts.Channel) {
		probs = append(probs, c.problem("alerts.channel", "%q is the example's placeholder: put the ID of the channel alerts go to (%s)", c.Alerts.Channel, channelIDHint))
	}
	need("slack.bot_token", s.BotToken, s.BotTokenEnv, s.BotTokenFile, "the bot token (xoxb-…)", "xoxb-")
	switch s.Mode {
	case "socket":
		need("slack.app_token", s.AppToken, s.AppTokenEnv, s.AppTokenFile, "the app-level token for Socket Mode (xapp-…)", "xapp-")
	case "http":
		need("slack.signing_secret", s.SigningSecret, s.SigningSecretEnv, s.SigningSecretFile, "the signing secret for HTTP mode", "")
	default:
		probs = append(probs, c.problem("slack.mode", "%q is not a mode: use \"socket\" or \"http\"", s.Mode))
	}
	return errors.Join(probs...)
}

// mailLog checks [agent] mail_log: empty (off), "journald", or a file that,
// when it exists already, is not a folder. A file that does not exist yet
// is accepted: the MTA may create it after the agent starts, and the
// answer of GET /v1/log says it is missing meanwhile.
func (v *validator) mailLog(p string) {
	switch {
	case p == "" || p == "journald":
		return
	case strings.TrimSpace(p) != p || strings.ContainsAny(p, "\x00\n"):
		v.add("agent.mail_log", "%q is not a file name: name the MTA's log file (\"/var/log/mail.log\") or \"journald\"", p)
		return
	}
	if fi, err := os.Stat(v.c.Resolve(p)); err == nil && fi.IsDir() {
		v.add("agent.mail_log", "%s is a folder: name the MTA's log file (\"/var/log/mail.log\") or \"journald\"", v.c.Resolve(p))
	}
}

// plainDomain reports whether d looks like a mail domain: dot-separated
// labels of letters, digits and hyphens, at least two of them, with an
// optional trailing dot.
func plainDomain(d string) bool {
	d = strings.TrimSuffix(d, ".")
	labels := strings.Split(d, ".")
	if len(d) > 253 || len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
