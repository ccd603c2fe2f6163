package escalation

import (
	"fmt"
	"time"
)

// LogSample is what a relay's own MTA logged toward the target over a
// window ending At (its mail log, read beside a probe: docs/architecture.md,
// "Mail log rules"). Counts are toward the target's MX addresses only.
type LogSample struct {
	Relay  string
	At     time.Time
	Window time.Duration // the window read, ending At (0 reads as an hour)
	// TLSFailures and ConnectFailures are the MTA's failed TLS handshakes
	// (SSL_connect errors) and failed connections toward the target's MX
	// addresses; Delivered its deliveries through them.
	TLSFailures, ConnectFailures, Delivered int
	// Stuck counts the Gmail-bound queue IDs (a Gmail domain, or an
	// attempt toward one of the target's MX hosts, so Google-hosted
	// Workspace domains count) with a failed attempt in the window and no
	// delivery since; DeliveredLater those delivered after a failure.
	Stuck, DeliveredLater int
}

// failures is what the log rule counts: TLS and connection failures.
func (s *LogSample) failures() int { return s.TLSFailures + s.ConnectFailures }

// window is the sample's window, an hour when unset.
func (s *LogSample) window() time.Duration {
	if s.Window <= 0 {
		return time.Hour
	}
	return s.Window
}

// Input is everything Evaluate judges: probe observations, the agents'
// queue samples and the relays' mail log samples.
type Input struct {
	Observations []Observation
	Queues       []QueueSample
	Logs         []LogSample
	// TLSPolicies are the relays' MTA TLS policies toward Gmail, as last
	// read (one per relay; the newest wins). They are not history: the
	// TLS policy rules judge the state at now with them.
	TLSPolicies []TLSPolicy
}

// TLSPolicy is what a relay's MTA does to Gmail-bound mail when TLS
// toward Gmail fails (its agent's /v1/policy; docs/architecture.md, "TLS
// policy rules").
type TLSPolicy struct {
	Relay string
	// MailWaits: a TLS failure stalls Gmail-bound mail in the queue
	// (Postfix encrypt, secure, dane-only, verify, MTA-STS enforce; Exim
	// hosts_require_tls).
	MailWaits bool
	// WithoutTLS: a TLS failure lets the MTA deliver without TLS
	// (opportunistic "may"), so no queue builds.
	WithoutTLS bool
	// Setting names the setting for the advice, e.g.
	// "smtp_tls_security_level=encrypt".
	Setting string
}

// The advice of the mail log rules (docs/architecture.md, "Mail log
// rules").
const (
	// AdviceLogHandshake: the probes pass, the MTA's TLS handshakes fail.
	AdviceLogHandshake = "the probes pass but this relay's MTA logged repeated TLS handshake failures (SSL_connect errors) toward Gmail's MX in the last hour: the MTA's own TLS library, its TLS policy for gmail.com or its path differs from the probe's; read its log lines and queue IDs in evidence and compare its TLS library, CA bundle and policy with a relay that works"
	// AdviceLogConnect: the probes pass, the MTA's connections fail.
	AdviceLogConnect = "the probes pass but this relay's MTA logged repeated connection failures toward Gmail's MX in the last hour: the MTA's outbound address, transport map or a firewall rule differs from the probe's path; read its log lines in evidence and check egress from the MTA's source address"
	// AdviceDeliveredLater: a single failure whose mail went out later.
	AdviceDeliveredLater = "transient transport event (delivered later): the relay's log shows that the Gmail-bound mail that failed was delivered on a retry; record it as a transient transport event and act only if it repeats"
)

// LogAdvice returns the advice of the mail log rule for its cause
// (CauseHandshake or CauseConnect).
func LogAdvice(cause Cause) string {
	if cause == CauseConnect {
		return AdviceLogConnect
	}
	return AdviceLogHandshake
}

// newestLog returns the relay's newest log sample at or before t whose
// window still covers t (taken within its window before t), or nil.
func (w *relayWalk) newestLog(t time.Time) *LogSample {
	for i := len(w.logs) - 1; i >= 0; i-- {
		s := &w.logs[i]
		if s.At.After(t) {
			continue
		}
		if !s.At.After(t.Add(-s.window())) {
			return nil
		}
		return s
	}
	return nil
}

// logRising reports whether the relay's log counts more stuck Gmail-bound
// queue IDs within (t-window, t]: at least two samples, the newest above
// zero and above the oldest of them, as queueRising for queue samples.
func (w *relayWalk) logRising(t time.Time, window time.Duration) bool {
	from := t.Add(-window)
	var first, last *LogSample
	for i := range w.logs {
		s := &w.logs[i]
		if !s.At.After(from) {
			continue
		}
		if s.At.After(t) {
			break
		}
		if first == nil {
			first = s
		}
		last = s
	}
	return first != nil && last != first && last.Stuck > 0 && last.Stuck > first.Stuck
}

// applyLog applies the mail log rules at now to a relay whose probe-driven
// level is final: the MTA's own failures raise a relay the probes find ok
// to watch (scope one_host), and a watch whose failing mail the log shows
// delivered later reads as a transient transport event. The level it sets
// is marked LogRule and is not carried to the next evaluation (Evaluate
// takes it back to ok), so that replaying the history gives the same state.
func (w *relayWalk) applyLog(now time.Time, p Policy) {
	st := &w.st
	s := w.newestLog(now)
	if s == nil {
		return
	}
	st.LogFailures, st.LogStuck, st.LogDeliveredLater = s.failures(), s.Stuck, s.DeliveredLater
	switch {
	case st.Level == LevelOK && s.failures() >= p.LogFailures:
		st.Level, st.Scope, st.LogRule = LevelWatch, ScopeOneHost, true
		st.Cause = CauseHandshake
		if s.ConnectFailures > s.TLSFailures {
			st.Cause = CauseConnect
		}
		st.Advice = LogAdvice(st.Cause)
	case st.Level == LevelWatch && st.Scope == ScopeOneEvent &&
		s.DeliveredLater > 0 && s.Stuck == 0 && s.failures() < p.LogFailures && !s.At.Before(st.LastFailure):
		st.DeliveredLater = true
		st.Advice = AdviceDeliveredLater
	}
}

// applyTLSPolicy applies the TLS policy rules at now, after the mail log
// rules: under a policy that makes Gmail-bound mail wait, a relay at
// watch for a handshake or verify failure is at investigate at once
// (its mail is already queuing), marked PolicyRule so that the next
// evaluation starts again from watch; under an opportunistic policy the
// advice says that mail is delivered without TLS. Neither weakens TLS.
func (w *relayWalk) applyTLSPolicy() {
	st, tp := &w.st, w.policy
	if tp == nil || st.Level == LevelOK {
		return
	}
	tlsCause := st.Cause == CauseHandshake || st.Cause == CauseVerify
	switch {
	case tp.MailWaits && tlsCause:
		if st.Level == LevelWatch && !st.DeliveredLater {
			st.Level, st.PolicyRule = LevelInvestigate, true
			if !st.LogRule && !st.DeliveredLater {
				st.Advice = Advice(st.Level, st.Scope, st.Cause)
			}
		}
		st.Advice = fmt.Sprintf(AdviceMailWaitsFormat, policySetting(tp)) + st.Advice
	case tp.WithoutTLS && tlsCause:
		st.Advice += fmt.Sprintf(AdviceWithoutTLSFormat, policySetting(tp))
	}
}

func policySetting(tp *TLSPolicy) string {
	if tp.Setting == "" {
		return "its TLS policy"
	}
	return tp.Setting
}

// The TLS policy rules' advice (docs/architecture.md, "TLS policy rules").
const (
	// AdviceMailWaitsFormat prefixes the advice of a relay whose policy
	// makes Gmail-bound mail wait; %s is the setting.
	AdviceMailWaitsFormat = "mail to Gmail waits in the queue under %s: each TLS failure toward Gmail holds Gmail-bound mail until TLS works again, so this is raised sooner; keep the policy and fix the handshake. "
	// AdviceWithoutTLSFormat is appended to the advice of a relay whose
	// opportunistic policy delivers without TLS; %s is the setting.
	AdviceWithoutTLSFormat = " Under %s this relay delivers Gmail-bound mail without TLS when TLS fails, so no queue builds and the mail goes out unencrypted; keep the policy and fix the handshake."
)

// undoLogRule takes a relay state back to what its probes alone say.
func undoLogRule(st *RelayState) {
	if st.PolicyRule {
		st.Level = LevelWatch
	}
	st.PolicyRule = false
	if st.LogRule {
		st.Level, st.Scope, st.Cause, st.Advice = LevelOK, ScopeNone, CauseNone, Advice(LevelOK, ScopeNone, CauseNone)
	}
	st.LogRule, st.DeliveredLater = false, false
	st.LogFailures, st.LogStuck, st.LogDeliveredLater = 0, 0, 0
}
