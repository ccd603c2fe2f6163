package smtptest

import (
	"fmt"
	"strings"
)

// Behavior names one scripted way the test server acts. Each one models a
// real failure a probe toward Gmail meets and maps to one failure class of
// the probe contract.
type Behavior string

// The behaviours of the test server.
const (
	// Gmail acts like Gmail's port-25 servers: "220 mx.google.com ESMTP ...
	// - gsmtp"; EHLO lists SIZE 157286400, 8BITMIME, STARTTLS,
	// ENHANCEDSTATUSCODES, PIPELINING, CHUNKING, SMTPUTF8 and no AUTH;
	// STARTTLS gets "220 2.0.0 Ready to start TLS"; after TLS, EHLO again
	// (without STARTTLS); QUIT gets "221 2.0.0 closing connection".
	Gmail Behavior = "gmail"
	// NoSTARTTLS leaves STARTTLS out of the EHLO reply.
	NoSTARTTLS Behavior = "no_starttls"
	// Masked acts like Cisco ASA ESMTP inspection: a greeting of asterisks,
	// XXXXXXXA instead of STARTTLS in the EHLO reply, and STARTTLS answered
	// "500 5.5.1 Command unrecognized".
	Masked Behavior = "masked"
	// MaskedEHLOOnly sends a normal greeting but XXXXXXXA in the EHLO reply.
	MaskedEHLOOnly Behavior = "masked_ehlo"
	// StartTLS454 answers STARTTLS "454 4.7.0 TLS not available due to
	// local problem".
	StartTLS454 Behavior = "starttls_454"
	// StartTLS502 answers STARTTLS "502 5.5.1 Unrecognized command", as an
	// inspection firewall does.
	StartTLS502 Behavior = "starttls_502"
	// ResetAfterReady sends "220 2.0.0 Ready to start TLS", reads part of
	// the ClientHello and resets the connection (TCP RST): the classic
	// "SSL_connect error ... lost connection".
	ResetAfterReady Behavior = "reset_after_ready"
	// HangAfterReady sends "220 2.0.0 Ready to start TLS" and then reads and
	// ignores everything, never answering.
	HangAfterReady Behavior = "hang_after_ready"
	// HangBanner accepts the connection and never sends a greeting.
	HangBanner Behavior = "hang_banner"
	// Greet421 greets "421 4.7.0 Try again later, closing connection." and
	// closes.
	Greet421 Behavior = "greet_421"
	// EHLO550 sends a normal greeting and answers EHLO "550 5.7.1 Client
	// host rejected".
	EHLO550 Behavior = "ehlo_550"
	// GmailRateLimited greets the way Gmail turns away an IP it rate-limits
	// for unsolicited mail: a multi-line "421-4.7.28 ... unusual rate of
	// unsolicited mail ..." reply ending in "- gsmtp", then closes.
	GmailRateLimited Behavior = "gmail_rate_limited"
	// EHLO421 sends Gmail's greeting and answers EHLO as Gmail does when it
	// limits connections: "421 4.7.0 Try again later, closing connection.
	// (EHLO) ... - gsmtp", then closes.
	EHLO421 Behavior = "ehlo_421"
	// TLS10Only speaks only TLS 1.0, so a client that requires TLS 1.2 or
	// later finds no common version.
	TLS10Only Behavior = "tls10_only"
	// NoSharedCipher speaks only TLS 1.2 with an RC4 suite that no modern
	// client offers: the handshake ends with a handshake_failure alert.
	NoSharedCipher Behavior = "no_shared_cipher"
	// ExpiredCert serves a leaf from the CA that was valid from two years
	// ago to one year ago.
	ExpiredCert Behavior = "expired_cert"
	// WrongNameCert serves a leaf from the CA for "other.test.example" only.
	WrongNameCert Behavior = "wrong_name_cert"
	// SelfSignedCert serves a self-signed leaf that the CA never issued.
	SelfSignedCert Behavior = "self_signed_cert"
	// UntrustedCA serves a leaf from another CA, "Corp TLS Inspection CA",
	// as a TLS-intercepting middlebox does.
	UntrustedCA Behavior = "untrusted_ca"
	// EndlessLine greets "220-" and then writes a line that never ends,
	// until the peer closes or a 64 MiB cap is reached.
	EndlessLine Behavior = "endless_line"
	// EndlessReply greets with "220-" continuation lines that never end,
	// until the peer closes or a 64 MiB cap is reached.
	EndlessReply Behavior = "endless_reply"
	// Garbage greets with something that is not an SMTP reply (an HTTP
	// error response) and closes.
	Garbage Behavior = "garbage"
	// PostTLS421 acts like Gmail until TLS, then answers EHLO over TLS
	// "421 4.7.0 closing" and closes.
	PostTLS421 Behavior = "post_tls_421"
	// DropLargeHello peeks at the first TLS record after "220 2.0.0 Ready to
	// start TLS": a ClientHello record larger than Options.LargeHelloBytes
	// gets a TCP RST; a smaller one is handshaken and the session goes on
	// like Gmail. It models middleboxes that drop large (post-quantum)
	// ClientHellos.
	DropLargeHello Behavior = "drop_large_hello"
	// CloseAfterBanner greets normally and closes when the client sends
	// its first command (EHLO), without answering.
	CloseAfterBanner Behavior = "close_after_banner"
)

// behaviorDesc pairs a behaviour with its one-line description.
type behaviorDesc struct {
	b    Behavior
	desc string
}

// behaviorTable lists every behaviour in a stable order with its
// description. It is a function so that no package-level table can be
// changed by a caller.
func behaviorTable() []behaviorDesc {
	return []behaviorDesc{
		{Gmail, "acts like Gmail: greeting, EHLO with STARTTLS, TLS 1.3, EHLO again, QUIT"},
		{NoSTARTTLS, "EHLO reply without STARTTLS"},
		{Masked, "Cisco ASA inspection: greeting of asterisks, XXXXXXXA in EHLO, STARTTLS -> 500"},
		{MaskedEHLOOnly, "normal greeting, XXXXXXXA instead of STARTTLS in EHLO"},
		{StartTLS454, "STARTTLS -> 454 4.7.0 TLS not available due to local problem"},
		{StartTLS502, "STARTTLS -> 502 5.5.1 Unrecognized command (inspection firewall)"},
		{ResetAfterReady, "220 Ready, then TCP RST during the ClientHello (SSL_connect error ... lost connection)"},
		{HangAfterReady, "220 Ready, then silence: the TLS handshake never completes"},
		{HangBanner, "accepts, never sends a greeting"},
		{Greet421, "greeting 421 4.7.0 Try again later, then closes"},
		{EHLO550, "EHLO -> 550 5.7.1 Client host rejected"},
		{GmailRateLimited, "greeting 421-4.7.28 unusual rate of unsolicited mail ... - gsmtp (Gmail's rate limit), then closes"},
		{EHLO421, "Gmail's greeting, EHLO -> 421 4.7.0 Try again later, closing connection. (EHLO) - gsmtp, then closes"},
		{TLS10Only, "TLS 1.0 only: no common protocol version with a modern client"},
		{NoSharedCipher, "TLS 1.2 with an RC4 suite only: handshake_failure, no shared cipher"},
		{ExpiredCert, "certificate from the CA, expired a year ago"},
		{WrongNameCert, "certificate from the CA for other.test.example only"},
		{SelfSignedCert, "self-signed certificate"},
		{UntrustedCA, "certificate from \"Corp TLS Inspection CA\" (TLS interception)"},
		{EndlessLine, "greeting \"220-\" followed by a line that never ends (capped at 64 MiB)"},
		{EndlessReply, "greeting of \"220-\" continuation lines that never end (capped at 64 MiB)"},
		{Garbage, "greeting that is not SMTP (HTTP/1.1 400 Bad Request)"},
		{PostTLS421, "like Gmail until TLS, then EHLO over TLS -> 421 4.7.0 closing"},
		{DropLargeHello, "TCP RST when the ClientHello record is larger than the threshold (post-quantum key share); small hellos work"},
		{CloseAfterBanner, "greeting, then closes at EHLO without answering"},
	}
}

// Behaviors returns every behaviour, in a stable order.
func Behaviors() []Behavior {
	table := behaviorTable()
	out := make([]Behavior, len(table))
	for i, e := range table {
		out[i] = e.b
	}
	return out
}

// Description returns a one-line description of b, or "" for an unknown
// behaviour.
func (b Behavior) Description() string {
	for _, e := range behaviorTable() {
		if e.b == b {
			return e.desc
		}
	}
	return ""
}

// Valid reports whether b is one of the known behaviours.
func (b Behavior) Valid() bool { return b.Description() != "" }

// ParseBehavior returns the behaviour named s (case-insensitive; "-" is
// read as "_").
func ParseBehavior(s string) (Behavior, error) {
	b := Behavior(strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_"))
	if !b.Valid() {
		return "", fmt.Errorf("smtptest: unknown behaviour %q (known: %s)", s, joinBehaviors())
	}
	return b, nil
}

func joinBehaviors() string {
	table := behaviorTable()
	names := make([]string, len(table))
	for i, e := range table {
		names[i] = string(e.b)
	}
	return strings.Join(names, ", ")
}
