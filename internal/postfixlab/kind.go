package postfixlab

import (
	"fmt"
	"strings"
)

// Kind is how one smtpd listener of an instance is configured: a working
// STARTTLS server or one failure Postfix can express.
type Kind string

// The kinds of listener.
const (
	// OK offers STARTTLS with TLS 1.2 and 1.3 and a certificate from the
	// lab CA for the instance's host name.
	OK Kind = "ok"
	// TLS11Only speaks TLS 1.0 and 1.1 only (smtpd_tls_protocols).
	TLS11Only Kind = "tls11_only"
	// ExpiredCert serves a certificate from the lab CA that expired a
	// year ago.
	ExpiredCert Kind = "expired_cert"
	// WrongNameCert serves a certificate from the lab CA for
	// other.test.example only.
	WrongNameCert Kind = "wrong_name_cert"
	// UntrustedCA serves a certificate, and its CA, from "Corp TLS
	// Inspection CA", which the lab CA file does not hold.
	UntrustedCA Kind = "untrusted_ca"
	// NoSTARTTLS does not offer STARTTLS (smtpd_tls_security_level =
	// none).
	NoSTARTTLS Kind = "no_starttls"
	// StartTLS454 offers STARTTLS but its certificate file is missing, so
	// Postfix answers "454 4.7.0 TLS not available due to local problem".
	StartTLS454 Kind = "starttls_454"
	// Greet421 greets "421 4.7.0 … Client host rejected" and hangs up:
	// smtpd_delay_reject = no with a cidr client restriction that answers
	// 421 for loopback.
	Greet421 Kind = "greet_421"
	// NoSharedCipher speaks TLS 1.2 only with the single cipher suite
	// ECDHE-ECDSA-CAMELLIA128-SHA256, which Go does not implement: the
	// handshake ends with a handshake_failure alert.
	NoSharedCipher Kind = "no_shared_cipher"
	// SlowGreeting waits Options.SlowGreeting (default 5 s) before its
	// greeting: smtpd_delay_reject = no with smtpd_client_restrictions =
	// sleep.
	SlowGreeting Kind = "slow_greeting"
)

// kindTable lists every kind in a stable order with its description.
func kindTable() []struct {
	k    Kind
	desc string
} {
	return []struct {
		k    Kind
		desc string
	}{
		{OK, "STARTTLS, TLS 1.2-1.3, certificate from the lab CA"},
		{TLS11Only, "TLS 1.0 and 1.1 only (smtpd_tls_protocols)"},
		{ExpiredCert, "certificate from the lab CA, expired a year ago"},
		{WrongNameCert, "certificate from the lab CA for other.test.example"},
		{UntrustedCA, "certificate from \"Corp TLS Inspection CA\" (not in the lab CA file)"},
		{NoSTARTTLS, "no STARTTLS (smtpd_tls_security_level = none)"},
		{StartTLS454, "STARTTLS -> 454 4.7.0 TLS not available due to local problem (certificate file missing)"},
		{Greet421, "greeting 421 4.7.0 Client host rejected (cidr client restriction, smtpd_delay_reject = no)"},
		{NoSharedCipher, "TLS 1.2 with ECDHE-ECDSA-CAMELLIA128-SHA256 only: no cipher suite in common with Go"},
		{SlowGreeting, "greeting after a delay (smtpd_client_restrictions = sleep)"},
	}
}

// Kinds returns every kind, in a stable order.
func Kinds() []Kind {
	t := kindTable()
	out := make([]Kind, len(t))
	for i, e := range t {
		out[i] = e.k
	}
	return out
}

// Description is a one-line description of k, "" for an unknown kind.
func (k Kind) Description() string {
	for _, e := range kindTable() {
		if e.k == k {
			return e.desc
		}
	}
	return ""
}

// ParseKind returns the kind named s (case-insensitive; "-" reads as "_").
func ParseKind(s string) (Kind, error) {
	k := Kind(strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_"))
	if k.Description() == "" {
		names := make([]string, 0, len(kindTable()))
		for _, e := range kindTable() {
			names = append(names, string(e.k))
		}
		return "", fmt.Errorf("postfixlab: unknown kind %q (known: %s)", s, strings.Join(names, ", "))
	}
	return k, nil
}
