package mtasts_test

import (
	"fmt"

	"github.com/gmailtls/gmailtls/mtasts"
	"github.com/gmailtls/gmailtls/probe"
)

// Judge sets a policy against the MX hosts and what the probes saw. An MX
// host outside the policy is an MTA-STS failure; a certificate that does
// not verify is a TLS failure; an enforcing sender refuses both.
func ExampleJudge() {
	policy, err := mtasts.ParsePolicy("version: STSv1\nmode: enforce\nmx: gmail-smtp-in.l.google.com\n" +
		"mx: *.gmail-smtp-in.l.google.com\nmax_age: 86400\n")
	if err != nil {
		fmt.Println(err)
		return
	}
	d := mtasts.Discovery{Domain: "gmail.com", Class: mtasts.ClassOK, ID: "20190429T010101", Policy: &policy}
	results := []probe.Result{{
		Relay: "relay-1", MX: "alt1.gmail-smtp-in.l.google.com", IP: "192.0.2.1", Failure: probe.FailCertUntrusted,
		TLS: &probe.TLSInfo{PeerCertificates: []probe.Certificate{{SANs: []string{"alt1.gmail-smtp-in.l.google.com"}}}},
	}}
	r := mtasts.Judge(d, []string{"alt1.gmail-smtp-in.l.google.com", "mx.example.net"}, results)
	fmt.Println(r.Class, r.NotInPolicy)
	for _, mx := range r.MXHosts {
		fmt.Println(mx.Host, mx.InPolicy, mx.Cert)
	}
	fmt.Println("refused:", r.Refused())
	// Output:
	// mx_not_in_policy [mx.example.net]
	// alt1.gmail-smtp-in.l.google.com true invalid
	// mx.example.net false unknown
	// refused: [alt1.gmail-smtp-in.l.google.com mx.example.net]
}
