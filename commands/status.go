package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/storage"
)

// StatusModel is the escalation state of every relay and across relays, as
// `gmailtls status --json` prints it and the status command shows it.
type StatusModel struct {
	At            time.Time        `json:"at"`
	Global        GlobalStatus     `json:"global"`
	Relays        []RelayStatus    `json:"relays"`
	OpenIncidents []IncidentStatus `json:"open_incidents"`
	Outbox        OutboxStatus     `json:"outbox"`
}

// GlobalStatus is the level across relays.
type GlobalStatus struct {
	Level escalation.Level `json:"level"`
	Scope escalation.Scope `json:"scope,omitempty"`
	// Cause is what the failures behind the level point at (the advice
	// follows it): dns, connect, smtp_rejected, inspection, session,
	// handshake, verify, relay_agent, mixed or unknown.
	Cause  escalation.Cause `json:"cause,omitempty"`
	Advice string           `json:"advice,omitempty"`
	// FailingRelays are the relays behind the level.
	FailingRelays []string `json:"failing_relays,omitempty"`
	// Since is when the level was reached (the last stored change).
	Since *time.Time `json:"since"`
}

// RelayStatus is one relay's escalation state.
type RelayStatus struct {
	Relay  string           `json:"relay"`
	Kind   string           `json:"kind"`
	Level  escalation.Level `json:"level"`
	Scope  escalation.Scope `json:"scope,omitempty"`
	Cause  escalation.Cause `json:"cause,omitempty"`
	Advice string           `json:"advice,omitempty"`
	// Since is when the level was reached (the last stored change).
	Since       *time.Time `json:"since"`
	LastSuccess *time.Time `json:"last_success"`
	LastFailure *time.Time `json:"last_failure"`
	// LastFailureClass is the most telling failure of the probe run that
	// failed last (escalation.MostTelling), not merely its newest result.
	LastFailureClass    string `json:"last_failure_class,omitempty"`
	ConsecutiveFailures int    `json:"consecutive_failures"`
	// Evidence holds the ids of the failing results behind the level.
	Evidence    []int64    `json:"evidence,omitempty"`
	AgentDown   bool       `json:"agent_down,omitempty"`
	Paused      bool       `json:"paused,omitempty"`
	PausedUntil *time.Time `json:"paused_until,omitempty"`
	// NoResults: the relay has never been probed (or its history was
	// rolled up).
	NoResults bool `json:"no_results,omitempty"`
}

// IncidentStatus is an open incident.
type IncidentStatus struct {
	ID       int64            `json:"id"`
	Relay    string           `json:"relay,omitempty"`
	Level    escalation.Level `json:"level"`
	Scope    escalation.Scope `json:"scope,omitempty"`
	OpenedAt time.Time        `json:"opened_at"`
	AckedBy  string           `json:"acked_by,omitempty"`
	AckedAt  *time.Time       `json:"acked_at,omitempty"`
	// MutedBy and MutedUntil: who muted the incident and until when,
	// while the mute lasts.
	MutedBy    string     `json:"muted_by,omitempty"`
	MutedUntil *time.Time `json:"muted_until,omitempty"`
}

// incidentStatus is the status of an open incident at now.
func incidentStatus(in storage.Incident, now time.Time) IncidentStatus {
	st := IncidentStatus{
		ID: in.ID, Relay: in.Relay, Level: in.Level, Scope: in.Scope,
		OpenedAt: in.OpenedAt, AckedBy: in.AckedBy, AckedAt: timePtr(in.AckedAt),
	}
	if in.MutedUntil.After(now) {
		st.MutedBy, st.MutedUntil = in.MutedBy, timePtr(in.MutedUntil)
	}
	return st
}

// OutboxStatus is the state of outgoing Slack messages.
type OutboxStatus struct {
	Pending int `json:"pending"`
	// OldestPendingS is the age of the oldest pending message in seconds.
	OldestPendingS float64 `json:"oldest_pending_s"`
	Failed         int     `json:"failed"`
	// FailedErrors are the errors of the newest failed messages.
	FailedErrors []string `json:"failed_errors,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Status computes the StatusModel from storage under the configuration in
// force. It only reads: looking at the status never stores or announces a
// change.
func (h *Handler) Status(ctx context.Context) (StatusModel, error) {
	return h.status(ctx, h.snapshot())
}

// status is Status under the request's snapshot.
func (h *Handler) status(ctx context.Context, snap *monitor.Snapshot) (StatusModel, error) {
	a, err := h.svc.Assess(ctx, snap)
	if err != nil {
		return StatusModel{}, err
	}
	now := h.now()
	m := StatusModel{At: now}
	stored, err := h.store.Relays(ctx, false)
	if err != nil {
		return m, err
	}
	byName := map[string]storage.Relay{}
	for _, r := range stored {
		byName[r.Name] = r
	}
	sums, err := h.store.Summary(ctx, now.Add(-time.Hour), now)
	if err != nil {
		return m, err
	}
	lasts := map[string]storage.RelaySummary{}
	for _, s := range sums {
		lasts[s.Relay] = s
	}
	for _, name := range snap.Names() {
		st, _ := a.Relay(name)
		rs := RelayStatus{
			Relay:               name,
			Kind:                snap.Runners[name].Kind(),
			Level:               escalation.Max(st.Level),
			Scope:               st.Scope,
			Cause:               st.Cause,
			Advice:              st.Advice,
			LastSuccess:         timePtr(st.LastSuccess),
			LastFailure:         timePtr(st.LastFailure),
			LastFailureClass:    st.LastFailureClass,
			ConsecutiveFailures: st.ConsecutiveFailures,
			Evidence:            st.Evidence,
			AgentDown:           st.AgentDown,
		}
		if sum, ok := lasts[name]; ok {
			// Storage knows the latest outcomes beyond the replayed history;
			// a failure of the run escalation already judged (not newer)
			// keeps escalation's most telling class.
			if rs.LastSuccess == nil || sum.LastSuccess.After(*rs.LastSuccess) {
				rs.LastSuccess = timePtr(sum.LastSuccess)
			}
			if rs.LastFailure == nil || sum.LastFailure.After(*rs.LastFailure) {
				rs.LastFailure = timePtr(sum.LastFailure)
				rs.LastFailureClass = sum.LastFailureClass
			}
		}
		rs.NoResults = rs.LastSuccess == nil && rs.LastFailure == nil
		if sr, ok := byName[name]; ok && sr.Paused(now) {
			rs.Paused = true
			rs.PausedUntil = timePtr(sr.PausedUntil)
		}
		if rs.Level != escalation.LevelOK {
			if e, ok, err := h.store.LastEvent(ctx, name); err == nil && ok && e.To == rs.Level {
				rs.Since = timePtr(e.At)
			}
		}
		m.Relays = append(m.Relays, rs)
	}
	m.Global = globalStatus(a.Global)
	if m.Global.Level != escalation.LevelOK {
		if e, ok, err := h.store.LastEvent(ctx, ""); err == nil && ok && e.To == m.Global.Level {
			m.Global.Since = timePtr(e.At)
		}
	}
	incidents, err := h.store.OpenIncidents(ctx)
	if err != nil {
		return m, err
	}
	m.OpenIncidents = []IncidentStatus{}
	for _, in := range incidents {
		m.OpenIncidents = append(m.OpenIncidents, incidentStatus(in, now))
	}
	pending, oldest, failed, err := h.store.OutboxStats(ctx, now)
	if err != nil {
		return m, err
	}
	m.Outbox = OutboxStatus{Pending: pending, OldestPendingS: oldest.Seconds(), Failed: failed}
	if failed > 0 {
		msgs, err := h.store.FailedMessages(ctx, 3)
		if err != nil {
			return m, err
		}
		for _, msg := range msgs {
			m.Outbox.FailedErrors = append(m.Outbox.FailedErrors, fmt.Sprintf("%s to %s: %s", msg.Kind, msg.Channel, msg.LastError))
		}
	}
	return m, nil
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
func (h *Handler) StatusResponse(m StatusModel) message.Response {
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
	resp.Context = "as of " + h.stamp(m.At)
	return resp
}

// relayStatusLine is one relay in the status message.
func (h *Handler) relayStatusLine(r RelayStatus) string {
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

// RelaysModel lists the relays, as `gmailtls relays --json` prints it.
type RelaysModel struct {
	At     time.Time   `json:"at"`
	Relays []RelayInfo `json:"relays"`
}

// RelayInfo is one relay: its configuration and its state.
type RelayInfo struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"`
	URL       string   `json:"url,omitempty"`
	SourceIPs []string `json:"source_ips"`
	// Configured is false for relays removed from the configuration
	// (retired: their history is kept).
	Configured  bool       `json:"configured"`
	Retired     bool       `json:"retired"`
	Paused      bool       `json:"paused"`
	PausedUntil *time.Time `json:"paused_until,omitempty"`
	PausedBy    string     `json:"paused_by,omitempty"`
}

// Relays lists the configured relays, then the retired ones.
func (h *Handler) Relays(ctx context.Context) (RelaysModel, error) {
	return h.relays(ctx, h.snapshot())
}

// relays is Relays under the request's snapshot.
func (h *Handler) relays(ctx context.Context, snap *monitor.Snapshot) (RelaysModel, error) {
	now := h.now()
	m := RelaysModel{At: now, Relays: []RelayInfo{}}
	stored, err := h.store.Relays(ctx, true)
	if err != nil {
		return m, err
	}
	byName := map[string]storage.Relay{}
	for _, r := range stored {
		byName[r.Name] = r
	}
	for _, name := range snap.Names() {
		ri := RelayInfo{Name: name, Kind: snap.Runners[name].Kind(), Configured: true, SourceIPs: []string{}}
		if c, ok := snap.Config.RelayByName(name); ok {
			ri.URL = c.URL
			if c.SourceIPs != nil {
				ri.SourceIPs = slices.Clone(c.SourceIPs)
			}
		}
		if sr, ok := byName[name]; ok {
			if sr.Paused(now) {
				ri.Paused, ri.PausedUntil, ri.PausedBy = true, timePtr(sr.PausedUntil), sr.PausedBy
			}
		}
		m.Relays = append(m.Relays, ri)
	}
	for _, sr := range stored {
		if _, ok := snap.Runners[sr.Name]; ok {
			continue
		}
		ips := sr.SourceIPs
		if ips == nil {
			ips = []string{}
		}
		m.Relays = append(m.Relays, RelayInfo{Name: sr.Name, Kind: sr.Kind, URL: sr.URL, SourceIPs: ips, Retired: true})
	}
	return m, nil
}

// RelaysResponse shows a RelaysModel.
func (h *Handler) RelaysResponse(m RelaysModel) message.Response {
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
func incidentSections(incidents []IncidentStatus, clock func(time.Time) string) []message.Section {
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
