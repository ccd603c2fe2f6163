package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/relay/mta"
)

// toolTimeout bounds each of the small tools Info and Queue run.
const toolTimeout = 10 * time.Second

// Info describes this host: host name, version, outbound IPs (the
// non-loopback interface addresses), clock, MTA and TLS library. Tools that
// are missing leave their fields empty; Info fails only when the host name
// cannot be read.
func (l *Local) Info(ctx context.Context) (Info, error) {
	hostname := os.Hostname
	if l.Hostname != nil {
		hostname = l.Hostname
	}
	h, err := hostname()
	if err != nil {
		return Info{}, fmt.Errorf("relay %s: reading the host name: %w", l.name, err)
	}
	info := Info{Hostname: h, Version: l.Version, OutboundIPs: []string{}}
	addrs := net.InterfaceAddrs
	if l.InterfaceAddrs != nil {
		addrs = l.InterfaceAddrs
	}
	if as, err := addrs(); err == nil {
		info.OutboundIPs = outboundIPs(as)
	} else {
		l.logger().Warn("relay: listing interface addresses failed", "error", err.Error())
	}
	cmds := l.commands()
	if out, err := l.tool(ctx, cmds, "postconf", "-d", "-h", "mail_version"); err == nil && out != "" {
		info.MTA, info.MTAVersion = "postfix", out
	} else if out, err := l.tool(ctx, cmds, "exim", "-bV"); err == nil || out != "" {
		if v := eximVersion(out); v != "" {
			info.MTA, info.MTAVersion = "exim", v
		}
	}
	if out, err := l.tool(ctx, cmds, "openssl", "version"); err == nil {
		info.TLSLibrary = out
	}
	info.Clock = l.now()
	return info, nil
}

// tool runs a small command with a timeout and returns its trimmed output.
func (l *Local) tool(ctx context.Context, cmds CommandRunner, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	out, err := cmds.Run(ctx, name, args...)
	if err != nil && !errors.Is(err, exec.ErrNotFound) {
		l.logger().Debug("relay: tool failed", "tool", name, "error", err.Error())
	}
	return strings.TrimSpace(string(out)), err
}

// eximVersion picks "4.96" out of `exim -bV`'s "Exim version 4.96 #2 built ...".
func eximVersion(out string) string {
	for line := range strings.Lines(out) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Exim version "); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0]
			}
		}
	}
	return ""
}

// outboundIPs keeps the global and private unicast addresses: loopback,
// link-local and unspecified addresses are not where mail leaves from.
func outboundIPs(addrs []net.Addr) []string {
	out := []string{}
	for _, a := range addrs {
		var s string
		switch v := a.(type) {
		case *net.IPNet:
			s = v.IP.String()
		case *net.IPAddr:
			s = v.IP.String()
		default:
			s = a.String()
			if i := strings.IndexByte(s, '/'); i >= 0 {
				s = s[:i]
			}
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() {
			continue
		}
		out = append(out, ip.String())
	}
	return out
}

// Queue reads Gmail-bound deferred mail from `postqueue -j`: recipients at
// gmail.com and googlemail.com and, through GmailBound, at domains whose
// MX hosts are Google's or that are configured by hand. A host without
// postqueue, or where it fails, answers Available false with the reason;
// the error return is unused today and kept for callers' sake.
func (l *Local) Queue(ctx context.Context) (Queue, error) {
	prog := l.Postqueue
	if prog == "" {
		prog = "postqueue"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := l.commands().Run(ctx, prog, "-j")
	if err != nil {
		reason := fmt.Sprintf("%s -j failed: %v", prog, err)
		if errors.Is(err, exec.ErrNotFound) {
			reason = fmt.Sprintf("%s not found: no Postfix (3.1 or later) on this relay, so its queue cannot be read", prog)
		}
		if msg := strings.TrimSpace(string(out)); msg != "" && !errors.Is(err, exec.ErrNotFound) {
			reason += ": " + truncate(firstLine(msg), 200)
		}
		return Queue{Available: false, Error: reason}, nil
	}
	listing, err := mta.ReadPostqueue(bytes.NewReader(out))
	if err != nil {
		return Queue{Available: false, Error: fmt.Sprintf("reading %s -j output: %v", prog, err)}, nil
	}
	l.GmailBound.Prepare(ctx, listing.Domains())
	// The age is the relay's own clock minus the arrival times Postfix
	// wrote with that same clock (Unix seconds): no skew toward the bot.
	s := mta.SummarizeQueue(listing, l.now(), l.GmailBound.Func())
	var warning string
	if len(s.Warnings) > 0 {
		warning = s.Warnings[0]
	}
	q := Queue{
		Warning:       warning,
		Deferred:      s.Deferred,
		OldestAge:     s.OldestAge,
		OldestArrival: s.OldestArrival,
		TopReason:     s.TopReason,
		Recipients:    s.Recipients,
		Malformed:     s.Malformed,
		Dropped:       s.Dropped,
		Available:     true,
	}
	for _, g := range s.Groups {
		r := QueueReason{Reason: g.Reason, Recipients: g.Recipients, Messages: g.Messages, MoreIDs: g.MoreIDs, QueueIDs: []QueuedMessage{}}
		for _, m := range g.IDs {
			r.QueueIDs = append(r.QueueIDs, QueuedMessage{ID: m.ID, Arrival: m.Arrival.UTC(), Domains: m.Domains})
		}
		q.Reasons = append(q.Reasons, r)
	}
	for d, b := range s.Domains {
		qd := QueueDomain{Domain: d, Why: b.Why, Recipients: b.Recipients}
		if b.Why == mta.BoundGoogleMX {
			qd.MX = l.GmailBound.GoogleMX(d)
		}
		q.Domains = append(q.Domains, qd)
	}
	slices.SortFunc(q.Domains, func(a, b QueueDomain) int {
		if a.Recipients != b.Recipients {
			return b.Recipients - a.Recipients
		}
		return strings.Compare(a.Domain, b.Domain)
	})
	return q, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
