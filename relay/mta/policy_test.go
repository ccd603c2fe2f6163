package mta

import (
	"strings"
	"testing"
)

// What a TLS failure does under each level: it never advises lowering
// the level, and says what actually happens to the mail.
func TestInterpretTLSPolicy(t *testing.T) {
	tests := []struct {
		p    TLSPolicy
		want string
		text string
	}{
		{TLSPolicy{MTA: "postfix", Level: "encrypt"}, TLSFailureStalls, "waits in the queue"},
		{TLSPolicy{MTA: "postfix", Level: "SECURE", MTASTS: true, MTASTSAnswered: true}, TLSFailureStalls, "MTA-STS"},
		{TLSPolicy{MTA: "postfix", Level: "dane-only"}, TLSFailureStalls, "waits in the queue"},
		{TLSPolicy{MTA: "postfix", Level: "verify"}, TLSFailureStalls, "never sends"},
		{TLSPolicy{MTA: "postfix", Level: "may"}, TLSFailurePlaintext, "delivered without TLS"},
		{TLSPolicy{MTA: "postfix", Level: "may", MTASTS: true}, TLSFailurePlaintext, "gave no policy"},
		{TLSPolicy{MTA: "postfix", Level: "dane"}, TLSFailurePlaintext, "TLSA"},
		{TLSPolicy{MTA: "postfix", Level: "none"}, TLSNotUsed, "TLS is off"},
		{TLSPolicy{MTA: "postfix", MTASTS: true}, TLSFailureUnknown, "MTA-STS resolver that did not answer"},
		{TLSPolicy{MTA: "postfix", Level: "bogus"}, TLSFailureUnknown, "Unrecognised"},
		{TLSPolicy{MTA: "exim", EximRequireTLS: "*"}, TLSFailureStalls, "hosts_require_tls = *"},
		{TLSPolicy{MTA: "exim", EximTryClear: true}, TLSFailurePlaintext, "delivered without TLS"},
		{TLSPolicy{MTA: "exim"}, TLSFailureStalls, "tls_tempfail_tryclear is false"},
	}
	for _, tt := range tests {
		got := InterpretTLSPolicy(tt.p)
		if got.OnTLSFailure != tt.want || !strings.Contains(got.Text, tt.text) {
			t.Errorf("%+v: %s %q", tt.p, got.OnTLSFailure, got.Text)
		}
		low := strings.ToLower(got.Text)
		for _, bad := range []string{"set smtp_tls_security_level = may", "lower the level to", "disable tls", "switch to may"} {
			if strings.Contains(low, bad) {
				t.Errorf("%+v advises weakening TLS: %q", tt.p, got.Text)
			}
		}
	}
}

func TestParseSettings(t *testing.T) {
	m := ParseSettings([]byte("smtp_tls_security_level = encrypt\nrelayhost =\npostconf: warning: /etc/postfix/main.cf: unused parameter: x=y\ntransport_maps = texthash:/a, hash:/b\nrelayhost = second\n"))
	if m["smtp_tls_security_level"] != "encrypt" || m["relayhost"] != "" || len(m) != 3 {
		t.Errorf("%q", m)
	}
	if got := SplitMaps(m["transport_maps"]); len(got) != 2 || got[1] != "hash:/b" {
		t.Errorf("%q", got)
	}
	if PolicyLevel("  Secure match=.google.com") != "secure" || PolicyLevel("") != "" {
		t.Error("PolicyLevel")
	}
	if !IsMTASTSResolver("socketmap:inet:127.0.0.1:8461:postfix") || IsMTASTSResolver("hash:/etc/postfix/tls_policy") {
		t.Error("IsMTASTSResolver")
	}
}
