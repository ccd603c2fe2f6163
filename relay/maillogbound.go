package relay

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/maillog"
	"github.com/gmailtls/gmailtls/probe"
)

// MailLogBound decides, from the relay's own mail log, which queued
// recipients are Gmail-bound because their delivery attempts went to one
// of the target's MX hosts or addresses (issue D's third criterion, the
// ServerConfig.MailLogBound hook). It reads the log at most once per TTL,
// on the first question after the cache expires, and answers from the
// cache otherwise. Safe for concurrent use.
type MailLogBound struct {
	// Source is the mail log ([agent] mail_log): a path or "journald".
	Source string
	// Targets are the target's pinned MX hosts (host names or addresses);
	// empty: the target is looked up by DNS, and an attempt counts when
	// its MX host is Google's.
	Targets []probe.Target
	// Window is how far back the log is read (default 24h, the MaxLogWindow
	// bound).
	Window time.Duration
	// TTL is how long one read answers (default a minute).
	TTL time.Duration
	// Commands runs journalctl for "journald" (default an ExecRunner).
	Commands CommandRunner
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu      sync.Mutex
	readAt  time.Time
	bound   map[string]map[string]bool // queue ID → domains (lower-case); "" for any
	hosts   map[string]bool
	ips     map[string]bool
	prepped bool
}

// mailLogBoundTimeout bounds one read of the log for MailLogBound.
const mailLogBoundTimeout = 20 * time.Second

func (b *MailLogBound) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// Func returns the hook for ServerConfig.MailLogBound.
func (b *MailLogBound) Func() func(queueID, domain string) bool {
	return b.Bound
}

// Bound reports whether the log shows queueID's attempts to domain going
// to one of the target's MX hosts or addresses.
func (b *MailLogBound) Bound(queueID, domain string) bool {
	if b == nil || b.Source == "" || queueID == "" {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refresh()
	ds := b.bound[queueID]
	return ds[""] || ds[strings.ToLower(strings.TrimSuffix(domain, "."))]
}

// refresh rereads the log when the cache is older than TTL. Must hold mu.
func (b *MailLogBound) refresh() {
	if !b.prepped {
		b.hosts, b.ips = map[string]bool{}, map[string]bool{}
		for _, t := range b.Targets {
			if a, err := netip.ParseAddr(t.Host); err == nil {
				b.ips[a.Unmap().String()] = true
			} else {
				b.hosts[normHost(t.Host)] = true
			}
		}
		b.prepped = true
	}
	ttl := b.TTL
	if ttl <= 0 {
		ttl = time.Minute
	}
	now := b.now()
	if b.bound != nil && now.Sub(b.readAt) < ttl {
		return
	}
	window := b.Window
	if window <= 0 || window > MaxLogWindow {
		window = MaxLogWindow
	}
	ctx, cancel := context.WithTimeout(context.Background(), mailLogBoundTimeout)
	defer cancel()
	cmds := b.Commands
	if cmds == nil {
		cmds = &ExecRunner{MaxOutput: maillog.DefaultMaxJournal}
	}
	s, err := maillog.Read(ctx, b.Source, window, maillog.Options{Clock: maillog.Clock{Now: now}, Commands: cmds})
	b.readAt, b.bound = now, map[string]map[string]bool{}
	if err != nil || !s.Available {
		return
	}
	for _, q := range s.Queue {
		for _, a := range q.Attempts {
			if !b.target(a) {
				continue
			}
			ds := b.bound[q.QueueID]
			if ds == nil {
				ds = map[string]bool{}
				b.bound[q.QueueID] = ds
			}
			if a.Domain != "" {
				ds[strings.ToLower(a.Domain)] = true
			} else {
				for _, d := range q.Domains {
					ds[strings.ToLower(d)] = true
				}
			}
		}
	}
}

// target reports whether an attempt went to the target's MX.
func (b *MailLogBound) target(a maillog.Attempt) bool {
	if a.MXIP != "" {
		if ip, err := netip.ParseAddr(a.MXIP); err == nil && b.ips[ip.Unmap().String()] {
			return true
		}
	}
	if a.MXHost == "" {
		return false
	}
	if len(b.Targets) == 0 {
		return IsGoogleMXHost(a.MXHost)
	}
	return b.hosts[normHost(a.MXHost)]
}
