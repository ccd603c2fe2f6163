package monitor

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
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
	// Leader is the serve replica that holds the leader lease (runs the
	// schedule, the alert loop and the outbox); null when none does (no
	// serve runs, or the last leader's lease expired).
	Leader *LeaderStatus `json:"leader"`
}

// LeaderStatus is the serve replica that leads, from the stored lease.
type LeaderStatus struct {
	// Replica is the leader's id: host name, process id, random suffix.
	Replica string `json:"replica"`
	// Since is when it took the lease; Expires when the lease lapses
	// unless renewed (every 2 s).
	Since   time.Time `json:"since"`
	Expires time.Time `json:"expires"`
	Token   int64     `json:"token"`
}

// LeaseName is the leader lease of serve replicas (leader.DefaultName).
const LeaseName = "serve"

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

// NewGlobalStatus is the level across relays of an assessment.
func NewGlobalStatus(g escalation.RelayState) GlobalStatus {
	return GlobalStatus{
		Level:         escalation.Max(g.Level),
		Scope:         g.Scope,
		Cause:         g.Cause,
		Advice:        g.Advice,
		FailingRelays: g.FailingRelays,
	}
}

// Status computes the StatusModel from storage under snap. It only reads:
// looking at the status never stores or announces a change.
func (mon *Monitor) Status(ctx context.Context, snap *Snapshot) (StatusModel, error) {
	a, err := mon.Assess(ctx, snap)
	if err != nil {
		return StatusModel{}, err
	}
	now := mon.now()
	m := StatusModel{At: now}
	stored, err := mon.store.Relays(ctx, false)
	if err != nil {
		return m, err
	}
	byName := map[string]storage.Relay{}
	for _, r := range stored {
		byName[r.Name] = r
	}
	sums, err := mon.store.Summary(ctx, now.Add(-time.Hour), now)
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
			if e, ok, err := mon.store.LastEvent(ctx, name); err == nil && ok && e.To == rs.Level {
				rs.Since = timePtr(e.At)
			}
		}
		m.Relays = append(m.Relays, rs)
	}
	m.Global = NewGlobalStatus(a.Global)
	if m.Global.Level != escalation.LevelOK {
		if e, ok, err := mon.store.LastEvent(ctx, ""); err == nil && ok && e.To == m.Global.Level {
			m.Global.Since = timePtr(e.At)
		}
	}
	incidents, err := mon.store.OpenIncidents(ctx)
	if err != nil {
		return m, err
	}
	m.OpenIncidents = []IncidentStatus{}
	for _, in := range incidents {
		m.OpenIncidents = append(m.OpenIncidents, incidentStatus(in, now))
	}
	pending, oldest, failed, err := mon.store.OutboxStats(ctx, now)
	if err != nil {
		return m, err
	}
	m.Outbox = OutboxStatus{Pending: pending, OldestPendingS: oldest.Seconds(), Failed: failed}
	if l, held, err := mon.store.CurrentLease(ctx, LeaseName); err != nil {
		return m, err
	} else if held {
		m.Leader = &LeaderStatus{Replica: l.Holder, Since: l.Acquired, Expires: l.Expires, Token: l.Token}
	}
	if failed > 0 {
		msgs, err := mon.store.FailedMessages(ctx, 3)
		if err != nil {
			return m, err
		}
		for _, msg := range msgs {
			m.Outbox.FailedErrors = append(m.Outbox.FailedErrors, fmt.Sprintf("%s to %s: %s", msg.Kind, msg.Channel, msg.LastError))
		}
	}
	return m, nil
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

// Relays lists the relays of snap, then the retired ones stored.
func (mon *Monitor) Relays(ctx context.Context, snap *Snapshot) (RelaysModel, error) {
	now := mon.now()
	m := RelaysModel{At: now, Relays: []RelayInfo{}}
	stored, err := mon.store.Relays(ctx, true)
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
