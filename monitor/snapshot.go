package monitor

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/relay"
)

// ErrUnknownRelay marks a relay name that is not configured.
var ErrUnknownRelay = errors.New("monitor: unknown relay")

// ErrTarget marks an --mx host that is not part of the configured target.
var ErrTarget = errors.New("monitor: not a configured target")

// Snapshot is one configuration in force: the configuration, the relays
// built from it and the escalation policy. A Snapshot never changes; Reload
// installs a new one.
type Snapshot struct {
	Config  *config.Config
	Runners map[string]relay.Runner
	Policy  escalation.Policy
	names   []string
}

// NewSnapshot bundles a configuration with its relays. A zero policy means
// the configuration's [escalation] section; a nil cfg the defaults.
func NewSnapshot(cfg *config.Config, runners map[string]relay.Runner, policy escalation.Policy) *Snapshot {
	if cfg == nil {
		cfg = config.Default()
	}
	if policy == (escalation.Policy{}) {
		policy = PolicyFromConfig(cfg.Escalation)
	}
	names := slices.Sorted(maps.Keys(runners))
	return &Snapshot{Config: cfg, Runners: runners, Policy: policy, names: names}
}

// Names lists the configured relays, sorted. The slice is shared: do not
// change it.
func (s *Snapshot) Names() []string { return s.names }

// Runner returns the relay's runner, or an error wrapping ErrUnknownRelay
// that names the configured relays.
func (s *Snapshot) Runner(name string) (relay.Runner, error) {
	if r, ok := s.Runners[name]; ok && r != nil {
		return r, nil
	}
	if len(s.names) == 0 {
		return nil, fmt.Errorf("%w: %q: no relays are configured; add a [[relay]] block to the configuration", ErrUnknownRelay, name)
	}
	return nil, fmt.Errorf("%w: there is no relay %q; the relays are %s", ErrUnknownRelay, name, strings.Join(s.names, ", "))
}

// Prepare checks c against this configuration: its relay (unless empty,
// which CheckAll ignores) must be configured and each of its MX hosts name
// an entry of the configured target (ResolveMX). The Check returned is
// bound to s, its MX hosts replaced by the configured entries they name:
// CheckRelay and CheckAll run it under s without checking it again.
func (s *Snapshot) Prepare(c Check) (Check, error) {
	if c.Relay != "" {
		if _, err := s.Runner(c.Relay); err != nil {
			return c, err
		}
	}
	if len(c.MX) > 0 {
		resolved := make([]string, 0, len(c.MX))
		for _, mx := range c.MX {
			entry, err := s.ResolveMX(mx)
			if err != nil {
				return c, err
			}
			resolved = append(resolved, entry)
		}
		c.MX = resolved
	}
	c.snap = s
	return c, nil
}

// wellKnownGmailMX is Gmail's MX set, used to check --mx without a DNS
// lookup when the target is gmail.com.
var wellKnownGmailMX = [...]string{
	"gmail-smtp-in.l.google.com",
	"alt1.gmail-smtp-in.l.google.com",
	"alt2.gmail-smtp-in.l.google.com",
	"alt3.gmail-smtp-in.l.google.com",
	"alt4.gmail-smtp-in.l.google.com",
}

// ResolveMX maps an --mx argument to the configured target entry it names.
// With a pinned list it must be one of its entries (or an entry's host);
// with gmail.com from DNS it must be one of Gmail's MX names; for other
// domains it must be a plain host name under which the relay itself checks
// the domain's MX set. Ports and addresses are never accepted unless they
// are pinned: no command can aim gmailtls at another host or port. The
// error wraps ErrTarget.
func (s *Snapshot) ResolveMX(arg string) (string, error) {
	t := s.Config.Target
	arg = strings.ToLower(strings.TrimSuffix(arg, "."))
	if len(t.MX) > 0 {
		var hosts []string
		for _, entry := range t.MX {
			e := strings.ToLower(entry)
			host := e
			if hh, _, err := net.SplitHostPort(e); err == nil {
				host = hh
			}
			if arg == e || arg == host || arg == "["+host+"]" {
				return entry, nil
			}
			hosts = append(hosts, entry)
		}
		return "", fmt.Errorf("%w: %q is not one of the pinned MX hosts (%s); gmailtls only probes its configured target", ErrTarget, arg, strings.Join(hosts, ", "))
	}
	domain := strings.ToLower(t.Domain)
	if domain == "" || domain == "gmail.com" {
		if slices.Contains(wellKnownGmailMX[:], arg) {
			return arg, nil
		}
		return "", fmt.Errorf("%w: %q is not one of Gmail's MX hosts (%s); gmailtls only probes its configured target", ErrTarget, arg, strings.Join(wellKnownGmailMX[:], ", "))
	}
	if strings.ContainsAny(arg, ":[]") || net.ParseIP(arg) != nil {
		return "", fmt.Errorf("%w: %q is an address; --mx takes one of %s's MX host names", ErrTarget, arg, domain)
	}
	return arg, nil
}
