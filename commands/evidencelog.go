package commands

import (
	"fmt"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/maillog"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
)

// Bounds of the mail log shown as evidence; `evidence --json` has all the
// agent sent.
const (
	// evidenceLogLines is how many of the newest failing log lines are
	// shown verbatim.
	evidenceLogLines = 10
	// evidenceQueueIDs is how many queue IDs are shown, newest failure
	// first, and evidenceAttempts how many attempts of each (the newest).
	evidenceQueueIDs = 8
	evidenceAttempts = 5
)

// logSections shows the relay's own mail log: its counts per MX address,
// its newest failing lines verbatim, its queue IDs with their retries and
// whether they were later delivered, and the firewall window. The lines and
// reasons are the relay's text: they go in plain lines and fields, which
// every renderer escapes. Without a log, one line says why.
func (h *Handler) logSections(l monitor.LogEvidence) []message.Section {
	if !l.Available {
		return []message.Section{{Heading: "Relay mail log", Lines: []string{"Not available: " + l.Error}}}
	}
	sec := message.Section{Heading: "Relay mail log"}
	window := fmt.Sprintf("%s to %s", h.exact(l.Since), h.exact(l.Until))
	if l.Truncated && !l.FirstTime.IsZero() {
		window += fmt.Sprintf(" (read back to %s only)", h.exact(l.FirstTime))
	}
	sec.Fields = append(sec.Fields, message.Field{Label: "Source", Value: l.Source}, message.Field{Label: "Window", Value: window})
	out := []message.Section{sec}
	mx := message.Section{Heading: "Relay's attempts per MX address"}
	for _, c := range l.MX {
		mx.Lines = append(mx.Lines, mxName(c.Host, c.IP)+": "+mxCounts(c))
	}
	if len(l.MX) == 0 {
		mx.Lines = append(mx.Lines, "no delivery attempt toward any MX address in the window")
	}
	out = append(out, mx)

	if len(l.Lines) > 0 {
		lines := l.Lines
		if cut := len(lines) - evidenceLogLines; cut > 0 {
			lines = append([]string{fmt.Sprintf("… %d earlier failing lines (--json for all)", cut+l.DroppedLines)}, lines[cut:]...)
		}
		out = append(out, message.Section{Heading: "Relay's last failing log lines (verbatim)", Lines: lines, Code: true})
	}

	if len(l.Queue) > 0 {
		q := message.Section{Heading: "Queue IDs and their retries (newest failure first)"}
		for i, m := range l.Queue {
			if i >= evidenceQueueIDs {
				q.Lines = append(q.Lines, fmt.Sprintf("… %d more queue IDs (--json for all)", len(l.Queue)-i+l.DroppedQueueIDs))
				break
			}
			q.Lines = append(q.Lines, h.queuedLines(m)...)
		}
		out = append(out, q)
	}

	if fw := l.Firewall; fw != nil {
		out = append(out, h.firewallSection(*fw))
	}
	return out
}

// mxName is "host [ip]", or the one that is known.
func mxName(host, ip string) string {
	switch {
	case host != "" && ip != "" && host != ip:
		return host + " [" + ip + "]"
	case ip != "":
		return ip
	case host != "":
		return host
	}
	return "none tried"
}

// mxCounts sums one MX address's attempts in the window.
func mxCounts(c maillog.MXCount) string {
	var parts []string
	if c.TLSFailures > 0 {
		parts = append(parts, plural(c.TLSFailures, "TLS failure"))
	}
	if c.ConnectFailures > 0 {
		parts = append(parts, plural(c.ConnectFailures, "connection failure"))
	}
	if c.OtherFailures > 0 {
		parts = append(parts, plural(c.OtherFailures, "other failure"))
	}
	parts = append(parts, fmt.Sprintf("%d delivered", c.Delivered))
	return strings.Join(parts, ", ")
}

// queuedLines are one queue ID: its domains, whether it was delivered
// later, then its attempts with time, MX host and IP, status and reason.
func (h *Handler) queuedLines(m maillog.Queued) []string {
	head := fmt.Sprintf("%s (%s): %s", m.QueueID, strings.Join(m.Domains, ", "), plural(len(m.Attempts)+m.DroppedAttempts, "failed attempt"))
	if m.Delivered {
		head += "; later delivered at " + h.exact(m.DeliveredAt)
		if m.DeliveredVia != "" {
			head += " via " + m.DeliveredVia
		}
		head += " (a transient transport event)"
	} else {
		head += "; not delivered in the window"
	}
	lines := []string{head}
	attempts := m.Attempts
	if cut := len(attempts) - evidenceAttempts; cut > 0 {
		lines = append(lines, fmt.Sprintf("    … %d earlier attempts", cut+m.DroppedAttempts))
		attempts = attempts[cut:]
	}
	for _, a := range attempts {
		to := mxName(a.MXHost, a.MXIP)
		if a.Suspended {
			to = "no MX tried (suspended)"
		}
		line := fmt.Sprintf("    %s  %s  %s", h.exact(a.Time), to, a.Status)
		if a.DSN != "" {
			line += " " + a.DSN
		}
		if a.Reason != "" {
			line += ": " + clipBytes(a.Reason, 200)
		}
		lines = append(lines, line)
		for _, e := range a.Errors {
			lines = append(lines, "      "+clipBytes(e, 200))
		}
	}
	return lines
}

// firewallSection says which window and addresses to search a firewall's
// or proxy's logs for.
func (h *Handler) firewallSection(fw monitor.FirewallWindow) message.Section {
	from, to := fw.From.In(h.loc), fw.To.In(h.loc)
	zone, _ := from.Zone()
	span := fmt.Sprintf("%s to %s (%s)", from.Add(-time.Minute).Format("2006-01-02 15:04:05"), to.Add(time.Minute).Format("2006-01-02 15:04:05"), zone)
	sec := message.Section{Heading: "Firewall and proxy logs"}
	sec.Fields = append(sec.Fields,
		message.Field{Label: "Search", Value: span + fmt.Sprintf(": the first to the last of %s, a minute either side", plural(fw.Attempts, "failed attempt"))})
	what := "TCP port 25"
	if len(fw.SourceIPs) > 0 {
		what += " from " + strings.Join(fw.SourceIPs, ", ")
	}
	if len(fw.MXIPs) > 0 {
		what += " to " + strings.Join(fw.MXIPs, ", ")
	}
	sec.Fields = append(sec.Fields, message.Field{Label: "For", Value: what})
	return sec
}
