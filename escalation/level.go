// Package escalation turns probe history into an escalation level, a scope,
// a cause and one line of advice, per relay and across relays.
//
// Everything here is a pure function: observations (one per probe result),
// Gmail-bound queue samples reported by relay agents, the previous
// assessment and a Policy go in; an Assessment comes out. Nothing reads the
// clock, the network or the database: `now` is a parameter, and the caller
// (storage, commands, the bot's scheduler) persists what it needs.
//
// The rules follow docs/architecture.md ("Escalation"):
//
//   - ok: the last probes succeeded.
//   - watch: a single failing attempt, or failures already followed by a
//     success. Scope one_event; the retry queue handles it.
//   - investigate: Policy.Consecutive failing attempts in a row, or M of the
//     last K attempts, or WindowCount failing attempts within Window. The
//     breadth of the failure inside the relay decides the scope:
//     one_source_ip (one outbound IP fails while the others pass), mixed_mx
//     (some MX hosts or addresses fail while others pass) or one_host
//     (everything fails on this relay).
//   - incident (global only): IncidentRelays or more relays at investigate,
//     or every relay with recent results failing toward Gmail (at least two
//     relays; recent means an attempt within Window of the newest attempt of
//     any relay, and failing means its latest attempt failed), or
//     Gmail-bound queues rising on QueueRisingRelays or more relays (at
//     least two samples within Window, the newest above zero and above the
//     oldest of them). Scope all_gmail, or mixed_mx when the failing relays
//     still reach some MX hosts or addresses. The global rules judge a
//     round of runs (runs of several relays that overlap in time, as in a
//     scheduled round) once all of its runs are counted, so a relay that
//     passes in the same round as failing ones has recent results even in
//     the very first round.
//
// An attempt is one probe run of one relay: all observations with the same
// RunID (or, when RunID is 0, the same relay and time). A run fails when any
// of its observations failed toward Gmail. Observations of class
// agent_unreachable or agent_error belong to the relay's agent, not to
// Gmail: they never count as failures, never break or extend a streak, and
// a relay whose newest run holds only such observations is reported with
// AgentDown and, when nothing else is wrong, the scope relay_agent.
//
// The advice of a level comes from its scope and its cause: what the
// failure classes of the attempts that decided it point at (DNS, connect,
// an SMTP refusal, SMTP inspection, the SMTP session, the TLS handshake,
// certificate verification, or mixed), from the one table AdviceTable, shown
// in docs/architecture.md ("Advice by scope and cause").
//
// Hysteresis: a level, once reached, falls only after RecoverAfter
// consecutive successful attempts, and then falls straight to ok. The global
// level is incident while an incident rule holds and until every relay that
// took part in it has RecoverAfter consecutive successes; otherwise it is
// the highest relay level (which never exceeds investigate).
package escalation

import (
	"time"
)

// Level is an escalation level. The strings are stored in SQLite and shown
// to people. Storage's events and incidents carry Level and Scope as they
// are (storage imports escalation, never the other way round) and turn
// them into strings only in SQL.
type Level string

// The levels, from calm to alarming.
const (
	LevelOK          Level = "ok"
	LevelWatch       Level = "watch"
	LevelInvestigate Level = "investigate"
	LevelIncident    Level = "incident"
)

// Rank orders levels: ok 0, watch 1, investigate 2, incident 3. The empty
// level ranks as ok; an unknown string ranks as ok too.
func (l Level) Rank() int {
	switch l {
	case LevelWatch:
		return 1
	case LevelInvestigate:
		return 2
	case LevelIncident:
		return 3
	}
	return 0
}

// Max returns the highest of the given levels (ok when none is given).
func Max(levels ...Level) Level {
	m := LevelOK
	for _, l := range levels {
		if l.Rank() > m.Rank() {
			m = l
		}
	}
	return m
}

// Scope says how broad a failure is, which with the Cause decides the
// advice.
type Scope string

// The scopes. ScopeNone goes with ok.
const (
	ScopeNone        Scope = ""
	ScopeOneEvent    Scope = "one_event"     // a blip: one failing attempt, or failures followed by a success
	ScopeOneHost     Scope = "one_host"      // one relay fails toward everything: this relay or its path
	ScopeOneSourceIP Scope = "one_source_ip" // one outbound IP fails while the relay's others pass: NAT path
	ScopeMixedMX     Scope = "mixed_mx"      // some MX hosts or addresses fail while others pass: remote path
	ScopeAllGmail    Scope = "all_gmail"     // relays fail toward all of Gmail: route or policy
	ScopeRelayAgent  Scope = "relay_agent"   // the relay's agent cannot be reached; Gmail not judged
	// ScopeLocalInfra: the relay's control destination ([target]
	// control_mx) failed in the same runs as Gmail: every destination
	// fails, so this relay's network is at fault, not Gmail; never one
	// to escalate to Google.
	ScopeLocalInfra Scope = "local_infrastructure"
)

// Policy holds the thresholds of the escalation rules. Zero fields take
// the DefaultPolicy value.
type Policy struct {
	// Consecutive failing attempts in a row that make investigate (3).
	Consecutive int
	// M failing attempts among the last K make investigate (3 of 5).
	M, K int
	// WindowCount failing attempts within Window make investigate (3 in 15m).
	WindowCount int
	Window      time.Duration
	// RecoverAfter consecutive successful attempts bring a level back to ok (2).
	RecoverAfter int
	// IncidentRelays relays at investigate make a global incident (2).
	IncidentRelays int
	// QueueRisingRelays relays with rising Gmail-bound queues make a global
	// incident (2).
	QueueRisingRelays int
	// LogFailures TLS and connection failures toward the target in a
	// relay's mail log sample (an hour) make a relay whose probes pass
	// watch (10).
	LogFailures int
}

// DefaultPolicy returns the documented defaults (docs/architecture.md): 3 in a row, 3 of the last
// 5, 3 within 15 minutes, 2 successes to recover, 2 relays for an incident.
func DefaultPolicy() Policy {
	return Policy{
		Consecutive:       3,
		M:                 3,
		K:                 5,
		WindowCount:       3,
		Window:            15 * time.Minute,
		RecoverAfter:      2,
		IncidentRelays:    2,
		QueueRisingRelays: 2,
		LogFailures:       10,
	}
}

// withDefaults fills zero or negative fields from DefaultPolicy.
func (p Policy) withDefaults() Policy {
	d := DefaultPolicy()
	fill := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	fill(&p.Consecutive, d.Consecutive)
	fill(&p.M, d.M)
	fill(&p.K, d.K)
	fill(&p.WindowCount, d.WindowCount)
	fill(&p.RecoverAfter, d.RecoverAfter)
	fill(&p.IncidentRelays, d.IncidentRelays)
	fill(&p.QueueRisingRelays, d.QueueRisingRelays)
	fill(&p.LogFailures, d.LogFailures)
	if p.Window <= 0 {
		p.Window = d.Window
	}
	return p
}

// Lookback says how much history Evaluate needs to give the same answer as
// a full replay when it is also handed the previous assessment: the runs
// new to the evaluation, and, for each relay, its newest `runs` probe runs
// before them that reached Gmail (runs holding only agent_unreachable or
// agent_error results do not count toward the number) with every run after
// the oldest of them, plus every run and queue sample younger than
// `window` before now. Loading a little more never hurts. Storage queries
// use it to bound what they load.
func (p Policy) Lookback() (runs int, window time.Duration) {
	p = p.withDefaults()
	runs = max(p.Consecutive, p.K, p.RecoverAfter, p.WindowCount)
	return runs, p.Window
}
