package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/relay/mta"
)

// PolicyReader is a relay that can describe its MTA's TLS policy toward
// Gmail.
type PolicyReader interface {
	Policy(ctx context.Context) (Policy, error)
}

// Policy is the relay MTA's TLS policy toward the target domain
// (gmail.com): what Postfix's main.cf and tables, or Exim's configuration,
// say, and what a TLS failure toward Gmail therefore does to the relay's
// Gmail-bound mail (OnTLSFailure, Effect).
type Policy struct {
	// Available is false when no MTA configuration could be read; Error
	// then says why.
	Available bool   `json:"available"`
	Error     string `json:"error,omitempty"`
	// MTA is "postfix" or "exim".
	MTA string `json:"mta,omitempty"`
	// Domain is the domain the policy is read for.
	Domain string `json:"domain"`

	// SecurityLevel is main.cf's smtp_tls_security_level.
	SecurityLevel string `json:"security_level,omitempty"`
	// PolicyMaps is smtp_tls_policy_maps.
	PolicyMaps string `json:"policy_maps,omitempty"`
	// PolicyKey is the key the policy tables were asked for: the next hop
	// when a transport or relayhost names one, else the domain.
	PolicyKey string `json:"policy_key,omitempty"`
	// PolicyEntry is the first table's answer for PolicyKey (or for the
	// domain), from PolicyTable.
	PolicyEntry string `json:"policy_entry,omitempty"`
	PolicyTable string `json:"policy_table,omitempty"`
	// MTASTSResolver is the policy table that is an MTA-STS resolver
	// (a socketmap): MTA-STS is delegated to it.
	MTASTSResolver string `json:"mta_sts_resolver,omitempty"`
	// EffectiveLevel is the level Postfix applies toward the domain: the
	// policy entry's, else SecurityLevel.
	EffectiveLevel string `json:"effective_level,omitempty"`

	// TransportMaps is transport_maps; Transport the entry for the domain.
	TransportMaps string `json:"transport_maps,omitempty"`
	Transport     string `json:"transport,omitempty"`
	// Relayhost is main.cf's relayhost.
	Relayhost string `json:"relayhost,omitempty"`
	// NextHop is where the domain's mail goes: the transport's next hop,
	// else the relayhost, else the domain's MX hosts (empty).
	NextHop string `json:"next_hop,omitempty"`

	// CAFile and CAPath are smtp_tls_CAfile and smtp_tls_CApath.
	CAFile string `json:"ca_file,omitempty"`
	CAPath string `json:"ca_path,omitempty"`
	// CACertificates counts the certificates read from them;
	// CANewestNotBefore is the newest one's notBefore (how recent the
	// bundle is), CANewestSubject its subject.
	CACertificates    int       `json:"ca_certificates,omitempty"`
	CANewestNotBefore time.Time `json:"ca_newest_not_before,omitzero"`
	CANewestSubject   string    `json:"ca_newest_subject,omitempty"`

	MandatoryProtocols string `json:"mandatory_protocols,omitempty"`
	MandatoryCiphers   string `json:"mandatory_ciphers,omitempty"`
	Protocols          string `json:"protocols,omitempty"`

	// Exim is what `exim -bP` shows, on an Exim relay.
	Exim *EximPolicy `json:"exim,omitempty"`

	// OnTLSFailure is what a TLS failure toward Gmail does to Gmail-bound
	// mail: "mail_waits", "delivered_without_tls", "tls_off" or "unknown".
	OnTLSFailure string `json:"on_tls_failure"`
	// Effect says it in a sentence, for an operator.
	Effect string `json:"effect"`
	// Warnings are problems met while reading (a table that could not be
	// queried, an unreadable CA file); at most 10.
	Warnings []string `json:"warnings,omitempty"`
}

// EximPolicy is the part of Exim's configuration that decides TLS toward
// Gmail.
type EximPolicy struct {
	TLSRequireCiphers string `json:"tls_require_ciphers,omitempty"`
	// HostsRequireTLS and HostsTryTLS are the remote_smtp transport's.
	HostsRequireTLS string `json:"hosts_require_tls,omitempty"`
	HostsTryTLS     string `json:"hosts_try_tls,omitempty"`
	// TLSTempfailTryclear is the transport's tls_tempfail_tryclear.
	TLSTempfailTryclear bool `json:"tls_tempfail_tryclear"`
}

// postconfPolicyParams are the main.cf parameters Policy reads.
var postconfPolicyParams = []string{
	"smtp_tls_security_level", "smtp_tls_policy_maps", "transport_maps", "relayhost",
	"smtp_tls_CAfile", "smtp_tls_CApath",
	"smtp_tls_mandatory_protocols", "smtp_tls_mandatory_ciphers", "smtp_tls_protocols",
}

// Bounds of reading a CA bundle.
const (
	maxCAFileBytes  = 16 << 20
	maxCAPathFiles  = 5000
	maxCAPathBytes  = 64 << 20
	maxPolicyWarns  = 10
	policyTableKeys = 2
)

// policyDomain is the domain Policy reads the policy for: the target's.
func (l *Local) policyDomain() string {
	if d := strings.TrimSuffix(strings.ToLower(l.base.Domain), "."); d != "" {
		return d
	}
	return "gmail.com"
}

func (l *Local) mailConfig() string {
	if l.MailConfig != "" {
		return l.MailConfig
	}
	return os.Getenv("MAIL_CONFIG")
}

// Policy reads the relay MTA's TLS policy toward the target domain: for
// Postfix from `postconf` and `postmap -q` (with -c MailConfig when set),
// for Exim from `exim -bP`. A host with neither answers Available false;
// the error return is unused today.
func (l *Local) Policy(ctx context.Context) (Policy, error) {
	p := Policy{Domain: l.policyDomain()}
	cmds := l.commands()
	var conf []string
	if dir := l.mailConfig(); dir != "" {
		conf = []string{"-c", dir}
	}
	out, err := l.tool(ctx, cmds, "postconf", append(conf, postconfPolicyParams...)...)
	if err == nil {
		l.postfixPolicy(ctx, cmds, conf, mta.ParseSettings([]byte(out)), &p)
		return p, nil
	}
	postfixErr := err
	if l.eximPolicy(ctx, cmds, &p) {
		return p, nil
	}
	p.OnTLSFailure = mta.TLSFailureUnknown
	switch {
	case errors.Is(postfixErr, exec.ErrNotFound):
		p.Error = "neither Postfix (postconf) nor Exim found: no MTA configuration to read"
	default:
		p.Error = fmt.Sprintf("postconf failed: %v", postfixErr)
		if msg := strings.TrimSpace(out); msg != "" {
			p.Error += ": " + truncate(firstLine(msg), 200)
		}
	}
	p.Effect = p.Error
	return p, nil
}

func (p *Policy) warn(format string, args ...any) {
	if len(p.Warnings) < maxPolicyWarns {
		p.Warnings = append(p.Warnings, truncate(fmt.Sprintf(format, args...), 300))
	}
}

func (l *Local) postfixPolicy(ctx context.Context, cmds CommandRunner, conf []string, set map[string]string, p *Policy) {
	p.Available, p.MTA = true, "postfix"
	p.SecurityLevel = set["smtp_tls_security_level"]
	p.PolicyMaps = set["smtp_tls_policy_maps"]
	p.TransportMaps = set["transport_maps"]
	p.Relayhost = set["relayhost"]
	p.CAFile, p.CAPath = set["smtp_tls_CAfile"], set["smtp_tls_CApath"]
	p.MandatoryProtocols = set["smtp_tls_mandatory_protocols"]
	p.MandatoryCiphers = set["smtp_tls_mandatory_ciphers"]
	p.Protocols = set["smtp_tls_protocols"]

	// The transport: the first table with an entry for the domain.
	for _, table := range mta.SplitMaps(p.TransportMaps) {
		if v, ok := l.postmap(ctx, cmds, conf, p, table, p.Domain); ok {
			p.Transport = v
			break
		}
	}
	p.NextHop = transportNextHop(p.Transport)
	if p.NextHop == "" && p.Relayhost != "" && !strings.Contains(p.Transport, ":") {
		p.NextHop = p.Relayhost
	}
	// The TLS policy: Postfix asks the tables for the next hop (the
	// domain when mail goes to its MX hosts).
	keys := []string{p.Domain}
	if p.NextHop != "" && !strings.EqualFold(p.NextHop, p.Domain) {
		keys = []string{p.NextHop, p.Domain}
	}
	tables := mta.SplitMaps(p.PolicyMaps)
	for _, table := range tables {
		if mta.IsMTASTSResolver(table) && p.MTASTSResolver == "" {
			p.MTASTSResolver = table
		}
	}
lookup:
	for _, key := range keys[:min(len(keys), policyTableKeys)] {
		for _, table := range tables {
			if v, ok := l.postmap(ctx, cmds, conf, p, table, key); ok {
				p.PolicyKey, p.PolicyEntry, p.PolicyTable = key, v, table
				break lookup
			}
		}
	}
	if p.PolicyKey == "" && len(tables) > 0 {
		p.PolicyKey = keys[0]
	}
	p.EffectiveLevel = p.SecurityLevel
	if lv := mta.PolicyLevel(p.PolicyEntry); lv != "" {
		p.EffectiveLevel = lv
	}
	l.readCAs(p)
	eff := mta.InterpretTLSPolicy(mta.TLSPolicy{
		MTA:            "postfix",
		Level:          p.EffectiveLevel,
		MTASTS:         p.MTASTSResolver != "",
		MTASTSAnswered: p.PolicyTable != "" && p.PolicyTable == p.MTASTSResolver,
	})
	p.OnTLSFailure, p.Effect = eff.OnTLSFailure, eff.Text
	if p.MTASTSResolver != "" {
		p.Effect += " MTA-STS is delegated to " + p.MTASTSResolver + "."
	}
}

// postmap asks one table for key. Not found (postmap's exit status 1
// without output) is not a warning; other failures are.
func (l *Local) postmap(ctx context.Context, cmds CommandRunner, conf []string, p *Policy, table, key string) (string, bool) {
	args := append(append([]string{}, conf...), "-q", key, table)
	out, err := l.tool(ctx, cmds, "postmap", args...)
	if err == nil {
		v := firstLine(out)
		return truncate(v, 500), v != ""
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 && out == "" {
		return "", false
	}
	msg := err.Error()
	if out != "" {
		msg = truncate(firstLine(out), 200)
	}
	p.warn("postmap -q %s %s: %s", key, table, msg)
	return "", false
}

// transportNextHop is the next hop of a transport entry
// ("smtp:[127.0.0.1]:2526" → "[127.0.0.1]:2526"; "smtp:" → "").
func transportNextHop(entry string) string {
	entry = strings.TrimSpace(entry)
	if entry == "" {
		return ""
	}
	_, hop, ok := strings.Cut(entry, ":")
	if !ok {
		return ""
	}
	return strings.TrimSpace(hop)
}

// readCAs reads the certificates of smtp_tls_CAfile and smtp_tls_CApath.
func (l *Local) readCAs(p *Policy) {
	var b mta.CABundle
	if p.CAFile != "" {
		data, err := readCapped(p.CAFile, maxCAFileBytes)
		if err != nil {
			p.warn("reading smtp_tls_CAfile: %v", err)
		} else {
			b.Merge(mta.ParseCABundle(data))
		}
	}
	if p.CAPath != "" {
		b.Merge(readCAPath(p))
	}
	p.CACertificates, p.CANewestNotBefore, p.CANewestSubject = b.Certificates, b.NewestNotBefore.UTC(), b.NewestSubject
	if b.NewestNotBefore.IsZero() {
		p.CANewestNotBefore = time.Time{}
	}
}

func readCAPath(p *Policy) mta.CABundle {
	var b mta.CABundle
	entries, err := os.ReadDir(p.CAPath)
	if err != nil {
		p.warn("reading smtp_tls_CApath: %v", err)
		return b
	}
	seen := map[string]bool{}
	total := 0
	for i, e := range entries {
		if i >= maxCAPathFiles || total >= maxCAPathBytes {
			p.warn("smtp_tls_CApath %s: only the first %d files or %d MiB read", p.CAPath, maxCAPathFiles, maxCAPathBytes>>20)
			break
		}
		path := filepath.Join(p.CAPath, e.Name())
		// Hash links and the files they name are the same certificate.
		real, err := filepath.EvalSymlinks(path)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		fi, err := os.Stat(real)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		data, err := readCapped(real, maxCAFileBytes)
		if err != nil {
			continue
		}
		total += len(data)
		b.Merge(mta.ParseCABundle(data))
	}
	return b
}

func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d MiB", path, max>>20)
	}
	return data, nil
}

// eximPolicy reads Exim's TLS settings with `exim -bP`; false when Exim is
// not there.
func (l *Local) eximPolicy(ctx context.Context, cmds CommandRunner, p *Policy) bool {
	out, err := l.tool(ctx, cmds, "exim", "-bP", "tls_require_ciphers")
	if err != nil && (errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)) {
		return false
	}
	if err != nil && out == "" {
		return false
	}
	e := &EximPolicy{TLSRequireCiphers: mta.ParseSettings([]byte(out))["tls_require_ciphers"], TLSTempfailTryclear: true}
	p.Available, p.MTA, p.Exim = true, "exim", e
	tout, terr := l.tool(ctx, cmds, "exim", "-bP", "transport", "remote_smtp")
	if terr != nil {
		p.warn("exim -bP transport remote_smtp: %v", terr)
	}
	tset := mta.ParseSettings([]byte(tout))
	e.HostsRequireTLS, e.HostsTryTLS = tset["hosts_require_tls"], tset["hosts_try_tls"]
	for line := range strings.Lines(tout) {
		switch strings.TrimSpace(line) {
		case "no_tls_tempfail_tryclear":
			e.TLSTempfailTryclear = false
		case "tls_tempfail_tryclear":
			e.TLSTempfailTryclear = true
		}
	}
	if v, ok := tset["tls_tempfail_tryclear"]; ok {
		e.TLSTempfailTryclear = !strings.EqualFold(v, "false") && !strings.EqualFold(v, "no")
	}
	eff := mta.InterpretTLSPolicy(mta.TLSPolicy{MTA: "exim", EximRequireTLS: e.HostsRequireTLS, EximTryClear: e.TLSTempfailTryclear})
	p.OnTLSFailure, p.Effect = eff.OnTLSFailure, eff.Text
	return true
}

// Policy asks the agent for its MTA's TLS policy toward Gmail. Errors wrap
// ErrAgentUnreachable or ErrAgentError; a relay without an MTA answers
// normally with Available false.
func (a *Agent) Policy(ctx context.Context) (Policy, error) {
	data, err := a.do(ctx, http.MethodGet, PathPolicy, nil)
	if err != nil {
		return Policy{}, err
	}
	var p Policy
	if err := json.Unmarshal(data, &p); err != nil {
		return Policy{}, fmt.Errorf("%w: relay %s: the agent's policy answer is not valid JSON: %w", ErrAgentError, a.name, err)
	}
	if len(p.Warnings) > maxPolicyWarns {
		p.Warnings = p.Warnings[:maxPolicyWarns]
	}
	return p, nil
}
