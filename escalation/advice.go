package escalation

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/gmailtls/gmailtls/probe"
)

// Cause is the kind of failure behind a level: which part of the way to
// Gmail the failure classes of the deciding window point at. With the
// scope (how broad) it picks the advice (docs/architecture.md, "Advice by
// scope and cause"). The strings are shown to people and in status --json.
type Cause string

// The causes. CauseNone goes with ok; CauseUnknown is a level whose
// failures say nothing usable (a queue-only incident, a class this release
// does not know) and is also the advice of a caller that has no cause.
const (
	CauseNone Cause = ""
	// CauseDNS: dns_error. The relay's resolver or DNS egress.
	CauseDNS Cause = "dns"
	// CauseConnect: connect_timeout, connect_refused, connect_unreachable.
	// Egress firewall, a port-25 block, routing for an address family.
	CauseConnect Cause = "connect"
	// CauseRejected: smtp_rejected, a greeting or EHLO refused with an
	// SMTP reply. Reputation, rate or policy; not a TLS problem.
	CauseRejected Cause = "smtp_rejected"
	// CauseInspection: starttls_masked, starttls_not_offered. SMTP
	// inspection on the path.
	CauseInspection Cause = "inspection"
	// CauseSession: banner_timeout, smtp_protocol_error, starttls_rejected,
	// post_tls_failed. The SMTP session broke off: a middlebox, a tarpit or
	// the remote side.
	CauseSession Cause = "session"
	// CauseHandshake: tls_*. The TLS stack, a middlebox, the ClientHello's
	// size.
	CauseHandshake Cause = "handshake"
	// CauseVerify: cert_*. The CA bundle, the clock, TLS interception.
	CauseVerify Cause = "verify"
	// CauseAgent: agent_unreachable, agent_error. The relay's agent; goes
	// with the scope relay_agent.
	CauseAgent Cause = "relay_agent"
	// CauseMixed: the failing attempts of the window point at different
	// causes and none has a majority.
	CauseMixed Cause = "mixed"
	// CauseUnknown: failures with nothing to go on.
	CauseUnknown Cause = "unknown"
)

// Causes lists the causes of failures toward Gmail in the order of the
// advice table; CauseAgent, CauseNone are not among them.
func Causes() []Cause {
	return []Cause{CauseDNS, CauseConnect, CauseRejected, CauseInspection, CauseSession,
		CauseHandshake, CauseVerify, CauseMixed, CauseUnknown}
}

// CauseOf returns the cause a failure class points at: CauseNone for ""
// (a success), CauseUnknown for a class it does not know.
func CauseOf(class string) Cause {
	switch probe.Failure(class) {
	case probe.FailNone:
		return CauseNone
	case probe.FailDNSError:
		return CauseDNS
	case probe.FailConnectTimeout, probe.FailConnectRefused, probe.FailConnectUnreachable:
		return CauseConnect
	case probe.FailSMTPRejected:
		return CauseRejected
	case probe.FailStartTLSMasked, probe.FailStartTLSNotOffered:
		return CauseInspection
	case probe.FailBannerTimeout, probe.FailSMTPProtocol, probe.FailStartTLSRejected, probe.FailPostTLS:
		return CauseSession
	case probe.FailTLSReset, probe.FailTLSTimeout, probe.FailTLSProtocolVersion, probe.FailTLSNoSharedCipher, probe.FailTLSAlert:
		return CauseHandshake
	case probe.FailCertUntrusted, probe.FailCertExpired, probe.FailCertHostname:
		return CauseVerify
	case probe.FailAgentUnreachable, probe.FailAgentError:
		return CauseAgent
	}
	return CauseUnknown
}

// tellingOrder ranks failure classes from the most telling (an explicit
// answer that names the cause) to the least (a condition that is often
// only background, such as no route to an IPv6 address on a host without
// IPv6). Classes not listed rank below connect_unreachable and above the
// agent's own failures.
var tellingOrder = []probe.Failure{
	probe.FailSMTPRejected,
	probe.FailStartTLSMasked, probe.FailStartTLSNotOffered,
	probe.FailCertUntrusted, probe.FailCertHostname, probe.FailCertExpired,
	probe.FailTLSProtocolVersion, probe.FailTLSNoSharedCipher, probe.FailTLSAlert,
	probe.FailTLSReset, probe.FailTLSTimeout,
	probe.FailStartTLSRejected, probe.FailPostTLS,
	probe.FailBannerTimeout, probe.FailSMTPProtocol,
	probe.FailConnectRefused, probe.FailConnectTimeout,
	probe.FailDNSError,
	probe.FailConnectUnreachable,
}

// tellingRank is a class's rank: 0 is the most telling; unknown classes
// come after every listed one, and the agent's failures last.
func tellingRank(class string) int {
	f := probe.Failure(class)
	if f.IsRelayFailure() {
		return len(tellingOrder) + 1
	}
	if i := slices.Index(tellingOrder, f); i >= 0 {
		return i
	}
	return len(tellingOrder)
}

// MostTelling returns the most telling failure class among the failing
// observations of one probe run ("" when none failed). The ranking:
//
//  1. A class that failed on every address family the run tried beats one
//     that failed on some of them only: when IPv4 times out and IPv6 has
//     no route in the same run, each is one family's, so rule 2 decides;
//     when IPv4 and IPv6 both time out while only IPv6 has an endless
//     reply somewhere, the timeout wins. Observations without an address
//     (a failed MX lookup) take no part in this rule.
//  2. Then the fixed order of tellingOrder: an SMTP refusal, SMTP
//     inspection, certificate, TLS handshake, session, connect refused or
//     timed out, DNS, and last no route (connect_unreachable), which is
//     often only a host without an IPv6 route.
//  3. Then the class name, so the input order never matters.
//
// The agent's failures rank below every Gmail failure.
func MostTelling(obs []Observation) string {
	ptrs := make([]*Observation, len(obs))
	for i := range obs {
		ptrs[i] = &obs[i]
	}
	return mostTelling(ptrs)
}

// addrFamily is 4, 6 or 0 (no or an unparsable address).
func addrFamily(ip string) int {
	a, err := netip.ParseAddr(ip)
	switch {
	case err != nil:
		return 0
	case a.Unmap().Is4():
		return 4
	}
	return 6
}

func mostTelling(obs []*Observation) string {
	var tried [7]bool // indexed by family
	covered := map[string]*[7]bool{}
	for _, o := range obs {
		fam := addrFamily(o.IP)
		if !o.agentFailure() && fam != 0 {
			tried[fam] = true
		}
		if o.OK {
			continue
		}
		class := o.Failure
		if class == "" {
			class = "unknown"
		}
		c := covered[class]
		if c == nil {
			c = &[7]bool{}
			covered[class] = c
		}
		if fam != 0 {
			c[fam] = true
		}
	}
	everyFamily := func(class string) bool {
		c := covered[class]
		for _, fam := range []int{4, 6} {
			if tried[fam] && !c[fam] {
				return false
			}
		}
		return true
	}
	best := ""
	for class := range covered {
		if best == "" || moreTelling(class, best, everyFamily) {
			best = class
		}
	}
	return best
}

// moreTelling reports whether class a ranks above class b.
func moreTelling(a, b string, everyFamily func(string) bool) bool {
	if ea, eb := everyFamily(a), everyFamily(b); ea != eb {
		return ea
	}
	if ra, rb := tellingRank(a), tellingRank(b); ra != rb {
		return ra < rb
	}
	return a < b
}

// AdviceEntry is one cell of the advice table: the advice for a level and
// scope when the failures behind it point at a cause. The entry of the
// scope relay_agent has Level "" (any level) and Cause CauseAgent (any
// cause).
type AdviceEntry struct {
	Level  Level
	Scope  Scope
	Cause  Cause
	Advice string
}

// agentAdvice is the advice of the scope relay_agent, whatever the level
// and cause: Gmail is not judged meanwhile.
const agentAdvice = "the relay's gmailtls agent did not answer: check the agent (service running, firewall, secret, TLS certificate); Gmail delivery from that relay is not judged meanwhile"

// AdviceTable returns the advice table, the one source of every advice
// line, in the order docs/architecture.md ("Advice by scope and cause")
// shows it: for each level and scope (one_event, one_host, one_source_ip,
// mixed_mx at investigate, all_gmail, mixed_mx at incident), one entry per
// cause of Causes(); then the relay_agent entry. The text never points at
// TLS for the causes dns, connect and smtp_rejected, and the first failure
// with a connect cause never says to let the retry queue work: a blocked
// port 25 is no blip.
func AdviceTable() []AdviceEntry {
	type row struct {
		level Level
		scope Scope
		cells [9]string // in the order of Causes()
	}
	rows := []row{
		{LevelWatch, ScopeOneEvent, [9]string{
			"a Gmail MX lookup failed once: check this relay's resolver and DNS egress; if the next probe resolves, it was a blip the retry queue absorbs",
			"a connection to Gmail's port 25 failed: a blocked port is no blip the retry queue can fix, so check the egress firewall and any provider port-25 block for that address family now; if the next probe connects, it was a blip",
			"Gmail refused one session with an SMTP reply, not a TLS problem: reputation, rate or policy; read Gmail's reply and its explanation in the hints; a 4xx reply clears once the rate or reputation recovers",
			"STARTTLS was missing or masked once: SMTP inspection on the path rewrites the session; check the port-25 firewall for ESMTP inspection before mail goes out in clear",
			"the SMTP session broke off once (no greeting, a malformed reply, STARTTLS refused or EHLO over TLS failed): a middlebox, a tarpit or Gmail's side; let the retry queue work and watch the next probes",
			"one TLS handshake failed (the SSL_connect error): let the retry queue work; if it repeats, test STARTTLS on that relay and read the ClientHello hints (TLS stack, middlebox)",
			"Gmail's certificate did not verify once: check this relay's CA bundle and clock; an issuer other than Google Trust Services means TLS interception",
			"one probe run failed in several ways: read its failure classes, the most telling first; let the retry queue work and confirm later delivery",
			"network blip: let the retry queue work; confirm later delivery",
		}},
		{LevelInvestigate, ScopeOneHost, [9]string{
			"this relay cannot resolve Gmail's MX hosts: check its resolver and that DNS egress (port 53, UDP and TCP) is allowed",
			"this relay cannot open port 25 to any Gmail MX: egress firewall, a provider port-25 block or routing for that address family; test a plain connection to port 25 from the relay",
			"Gmail refuses this relay's sessions with an SMTP reply, not a TLS problem: this relay's IP reputation, sending rate or policy (PTR, SPF, DKIM); read Gmail's reply code in the hints and Postmaster Tools",
			"SMTP inspection on this relay's port-25 path hides STARTTLS from every MX: disable ESMTP inspection on its firewall (Cisco ASA: inspect esmtp)",
			"every SMTP session from this relay breaks off (no greeting, malformed replies, refused STARTTLS): a middlebox or proxy on its path; compare with a relay that passes",
			"local TLS issue: test STARTTLS on that relay; check the MTA and its TLS library, a middlebox on the path and the ClientHello size",
			"this relay verifies no Gmail certificate: update its CA bundle and check its clock; an issuer other than Google Trust Services means TLS interception",
			"this relay fails toward every Gmail MX in several ways: start from the most telling failure in status, then test STARTTLS on that relay",
			"this relay fails toward every Gmail MX: test STARTTLS on that relay and read the failure classes in its history",
		}},
		{LevelInvestigate, ScopeOneSourceIP, [9]string{
			"Gmail's MX hosts do not resolve in the runs where one source IP fails: check the resolver and DNS egress as seen from that outbound IP",
			"one source IP cannot reach port 25 while the others can: the egress firewall, NAT rule or provider block for that outbound IP and its address family",
			"Gmail refuses one source IP with an SMTP reply, not a TLS problem: that IP's reputation, sending rate or PTR record; read Gmail's reply code; move mail off that IP meanwhile",
			"SMTP inspection sits on one source IP's path only: find the firewall or NAT rule that inspects SMTP for that address and disable ESMTP inspection there",
			"SMTP sessions from one source IP break off while the others pass: a middlebox or proxy on that IP's NAT path",
			"TLS handshakes fail from one source IP only: a middlebox on that IP's NAT path (MTU, ClientHello size); compare the narrower-ClientHello hints",
			"Gmail's certificates fail to verify from one source IP only: TLS interception on that IP's path",
			"one source IP fails in several ways while the others pass: check the NAT path and routing for that outbound IP",
			"one source IP fails while the others pass: check the NAT path and routing for that outbound IP",
		}},
		{LevelInvestigate, ScopeMixedMX, [9]string{
			"some Gmail MX hosts do not resolve while others do: check the resolver's answers (A and AAAA) for each MX host",
			"port 25 is unreachable on some Gmail MX addresses only: egress firewall rules per destination, or routing for one address family (often IPv6); compare routes per MX IP",
			"some Gmail MX hosts refuse the session with an SMTP reply, not a TLS problem: rate or reputation limits per Gmail host; read Gmail's reply codes in the hints",
			"SMTP inspection applies on the path to some MX addresses only: firewall rules per destination; disable ESMTP inspection for port 25",
			"SMTP sessions toward some MX hosts break off: remote path or a middlebox on some routes; compare routes per MX IP",
			"TLS handshakes fail toward some MX hosts only: a middlebox on some routes or on one address family; compare routes per MX IP and the narrower-ClientHello hints",
			"the certificates of some MX hosts do not verify: TLS interception on some routes, or a wrong MX target; compare the certificate issuers",
			"some MX hosts fail in several ways while others pass: remote path or IP routing; compare routes per MX IP",
			"some MX hosts fail while others pass: remote path or IP routing; compare routes per MX IP",
		}},
		{LevelIncident, ScopeAllGmail, [9]string{
			"several relays cannot resolve Gmail: a shared resolver or DNS egress is down; fix it, or fail over to a relay that resolves",
			"several relays cannot reach Gmail's port 25: a shared egress firewall, a provider port-25 block or a routing change for that address family; check firewall egress logs; fail over to a healthy relay",
			"Gmail refuses several relays with SMTP replies, not a TLS problem: shared IP reputation, sending rate or domain policy (SPF, DKIM, DMARC); read Gmail's reply codes; slow down and fail over to a healthy relay",
			"a shared firewall's SMTP inspection hides STARTTLS on several relays: disable ESMTP inspection on it for port 25",
			"the SMTP sessions of several relays break off: a shared middlebox or proxy, or trouble on Gmail's side; check firewall egress logs; fail over to a healthy relay",
			"TLS handshakes fail on several relays: a shared middlebox or TLS-inspecting firewall, or a TLS library update they all got; check firewall egress logs; fail over to a healthy relay",
			"several relays fail to verify Gmail's certificates: shared TLS interception, or an outdated CA bundle on all of them; check the issuer in the evidence",
			"several relays fail toward Gmail in several ways: route or policy problem; check firewall egress logs; fail over to a healthy relay",
			"route or policy problem toward Gmail: check firewall egress logs; fail over to a healthy relay",
		}},
		{LevelIncident, ScopeMixedMX, [9]string{
			"several relays cannot resolve some Gmail MX hosts: a shared resolver failing on some names or AAAA records; check its answers per MX host; fail over to a healthy relay",
			"several relays cannot reach port 25 on some Gmail MX addresses: destination rules on a shared firewall, or routing for one address family; check firewall egress logs per MX IP; fail over to a healthy relay",
			"some Gmail MX hosts refuse several relays with SMTP replies, not a TLS problem: shared reputation or rate limits; read Gmail's reply codes; fail over to a healthy relay",
			"SMTP inspection on a shared firewall hides STARTTLS toward some Gmail MX addresses: disable ESMTP inspection there",
			"the SMTP sessions of several relays toward some Gmail MX hosts break off: remote path; check firewall egress logs per MX IP; fail over to a healthy relay",
			"TLS handshakes of several relays fail toward some Gmail MX hosts: a middlebox on some routes; check firewall egress logs per MX IP; fail over to a healthy relay",
			"the certificates of some Gmail MX hosts do not verify from several relays: TLS interception on some routes; check the issuer in the evidence",
			"several relays fail toward some Gmail MX hosts in several ways while others pass: remote path or IP routing; check firewall egress logs per MX IP; fail over to a healthy relay",
			"several relays fail toward some Gmail MX hosts while others pass: remote path or IP routing; check firewall egress logs per MX IP; fail over to a healthy relay",
		}},
	}
	causes := Causes()
	out := make([]AdviceEntry, 0, len(rows)*len(causes)+1)
	for _, r := range rows {
		for i, c := range causes {
			out = append(out, AdviceEntry{Level: r.level, Scope: r.scope, Cause: c, Advice: r.cells[i]})
		}
	}
	for i, c := range causes {
		out = append(out, AdviceEntry{Scope: ScopeLocalInfra, Cause: c, Advice: localInfraAdvice[i]})
	}
	return append(out, AdviceEntry{Scope: ScopeRelayAgent, Cause: CauseAgent, Advice: agentAdvice})
}

// localInfraAdvice is the advice of scope local_infrastructure, at any
// level, by cause in Causes() order: the control destination failed in the
// same runs, so this relay's own network is at fault, not Gmail.
var localInfraAdvice = [...]string{
	"every destination fails to resolve, the control MX too: this relay's resolver or DNS egress, not Gmail; do not escalate to Google",
	"every destination fails at port 25, the control MX too: this relay's egress firewall, a provider port-25 block or its routing for that address family, not Gmail; do not escalate to Google",
	"the control MX refuses this relay too with an SMTP reply, not a TLS problem: this relay's IP reputation, sending rate or policy, not Gmail; check blocklists; do not escalate to Google",
	"SMTP inspection hides STARTTLS toward every destination, the control MX too: this relay's firewall, not Gmail; disable ESMTP inspection; do not escalate to Google",
	"SMTP sessions break off toward every destination, the control MX too: a middlebox or proxy on this relay's path, not Gmail; do not escalate to Google",
	"TLS handshakes fail toward every destination, the control MX too: this relay's TLS stack or a middlebox on its path, not Gmail; do not escalate to Google",
	"certificates fail to verify for every destination, the control MX too: this relay's CA bundle or clock, or TLS interception on its path, not Gmail; do not escalate to Google",
	"every destination fails, the control MX too, in several ways: this relay's network, not Gmail; do not escalate to Google",
	"every destination fails, the control MX too: this relay's network, not Gmail; do not escalate to Google",
}

// adviceKey indexes the advice table.
type adviceKey struct {
	level Level
	scope Scope
	cause Cause
}

var adviceIndex = sync.OnceValue(func() map[adviceKey]string {
	m := map[adviceKey]string{}
	for _, e := range AdviceTable() {
		m[adviceKey{e.Level, e.Scope, e.Cause}] = e.Advice
	}
	return m
})

// Advice returns the one-line advice for a level and scope whose failures
// point at cause, from AdviceTable. The scope relay_agent has one advice
// whatever the level and cause; ok has none otherwise. A scope that does
// not occur at the level is read as the level's broadest (watch:
// one_event; investigate: one_host; incident: all_gmail), and a cause
// without a column of its own (none, relay_agent at a Gmail level, a
// string this release does not know) as CauseUnknown.
func Advice(level Level, scope Scope, cause Cause) string {
	if scope == ScopeRelayAgent {
		return agentAdvice
	}
	if scope == ScopeLocalInfra && level != LevelOK && level != "" {
		idx := adviceIndex()
		if a, ok := idx[adviceKey{"", scope, cause}]; ok {
			return a
		}
		return idx[adviceKey{"", scope, CauseUnknown}]
	}
	switch level {
	case LevelWatch:
		scope = ScopeOneEvent
	case LevelInvestigate:
		if scope != ScopeOneSourceIP && scope != ScopeMixedMX {
			scope = ScopeOneHost
		}
	case LevelIncident:
		if scope != ScopeMixedMX {
			scope = ScopeAllGmail
		}
	default:
		return ""
	}
	idx := adviceIndex()
	if a, ok := idx[adviceKey{level, scope, cause}]; ok {
		return a
	}
	return idx[adviceKey{level, scope, CauseUnknown}]
}

// AdviceFor returns the advice for a level and scope when the cause is not
// known (Advice with CauseUnknown), as when an alert is rebuilt from a
// stored incident, which records no cause.
func AdviceFor(level Level, scope Scope) string {
	return Advice(level, scope, CauseUnknown)
}

// dominantCause is the cause of the majority of the failing attempts
// among the last k ending at j, each attempt counted once under the cause
// of its most telling failure; CauseMixed when no cause has more than
// half of them, CauseNone when none failed.
func (w *relayWalk) dominantCause(j, k int) Cause {
	counts := map[Cause]int{}
	n := 0
	for i := j; i >= 0 && i > j-k; i-- {
		a := w.attempts[i]
		if !a.failed {
			continue
		}
		gmail := make([]*Observation, 0, len(a.obs))
		for _, o := range a.obs {
			if !o.agentFailure() {
				gmail = append(gmail, o)
			}
		}
		counts[CauseOf(mostTelling(gmail))]++
		n++
	}
	if n == 0 {
		return CauseNone
	}
	for c, m := range counts {
		if 2*m > n {
			return c
		}
	}
	return CauseMixed
}

// sharedCause is the cause of several relays: theirs when they agree
// (relays without a cause aside), CauseMixed when they differ,
// CauseUnknown when none has one.
func sharedCause(causes []Cause) Cause {
	out := CauseNone
	for _, c := range causes {
		switch {
		case c == CauseNone:
		case out == CauseNone:
			out = c
		case out != c:
			return CauseMixed
		}
	}
	if out == CauseNone {
		return CauseUnknown
	}
	return out
}
