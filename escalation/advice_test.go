package escalation

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/probe"
)

// situations are the level and scope pairs of the advice table, in its
// order.
var situations = []struct {
	level Level
	scope Scope
}{
	{LevelWatch, ScopeOneEvent},
	{LevelInvestigate, ScopeOneHost},
	{LevelInvestigate, ScopeOneSourceIP},
	{LevelInvestigate, ScopeMixedMX},
	{LevelIncident, ScopeAllGmail},
	{LevelIncident, ScopeMixedMX},
}

// tlsWords point at TLS; advice for a cause before TLS must not use them.
var tlsWords = []string{"TLS", "SSL", "STARTTLS", "handshake", "certificate", "ClientHello", "CA bundle"}

// TestAdviceTableEveryCell walks every cell of the advice table: each
// level and scope has one non-empty advice per cause, distinct from the
// other causes' of the same row; Advice returns it; and the words follow
// the cause (the resolver for DNS, port 25 and the firewall for connect
// failures, "not a TLS problem" for SMTP refusals, SMTP inspection,
// middleboxes or the TLS library for handshakes, interception for
// verification), with no TLS word for the causes that come before TLS.
func TestAdviceTableEveryCell(t *testing.T) {
	table := AdviceTable()
	if want := len(situations)*len(Causes()) + len(Causes()) + 1; len(table) != want {
		t.Fatalf("the advice table has %d entries, want %d (every situation × cause, local_infrastructure × cause, and relay_agent)", len(table), want)
	}
	seen := map[adviceKey]bool{}
	for _, e := range table {
		k := adviceKey{e.Level, e.Scope, e.Cause}
		if seen[k] {
			t.Errorf("duplicate entry %+v", k)
		}
		seen[k] = true
	}
	for _, sit := range situations {
		row := map[string]Cause{}
		for _, c := range Causes() {
			k := adviceKey{sit.level, sit.scope, c}
			if !seen[k] {
				t.Errorf("no entry for %s/%s/%s", sit.level, sit.scope, c)
				continue
			}
			a := Advice(sit.level, sit.scope, c)
			name := string(sit.level) + "/" + string(sit.scope) + "/" + string(c)
			if strings.TrimSpace(a) == "" || strings.ContainsAny(a, "|\n") {
				t.Errorf("%s: advice %q is empty or breaks the docs table", name, a)
			}
			if other, dup := row[a]; dup {
				t.Errorf("%s: the same advice as cause %s: the cause must change it", name, other)
			}
			row[a] = c
			checkWords(t, name, sit.level, c, a)
		}
	}
	// local_infrastructure: one row per cause at any level but ok, each
	// saying the relay's network and not Gmail is at fault.
	for _, c := range Causes() {
		if !seen[adviceKey{"", ScopeLocalInfra, c}] {
			t.Errorf("no local_infrastructure entry for %s", c)
		}
	}
	for _, level := range []Level{LevelWatch, LevelInvestigate, LevelIncident} {
		row := map[string]Cause{}
		for _, c := range Causes() {
			a := Advice(level, ScopeLocalInfra, c)
			name := string(level) + "/local_infrastructure/" + string(c)
			if !strings.Contains(a, "control MX") || !strings.Contains(a, "not Gmail") || strings.ContainsAny(a, "|\n") {
				t.Errorf("%s: advice %q does not say the control failed too and Gmail is not at fault", name, a)
			}
			if other, dup := row[a]; dup {
				t.Errorf("%s: the same advice as cause %s", name, other)
			}
			row[a] = c
			checkWords(t, name, level, c, a)
		}
	}
	if a := Advice(LevelOK, ScopeLocalInfra, CauseConnect); a != "" {
		t.Errorf("ok/local_infrastructure has advice %q, want none", a)
	}
	agent := Advice(LevelOK, ScopeRelayAgent, CauseAgent)
	if !seen[adviceKey{"", ScopeRelayAgent, CauseAgent}] || !strings.Contains(agent, "check the agent") {
		t.Errorf("relay_agent advice %q, want the agent entry", agent)
	}
}

func checkWords(t *testing.T, name string, level Level, c Cause, a string) {
	t.Helper()
	has := func(words ...string) {
		t.Helper()
		for _, w := range words {
			if strings.Contains(a, w) {
				return
			}
		}
		t.Errorf("%s: advice %q names none of %q", name, a, words)
	}
	switch c {
	case CauseDNS, CauseConnect, CauseRejected:
		rest := strings.ReplaceAll(a, "not a TLS problem", "")
		for _, w := range tlsWords {
			if strings.Contains(rest, w) {
				t.Errorf("%s: advice %q points at TLS (%q) for a failure before TLS", name, a, w)
			}
		}
	}
	switch c {
	case CauseDNS:
		has("resolver")
	case CauseConnect:
		has("port 25")
		has("firewall")
		has("address family")
		if level == LevelWatch && strings.Contains(a, "let the retry queue work") {
			t.Errorf("%s: %q tells to wait while the probe's hint says port 25 looks blocked", name, a)
		}
	case CauseRejected:
		has("not a TLS problem")
		has("reputation")
		has("rate")
	case CauseInspection:
		has("SMTP inspection")
	case CauseHandshake:
		has("middlebox", "TLS library", "TLS stack")
	case CauseVerify:
		has("interception")
	}
}

func TestAdviceFallbacks(t *testing.T) {
	tests := []struct {
		name  string
		level Level
		scope Scope
		cause Cause
		want  string
	}{
		{"ok has no advice", LevelOK, ScopeNone, CauseNone, ""},
		{"ok with a cause still has none", LevelOK, ScopeNone, CauseConnect, ""},
		{"the agent at any level", LevelInvestigate, ScopeRelayAgent, CauseConnect, agentAdvice},
		{"no cause reads as unknown", LevelInvestigate, ScopeOneHost, CauseNone, Advice(LevelInvestigate, ScopeOneHost, CauseUnknown)},
		{"an unknown string reads as unknown", LevelWatch, ScopeOneEvent, Cause("bogus"), Advice(LevelWatch, ScopeOneEvent, CauseUnknown)},
		{"the agent's cause at a Gmail level", LevelIncident, ScopeAllGmail, CauseAgent, Advice(LevelIncident, ScopeAllGmail, CauseUnknown)},
		{"watch is always one event", LevelWatch, ScopeOneHost, CauseDNS, Advice(LevelWatch, ScopeOneEvent, CauseDNS)},
		{"investigate falls back to one host", LevelInvestigate, ScopeAllGmail, CauseConnect, Advice(LevelInvestigate, ScopeOneHost, CauseConnect)},
		{"incident falls back to all of Gmail", LevelIncident, ScopeOneHost, CauseVerify, Advice(LevelIncident, ScopeAllGmail, CauseVerify)},
		{"AdviceFor is the unknown cause", LevelIncident, ScopeMixedMX, CauseUnknown, AdviceFor(LevelIncident, ScopeMixedMX)},
	}
	for _, tc := range tests {
		if got := Advice(tc.level, tc.scope, tc.cause); got != tc.want {
			t.Errorf("%s: Advice(%s, %q, %q) = %q, want %q", tc.name, tc.level, tc.scope, tc.cause, got, tc.want)
		}
	}
	if AdviceFor(LevelInvestigate, ScopeOneHost) == "" {
		t.Errorf("AdviceFor(investigate, one_host) is empty")
	}
}

// TestCauseOfEveryClass maps every failure class of the probe contract to
// a cause, and every cause but mixed and unknown is reached by a class.
func TestCauseOfEveryClass(t *testing.T) {
	reached := map[Cause]bool{}
	for _, f := range probe.Failures {
		c := CauseOf(string(f))
		if c == CauseNone || c == CauseUnknown || c == CauseMixed {
			t.Errorf("CauseOf(%s) = %q, want a cause", f, c)
		}
		if f.IsRelayFailure() != (c == CauseAgent) {
			t.Errorf("CauseOf(%s) = %q: only the agent's failures are the agent's", f, c)
		}
		reached[c] = true
	}
	for _, c := range append(Causes(), CauseAgent) {
		if c != CauseMixed && c != CauseUnknown && !reached[c] {
			t.Errorf("no failure class leads to the cause %s", c)
		}
	}
	want := map[string]Cause{
		"dns_error": CauseDNS, "connect_timeout": CauseConnect, "connect_refused": CauseConnect,
		"connect_unreachable": CauseConnect, "smtp_rejected": CauseRejected, "starttls_masked": CauseInspection,
		"starttls_not_offered": CauseInspection, "tls_reset": CauseHandshake, "cert_expired": CauseVerify,
		"banner_timeout": CauseSession, "": CauseNone, "some_future_class": CauseUnknown,
	}
	for class, c := range want {
		if got := CauseOf(class); got != c {
			t.Errorf("CauseOf(%q) = %q, want %q", class, got, c)
		}
	}
}

// TestTellingOrderIsComplete makes a new failure class take a place in the
// ranking rather than fall to the bottom by accident.
func TestTellingOrderIsComplete(t *testing.T) {
	for _, f := range probe.Failures {
		if !f.IsRelayFailure() && !slices.Contains(tellingOrder, f) {
			t.Errorf("failure class %s has no place in tellingOrder", f)
		}
		if f.IsRelayFailure() && tellingRank(string(f)) <= tellingRank(string(probe.FailConnectUnreachable)) {
			t.Errorf("the agent's %s ranks above a Gmail failure", f)
		}
	}
	if len(tellingOrder) != len(slices.Compact(slices.Clone(tellingOrder))) {
		t.Errorf("tellingOrder lists a class twice")
	}
}

func TestMostTelling(t *testing.T) {
	o := func(ip, class string) Observation {
		return Observation{IP: ip, OK: class == "", Failure: class}
	}
	const v4, v4b, v6, v6b = "192.0.2.5", "192.0.2.10", "2001:db8::5", "2001:db8::a"
	tests := []struct {
		name string
		obs  []Observation
		want string
	}{
		{"IPv4 timeout beats the IPv6 without a route", []Observation{o(v4, "connect_timeout"), o(v6, "connect_unreachable")}, "connect_timeout"},
		{"the IPv4 timeout, both MX", []Observation{o(v6, "connect_unreachable"), o(v4, "connect_timeout"), o(v6b, "connect_unreachable"), o(v4b, "connect_timeout")}, "connect_timeout"},
		{"a failure of every family beats one family's", []Observation{o(v4, "connect_timeout"), o(v6, "connect_timeout"), o(v6b, "smtp_protocol_error")}, "connect_timeout"},
		{"a handshake failure beats no route", []Observation{o(v4, "tls_reset"), o(v4b, ""), o(v6, "connect_unreachable")}, "tls_reset"},
		{"an SMTP refusal is the most telling", []Observation{o(v4, "tls_reset"), o(v4b, "smtp_rejected")}, "smtp_rejected"},
		{"inspection before the handshake it causes", []Observation{o(v4, "tls_reset"), o(v4b, "starttls_masked")}, "starttls_masked"},
		{"a lookup failure has no family", []Observation{{MX: "alt9.example", Failure: "dns_error"}, o(v4, "connect_timeout")}, "connect_timeout"},
		{"only a lookup failure", []Observation{{MX: "alt9.example", Failure: "dns_error"}}, "dns_error"},
		{"an IPv4-mapped address is IPv4", []Observation{o("::ffff:192.0.2.5", "connect_timeout"), o(v6, "connect_unreachable")}, "connect_timeout"},
		{"the agent's failure ranks last", []Observation{{Failure: "agent_error"}, o(v4, "connect_unreachable")}, "connect_unreachable"},
		{"only the agent's failure", []Observation{{Failure: "agent_unreachable"}}, "agent_unreachable"},
		{"a failure without a class", []Observation{{IP: v4}}, "unknown"},
		{"nothing failed", []Observation{o(v4, ""), o(v6, "")}, ""},
	}
	for _, tc := range tests {
		if got := MostTelling(tc.obs); got != tc.want {
			t.Errorf("%s: MostTelling = %q, want %q", tc.name, got, tc.want)
		}
		// The order of the observations never matters.
		rev := slices.Clone(tc.obs)
		slices.Reverse(rev)
		if got := MostTelling(rev); got != tc.want {
			t.Errorf("%s (reversed): MostTelling = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// runOf adds one probe run of relay at slot i: one observation per
// (address, class) pair, the IPv6 ones a few milliseconds later (as when
// they are probed after the IPv4 ones).
func runOf(h *history, relay string, i int, pairs ...string) {
	h.runID++
	at := h.slot(i)
	for k := 0; k+1 < len(pairs); k += 2 {
		ip, class := pairs[k], pairs[k+1]
		h.nextID++
		o := Observation{ID: h.nextID, Relay: relay, MX: "gmail-smtp-in.l.google.com", IP: ip, At: at, OK: class == "", Failure: class, RunID: h.runID}
		if addrFamily(ip) == 6 {
			o.At = at.Add(3 * time.Millisecond)
		}
		h.obs = append(h.obs, o)
	}
}

// TestCauseFollowsTheFailures evaluates histories whose failures point at
// different causes: the cause, and so the advice, follows them; the level
// and scope are those of the rules.
func TestCauseFollowsTheFailures(t *testing.T) {
	const v4, v6 = "192.0.2.5", "2001:db8::5"
	type relayRuns map[string][][]string // relay -> runs, each (ip, class) pairs
	same := func(n int, pairs ...string) [][]string {
		out := make([][]string, n)
		for i := range out {
			out[i] = pairs
		}
		return out
	}
	tests := []struct {
		name      string
		runs      relayRuns
		relay     string // the relay to check ("" for the global state)
		level     Level
		scope     Scope
		cause     Cause
		lastClass string // LastFailureClass of the relay, when set
		notAdvice string // the advice must not contain this
	}{
		{name: "three DNS failures", runs: relayRuns{"relay-1": same(3, "", "dns_error")},
			relay: "relay-1", level: LevelInvestigate, scope: ScopeOneHost, cause: CauseDNS, notAdvice: "TLS"},
		{name: "three connect timeouts", runs: relayRuns{"relay-1": same(3, v4, "connect_timeout")},
			relay: "relay-1", level: LevelInvestigate, scope: ScopeOneHost, cause: CauseConnect, notAdvice: "TLS"},
		{name: "three connections refused", runs: relayRuns{"relay-1": same(3, v4, "connect_refused")},
			relay: "relay-1", level: LevelInvestigate, scope: ScopeOneHost, cause: CauseConnect, notAdvice: "TLS"},
		{name: "the first connect timeout", runs: relayRuns{"relay-1": {{v4, ""}, {v4, "connect_timeout"}}},
			relay: "relay-1", level: LevelWatch, scope: ScopeOneEvent, cause: CauseConnect, lastClass: "connect_timeout",
			notAdvice: "let the retry queue work"},
		{name: "three greetings refused", runs: relayRuns{"relay-1": same(3, v4, "smtp_rejected")},
			relay: "relay-1", level: LevelInvestigate, scope: ScopeOneHost, cause: CauseRejected, notAdvice: "local TLS"},
		{name: "IPv4 timeouts beside IPv6 without a route", runs: relayRuns{"relay-1": same(3, v4, "connect_timeout", v6, "connect_unreachable")},
			relay: "relay-1", level: LevelInvestigate, scope: ScopeOneHost, cause: CauseConnect, lastClass: "connect_timeout", notAdvice: "TLS"},
		{name: "handshake resets beside IPv6 without a route", runs: relayRuns{"relay-1": same(3, v4, "tls_reset", v6, "connect_unreachable")},
			relay: "relay-1", level: LevelInvestigate, scope: ScopeOneHost, cause: CauseHandshake, lastClass: "tls_reset"},
		{name: "only IPv6 fails: some addresses pass", runs: relayRuns{"relay-1": same(3, v4, "", v6, "connect_unreachable")},
			relay: "relay-1", level: LevelInvestigate, scope: ScopeMixedMX, cause: CauseConnect, lastClass: "connect_unreachable"},
		{name: "a majority decides", runs: relayRuns{"relay-1": {{v4, "tls_reset"}, {v4, "connect_timeout"}, {v4, "connect_timeout"}}},
			relay: "relay-1", level: LevelInvestigate, scope: ScopeOneHost, cause: CauseConnect},
		{name: "no majority is mixed", runs: relayRuns{"relay-1": {{"", "dns_error"}, {v4, "connect_timeout"}, {v4, "tls_reset"}}},
			relay: "relay-1", level: LevelInvestigate, scope: ScopeOneHost, cause: CauseMixed, lastClass: "tls_reset"},
		{name: "an incident of one cause", runs: relayRuns{"relay-1": same(3, v4, "connect_timeout"), "relay-2": same(3, v4, "connect_timeout")},
			relay: "", level: LevelIncident, scope: ScopeAllGmail, cause: CauseConnect, notAdvice: "TLS"},
		{name: "an incident of relays that differ", runs: relayRuns{"relay-1": same(3, v4, "connect_timeout"), "relay-2": same(3, v4, "cert_untrusted")},
			relay: "", level: LevelIncident, scope: ScopeAllGmail, cause: CauseMixed},
		{name: "recovered", runs: relayRuns{"relay-1": {{v4, "connect_timeout"}, {v4, "connect_timeout"}, {v4, ""}, {v4, ""}}},
			relay: "relay-1", level: LevelOK, scope: ScopeNone, cause: CauseNone, lastClass: "connect_timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &history{step: 5 * time.Minute}
			relays := make([]string, 0, len(tc.runs))
			for r := range tc.runs {
				relays = append(relays, r)
			}
			slices.Sort(relays)
			for _, r := range relays {
				for i, pairs := range tc.runs[r] {
					runOf(h, r, i, pairs...)
				}
			}
			a := Evaluate(h.end().Add(time.Minute), h.obs, nil, nil, DefaultPolicy())
			st := a.Global
			if tc.relay != "" {
				st = mustRelay(t, a, tc.relay)
			}
			if st.Level != tc.level || st.Scope != tc.scope || st.Cause != tc.cause {
				t.Errorf("level %s scope %q cause %q, want %s %q %q", st.Level, st.Scope, st.Cause, tc.level, tc.scope, tc.cause)
			}
			if st.Advice != Advice(st.Level, st.Scope, st.Cause) {
				t.Errorf("advice %q is not the table's for its level, scope and cause", st.Advice)
			}
			if tc.level != LevelOK && st.Advice == "" {
				t.Errorf("no advice at %s", st.Level)
			}
			if tc.notAdvice != "" && strings.Contains(st.Advice, tc.notAdvice) {
				t.Errorf("advice %q contains %q", st.Advice, tc.notAdvice)
			}
			if tc.lastClass != "" && st.LastFailureClass != tc.lastClass {
				t.Errorf("last failure class %q, want %q", st.LastFailureClass, tc.lastClass)
			}
			// The same history replayed run by run gives the same state.
			if inc := incremental(h.obs, nil, DefaultPolicy(), false, nil); !slices.EqualFunc(inc.Relays, a.Relays, func(x, y RelayState) bool {
				return x.Cause == y.Cause && x.LastFailureClass == y.LastFailureClass && x.Advice == y.Advice
			}) || inc.Global.Cause != a.Global.Cause {
				t.Errorf("run-by-run evaluation gives other causes: %+v", inc)
			}
		})
	}
}

// TestAgentDownCause: a relay whose agent is down is at ok with the scope
// and the cause relay_agent.
func TestAgentDownCause(t *testing.T) {
	h := newHistory(5*time.Minute, "relay-1: ✓✓a")
	a := Evaluate(h.end().Add(time.Minute), h.obs, nil, nil, DefaultPolicy())
	st := mustRelay(t, a, "relay-1")
	if st.Level != LevelOK || st.Scope != ScopeRelayAgent || st.Cause != CauseAgent || st.Advice != agentAdvice {
		t.Errorf("agent down: %s %q %q %q", st.Level, st.Scope, st.Cause, st.Advice)
	}
	if st.LastFailureClass != "agent_unreachable" {
		t.Errorf("last failure class %q, want agent_unreachable", st.LastFailureClass)
	}
}

// TestAdviceTableInDocs keeps docs/architecture.md's table ("Advice by
// scope and cause") the same as AdviceTable, row for row, and the README's
// list of causes complete.
func TestAdviceTableInDocs(t *testing.T) {
	want := []string{"| level | scope | cause | advice |", "|---|---|---|---|"}
	for _, e := range AdviceTable() {
		level := string(e.Level)
		if level == "" {
			level = "any"
		}
		cause := string(e.Cause)
		if e.Scope == ScopeRelayAgent {
			cause = "any"
		}
		want = append(want, "| "+level+" | `"+string(e.Scope)+"` | `"+cause+"` | "+e.Advice+" |")
	}
	doc, err := os.ReadFile("../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n### Advice by scope and cause\n")
	if !ok {
		t.Fatalf("docs/architecture.md has no section \"Advice by scope and cause\"")
	}
	if i := strings.Index(section, "\n#"); i >= 0 {
		section = section[:i]
	}
	var got []string
	for _, l := range strings.Split(section, "\n") {
		if strings.HasPrefix(l, "|") {
			got = append(got, l)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("docs/architecture.md's advice table differs from AdviceTable; it should read:\n%s", strings.Join(want, "\n"))
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range append(Causes(), CauseAgent) {
		if !strings.Contains(string(readme), "`"+string(c)+"`") {
			t.Errorf("README.md does not name the cause `%s`", c)
		}
	}
}
