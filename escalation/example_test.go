package escalation_test

import (
	"fmt"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
)

// A relay fails three probe runs in a row while another passes: the first
// is at investigate, and the change is what gets stored and alerted.
func ExampleEvaluate() {
	start := time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC)
	var obs []escalation.Observation
	for i := range 3 {
		at := start.Add(time.Duration(i) * 5 * time.Minute)
		obs = append(obs,
			escalation.Observation{ID: int64(2*i + 1), Relay: "relay-1", MX: "gmail-smtp-in.l.google.com", IP: "192.0.2.5", At: at, Failure: "tls_reset", RunID: int64(2*i + 1)},
			escalation.Observation{ID: int64(2*i + 2), Relay: "relay-2", MX: "gmail-smtp-in.l.google.com", IP: "192.0.2.5", At: at, OK: true, RunID: int64(2*i + 2)},
		)
	}
	now := start.Add(11 * time.Minute)
	next := escalation.Evaluate(now, obs, nil, nil, escalation.DefaultPolicy())
	for _, c := range escalation.Diff(escalation.Assessment{}, next, now) {
		relay := c.Relay
		if relay == "" {
			relay = "global"
		}
		fmt.Printf("%s: %s -> %s (%s) evidence %v\n  %s\n", relay, c.From, c.To, c.Scope, c.Evidence, c.Advice)
	}
	// Output:
	// relay-1: ok -> investigate (one_host) evidence [1 3 5]
	//   local TLS issue: test STARTTLS on that relay; check the MTA and its TLS library, a middlebox on the path and the ClientHello size
	// global: ok -> investigate (one_host) evidence [1 3 5]
	//   local TLS issue: test STARTTLS on that relay; check the MTA and its TLS library, a middlebox on the path and the ClientHello size
}

// The same level and scope advise differently when the failures behind
// them point elsewhere: three connect timeouts are a blocked port 25, not a
// TLS problem.
func ExampleAdvice() {
	for _, class := range []string{"tls_reset", "connect_timeout", "smtp_rejected"} {
		cause := escalation.CauseOf(class)
		fmt.Printf("%s (%s): %s\n", class, cause, escalation.Advice(escalation.LevelInvestigate, escalation.ScopeOneHost, cause))
	}
	// Output:
	// tls_reset (handshake): local TLS issue: test STARTTLS on that relay; check the MTA and its TLS library, a middlebox on the path and the ClientHello size
	// connect_timeout (connect): this relay cannot open port 25 to any Gmail MX: egress firewall, a provider port-25 block or routing for that address family; test a plain connection to port 25 from the relay
	// smtp_rejected (smtp_rejected): Gmail refuses this relay's sessions with an SMTP reply, not a TLS problem: this relay's IP reputation, sending rate or policy (PTR, SPF, DKIM); read Gmail's reply code in the hints and Postmaster Tools
}
