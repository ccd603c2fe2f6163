package commands

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
)

// Status computes the StatusModel under the configuration in force. It
// only reads: looking at the status never stores or announces a change.
func (h *Handler) Status(ctx context.Context) (monitor.StatusModel, error) {
	return h.svc.Status(ctx, h.snapshot())
}

// levelVerdict colours a level.
func levelVerdict(level escalation.Level) message.Verdict {
	switch level {
	case escalation.LevelWatch:
		return message.VerdictWarn
	case escalation.LevelInvestigate, escalation.LevelIncident:
		return message.VerdictFail
	}
	return message.VerdictOK
}

// levelMark is the one-character marker of a level in status lines.
func levelMark(level escalation.Level) string {
	switch level {
	case escalation.LevelWatch:
		return "!"
	case escalation.LevelInvestigate, escalation.LevelIncident:
		return "✗"
	}
	return "✓"
}

// StatusResponse shows a StatusModel: the level across relays, one line per
// relay, the advice of every relay above ok, open incidents and the outbox
// when something is stuck in it.
func (h *Handler) StatusResponse(m monitor.StatusModel) message.Response {
	resp := message.Response{Verdict: levelVerdict(m.Global.Level)}
	var above []string
	for _, r := range m.Relays {
		if r.Level != escalation.LevelOK {
			above = append(above, r.Relay+" at "+string(r.Level))
		}
	}
	switch {
	case len(m.Relays) == 0:
		resp.Title = "gmailtls status: no relays configured"
		resp.Verdict = message.VerdictWarn
	case m.Global.Level == escalation.LevelIncident:
		resp.Title = "gmailtls status: INCIDENT " + levelText(m.Global.Level, m.Global.Scope)
	case len(above) == 0:
		resp.Title = fmt.Sprintf("gmailtls status: all %d relays ok", len(m.Relays))
		if len(m.Relays) == 1 {
			resp.Title = "gmailtls status: the relay is ok"
		}
	default:
		resp.Title = "gmailtls status: " + joinLimited(above, 3)
	}
	resp.Summary = fmt.Sprintf("global level %s; %d of %d relays above ok", m.Global.Level, len(above), len(m.Relays))

	g := message.Section{Heading: "Across relays", Fields: []message.Field{{Label: "Level", Value: levelText(m.Global.Level, m.Global.Scope)}}}
	if m.Global.Since != nil {
		g.Fields[0].Value += " since " + h.clock(*m.Global.Since)
	}
	if m.Global.Cause != "" && m.Global.Level != escalation.LevelOK {
		g.Fields = append(g.Fields, message.Field{Label: "Cause", Value: string(m.Global.Cause)})
	}
	if len(m.Global.FailingRelays) > 0 {
		g.Fields = append(g.Fields, message.Field{Label: "Relays", Value: strings.Join(m.Global.FailingRelays, ", ")})
	}
	if m.Global.Advice != "" {
		g.Fields = append(g.Fields, message.Field{Label: "Advice", Value: m.Global.Advice})
	}
	resp.Sections = append(resp.Sections, g)

	var lines, advice []string
	for _, r := range m.Relays {
		lines = append(lines, h.relayStatusLine(r))
		if r.Advice != "" && r.Level != escalation.LevelOK {
			advice = append(advice, r.Relay+": "+r.Advice)
		} else if r.AgentDown && r.Advice != "" {
			advice = append(advice, r.Relay+": "+r.Advice)
		}
	}
	resp.Sections = append(resp.Sections, chunkLines("Relays", lines, 20)...)
	if len(advice) > 0 {
		resp.Sections = append(resp.Sections, chunkLines("Advice", advice, 10)...)
	}
	resp.Sections = append(resp.Sections, incidentSections(m.OpenIncidents, h.clock)...)
	if m.Outbox.Pending > 0 || m.Outbox.Failed > 0 {
		line := fmt.Sprintf("%d pending", m.Outbox.Pending)
		if m.Outbox.Pending > 0 {
			line += fmt.Sprintf(" (oldest %s)", (time.Duration(m.Outbox.OldestPendingS) * time.Second).Round(time.Second))
		}
		lines := []string{line}
		if m.Outbox.Failed > 0 {
			lines[0] += fmt.Sprintf(", %d failed for good", m.Outbox.Failed)
			for _, e := range m.Outbox.FailedErrors {
				lines = append(lines, clip(e))
			}
		}
		resp.Sections = append(resp.Sections, message.Section{Heading: "Slack outbox", Lines: lines})
	}
	if m.Leader != nil {
		resp.Sections = append(resp.Sections, message.Section{Heading: "Leader", Lines: []string{
			fmt.Sprintf("replica %s since %s (lease until %s)", m.Leader.Replica, h.clock(m.Leader.Since), m.Leader.Expires.In(h.loc).Format("15:04:05")),
		}})
	}
	resp.Context = "as of " + h.stamp(m.At)
	return resp
}

// relayStatusLine is one relay in the status message.
func (h *Handler) relayStatusLine(r monitor.RelayStatus) string {
	parts := []string{levelMark(r.Level) + " " + r.Relay, levelText(r.Level, r.Scope)}
	if r.Since != nil {
		parts[1] += " since " + h.clock(*r.Since)
	}
	if r.Cause != "" && r.Level != escalation.LevelOK {
		parts = append(parts, "cause "+string(r.Cause))
	}
	if r.ConsecutiveFailures > 1 {
		parts = append(parts, fmt.Sprintf("%d failures in a row", r.ConsecutiveFailures))
	}
	if r.NoResults {
		parts = append(parts, "not probed yet")
	}
	if r.LastSuccess != nil {
		parts = append(parts, "last success "+h.clock(*r.LastSuccess))
	}
	if r.LastFailure != nil {
		parts = append(parts, "last failure "+h.clock(*r.LastFailure)+" "+r.LastFailureClass)
	}
	if r.AgentDown {
		parts = append(parts, "agent down")
	}
	if r.Paused && r.PausedUntil != nil {
		parts = append(parts, "paused until "+h.clock(*r.PausedUntil))
	}
	return strings.Join(parts, " · ")
}

func joinLimited(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" and %d more", len(items)-n)
}

// RelaysResponse shows a RelaysModel.
func (h *Handler) RelaysResponse(m monitor.RelaysModel) message.Response {
	var lines, retired []string
	for _, r := range m.Relays {
		parts := []string{r.Name, r.Kind}
		if r.URL != "" {
			parts = append(parts, r.URL)
		}
		if len(r.SourceIPs) > 0 {
			parts = append(parts, "source IPs "+strings.Join(r.SourceIPs, ", "))
		} else if r.Kind == "local" {
			parts = append(parts, "system source IP")
		}
		if r.Paused && r.PausedUntil != nil {
			p := "paused until " + h.clock(*r.PausedUntil)
			if r.PausedBy != "" {
				p += " by " + r.PausedBy
			}
			parts = append(parts, p)
		}
		if r.Retired {
			retired = append(retired, strings.Join(parts, " · ")+" · history kept")
			continue
		}
		lines = append(lines, strings.Join(parts, " · "))
	}
	n := len(lines)
	resp := message.Response{
		Title:   fmt.Sprintf("gmailtls relays: %d configured", n),
		Verdict: message.VerdictInfo,
		Summary: fmt.Sprintf("%s configured, %d retired", plural(n, "relay"), len(retired)),
	}
	if n == 1 {
		resp.Title = "gmailtls relays: 1 configured"
	}
	resp.Sections = chunkLines("Configured", lines, 20)
	if len(retired) > 0 {
		resp.Sections = append(resp.Sections, chunkLines("Retired", retired, 20)...)
	}
	return resp
}

// incidentSections lists open incidents, one line each, for status and
// the health summary.
func incidentSections(incidents []monitor.IncidentStatus, clock func(time.Time) string) []message.Section {
	if len(incidents) == 0 {
		return nil
	}
	lines := make([]string, 0, len(incidents))
	for _, in := range incidents {
		line := fmt.Sprintf("#%d %s %s opened %s", in.ID, relayOrGlobal(in.Relay), levelText(in.Level, in.Scope), clock(in.OpenedAt))
		if in.AckedBy != "" {
			line += ", acknowledged by " + in.AckedBy
		} else {
			line += ", not acknowledged"
		}
		if in.MutedUntil != nil {
			line += ", muted"
			if in.MutedBy != "" {
				line += " by " + in.MutedBy
			}
			line += " until " + clock(*in.MutedUntil)
		}
		lines = append(lines, line)
	}
	return chunkLines("Open incidents", lines, 10)
}

func relayOrGlobal(name string) string {
	if name == "" {
		return "all relays"
	}
	return name
}
