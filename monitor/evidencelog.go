package monitor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/maillog"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// logTimeout bounds the agent request for the mail log behind Evidence:
// the agent itself reads for at most 60 s.
const logTimeout = 70 * time.Second

// LogEvidence is what the relay's MTA itself logged around a failing run
// (GET /v1/log): its newest failing lines verbatim, its queue IDs with
// their retries and whether their mail went out later, its counts per MX
// address, and the window a firewall's logs should be searched for. The
// lines and reasons are the relay's text: present them escaped, never as
// markup.
type LogEvidence struct {
	// Available is false when there is no log to show; Error then says
	// why in one sentence (no mail_log configured, an older agent, the
	// agent not answering).
	Available bool   `json:"available"`
	Error     string `json:"error,omitempty"`
	// Source is the log file, or "journald".
	Source string `json:"source,omitempty"`
	// Since and Until are the window read.
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Truncated: the read stopped before Since (FirstTime is how far back
	// it got).
	Truncated bool      `json:"truncated,omitempty"`
	FirstTime time.Time `json:"first_time,omitzero"`
	// Lines are the newest failing lines, oldest first.
	Lines []string `json:"lines"`
	// Queue are the queue IDs with a failed attempt, newest failure first.
	Queue []maillog.Queued `json:"queue"`
	// MX are the counts per MX address.
	MX []maillog.MXCount `json:"mx"`
	// Firewall is the window to search firewall and proxy logs for; nil
	// without a failed attempt.
	Firewall *FirewallWindow `json:"firewall,omitempty"`

	// Dropped* count what the agent's bounds left out.
	DroppedQueueIDs int `json:"dropped_queue_ids,omitempty"`
	DroppedLines    int `json:"dropped_lines,omitempty"`
}

// FirewallWindow is where to look in a firewall's or proxy's logs for the
// failed connections: from the first to the last failed attempt (the
// MTA's, in its log, and the failing probes'), toward which addresses on
// port 25, from which of the relay's addresses.
type FirewallWindow struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// MXIPs are the destination addresses of the failed attempts.
	MXIPs []string `json:"mx_ips"`
	// SourceIPs are the relay's outbound addresses (from its agent), when
	// known.
	SourceIPs []string `json:"source_ips,omitempty"`
	// Attempts counts the failed attempts between From and To.
	Attempts int `json:"attempts"`
}

// logWindow is the window of the mail log read for results: from a few
// minutes before the failing run up to now, at least an hour, at most
// the agent's longest window.
func logWindow(now time.Time, results []storage.StoredResult) time.Duration {
	w := relay.DefaultLogWindow
	for _, r := range results {
		if d := now.Sub(r.StartedAt) + 10*time.Minute; d > w {
			w = d
		}
	}
	return min(w.Round(time.Minute), relay.MaxLogWindow)
}

// logEvidence reads the relay's mail log over the window around results.
// No log is never an error: the answer says why in LogEvidence.Error.
func (m *Monitor) logEvidence(ctx context.Context, relayName string, lr relay.LogReader, results []storage.StoredResult) LogEvidence {
	now := m.now()
	window := logWindow(now, results)
	lctx, cancel := context.WithTimeout(ctx, logTimeout)
	s, err := lr.Log(lctx, window)
	cancel()
	le := LogEvidence{Since: now.Add(-window), Until: now, Lines: []string{}, Queue: []maillog.Queued{}, MX: []maillog.MXCount{}}
	switch {
	case err != nil && agentNotFound(err):
		le.Error = fmt.Sprintf("the agent of %s predates the mail log (GET /v1/log answered 404): upgrade it and set [agent] mail_log", relayName)
	case err != nil:
		le.Error = "not available: " + err.Error()
		m.log.Warn("could not read the relay's mail log", "relay", relayName, "error", err)
	case !s.Available:
		le.Error = cmp.Or(s.Error, "the relay cannot read its mail log")
	default:
		le.Available = true
		le.Source, le.Since, le.Until = s.Source, s.Since, s.Until
		le.Truncated, le.FirstTime = s.Truncated, s.FirstTime
		le.Lines = append(le.Lines, s.Lines...)
		le.Queue = append(le.Queue, s.Queue...)
		le.MX = append(le.MX, s.MX...)
		le.DroppedQueueIDs, le.DroppedLines = s.DroppedQueueIDs, s.DroppedLines
	}
	le.Firewall = firewallWindow(le.Queue, results)
	return le
}

// agentNotFound reports whether err is an agent's 404: an agent older
// than the endpoint asked.
func agentNotFound(err error) bool {
	return errors.Is(err, relay.ErrAgentError) && strings.Contains(err.Error(), "answered 404")
}

// firewallWindow spans the failed attempts of the log's queue IDs and the
// failing results; nil without any.
func firewallWindow(queue []maillog.Queued, results []storage.StoredResult) *FirewallWindow {
	var fw FirewallWindow
	ips := map[string]bool{}
	add := func(at time.Time, ip string) {
		if at.IsZero() {
			return
		}
		if fw.Attempts == 0 || at.Before(fw.From) {
			fw.From = at
		}
		if fw.Attempts == 0 || at.After(fw.To) {
			fw.To = at
		}
		fw.Attempts++
		if ip != "" {
			ips[ip] = true
		}
	}
	for _, q := range queue {
		for _, a := range q.Attempts {
			if a.Status != "sent" && !a.Suspended {
				add(a.Time, a.MXIP)
			}
		}
	}
	srcs := map[string]bool{}
	for _, r := range results {
		if !r.OK {
			add(r.StartedAt, r.Result.IP)
			if r.Result.SourceIP != "" {
				srcs[r.Result.SourceIP] = true
			}
		}
	}
	if fw.Attempts == 0 {
		return nil
	}
	fw.MXIPs = slices.Sorted(maps.Keys(ips))
	if len(srcs) > 0 {
		fw.SourceIPs = slices.Sorted(maps.Keys(srcs))
	}
	if fw.MXIPs == nil {
		fw.MXIPs = []string{}
	}
	return &fw
}
