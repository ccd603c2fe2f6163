package escalation

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/probe"
)

// t0 is the start of every test history.
var t0 = time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC)

// The two MX hosts and two outbound addresses of every relay in the
// table tests: a run is 2 sources × 2 MX = 4 observations.
var (
	testMX = []struct{ host, ip string }{
		{"gmail-smtp-in.l.google.com", "192.0.2.5"},
		{"alt1.gmail-smtp-in.l.google.com", "192.0.2.10"},
	}
	testSources = []string{"198.51.100.1", "198.51.100.2"}
)

// history builds observations from lines such as "relay-1: ✓✓✗✗✗". Each
// symbol is one probe run in a time slot (slot i starts at t0 + i*step), so
// the lines of several relays line up in time:
//
//	✓  every observation passes
//	✗  every observation fails (tls_reset)
//	s  the first source IP fails toward every MX, the second passes
//	m  the first MX fails from both sources, the second passes
//	a  the agent could not be reached (one agent_unreachable observation)
//	e  the agent answered badly (agent_error), alongside passing results
//	·  no run in that slot
type history struct {
	step   time.Duration
	obs    []Observation
	nextID int64
	runID  int64
}

func newHistory(step time.Duration, lines ...string) *history {
	h := &history{step: step}
	for _, l := range lines {
		h.add(l)
	}
	return h
}

func (h *history) slot(i int) time.Time { return t0.Add(time.Duration(i) * h.step) }

// end is the time of the last slot of the longest line.
func (h *history) end() time.Time {
	var end time.Time
	for _, o := range h.obs {
		if o.At.After(end) {
			end = o.At
		}
	}
	return end
}

func (h *history) add(line string) {
	relay, pattern, ok := strings.Cut(line, ":")
	if !ok {
		panic("history line without relay: " + line)
	}
	relay = strings.TrimSpace(relay)
	for i, sym := range []rune(strings.TrimSpace(pattern)) {
		h.run(relay, i, sym)
	}
}

func (h *history) obsFor(relay string, at time.Time, src string, mx int, ok bool, failure probe.Failure) {
	h.nextID++
	o := Observation{ID: h.nextID, Relay: relay, SourceIP: src, At: at, OK: ok, RunID: h.runID}
	if mx >= 0 {
		o.MX, o.IP = testMX[mx].host, testMX[mx].ip
	}
	if !ok {
		o.Failure = string(failure)
	}
	h.obs = append(h.obs, o)
}

func (h *history) run(relay string, i int, sym rune) {
	if sym == '·' || sym == '.' {
		return
	}
	h.runID++
	at := h.slot(i)
	switch sym {
	case 'a':
		h.obsFor(relay, at, "", -1, false, probe.FailAgentUnreachable)
		return
	case 'e':
		h.obsFor(relay, at, "", -1, false, probe.FailAgentError)
	}
	for si, src := range testSources {
		for mi := range testMX {
			ok := true
			switch sym {
			case '✗':
				ok = false
			case 's':
				ok = si != 0
			case 'm':
				ok = mi != 0
			case '✓', 'e':
			default:
				panic(fmt.Sprintf("unknown history symbol %q", sym))
			}
			h.obsFor(relay, at, src, mi, ok, probe.FailTLSReset)
		}
	}
}

// failingIDs returns the IDs of the failing Gmail observations of relay.
func (h *history) failingIDs(relay string) []int64 {
	var ids []int64
	for _, o := range h.obs {
		if o.Relay == relay && !o.OK && !probe.Failure(o.Failure).IsRelayFailure() {
			ids = append(ids, o.ID)
		}
	}
	return ids
}

// mustRelay returns a relay's state or fails the test.
func mustRelay(t testing.TB, a Assessment, name string) RelayState {
	t.Helper()
	rs, ok := a.Relay(name)
	if !ok {
		t.Fatalf("relay %q missing from the assessment %+v", name, a)
	}
	return rs
}
