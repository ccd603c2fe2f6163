package mta

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"time"
)

// ParseSettings reads "name = value" lines, as `postconf name ...` and
// `exim -bP name ...` print them, into a map. Other lines (warnings,
// "no such option") are skipped; a name that repeats keeps its first value.
// Values are trimmed, not otherwise changed.
func ParseSettings(out []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		if name == "" || strings.ContainsAny(name, " \t:") || len(m) >= 1000 {
			continue
		}
		if _, seen := m[name]; !seen {
			m[name] = clip(strings.TrimSpace(value), 1000)
		}
	}
	return m
}

// SplitMaps splits a Postfix lookup table list ("hash:/a, texthash:/b")
// into its tables.
func SplitMaps(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// IsMTASTSResolver reports whether a TLS policy table is an MTA-STS
// resolver (postfix-mta-sts-resolver and the like answer through a
// socketmap): the policy for a domain is then the domain's published
// MTA-STS policy, looked up at delivery time.
func IsMTASTSResolver(table string) bool {
	return strings.HasPrefix(strings.ToLower(table), "socketmap:")
}

// CABundle describes the certificates of a PEM bundle.
type CABundle struct {
	// Certificates counts the certificates that parse.
	Certificates int
	// NewestNotBefore is the latest notBefore among them: a bundle whose
	// newest certificate is years old has not been updated since.
	NewestNotBefore time.Time
	// NewestSubject is that certificate's subject.
	NewestSubject string
}

// ParseCABundle reads the certificates of PEM data. Blocks that are not
// certificates, or do not parse, are skipped.
func ParseCABundle(data []byte) CABundle {
	var b CABundle
	for len(data) > 0 {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			continue
		}
		b.add(c.NotBefore, c.Subject.String())
	}
	return b
}

// Merge adds o's certificates to b.
func (b *CABundle) Merge(o CABundle) {
	b.Certificates += o.Certificates
	if o.NewestNotBefore.After(b.NewestNotBefore) {
		b.NewestNotBefore, b.NewestSubject = o.NewestNotBefore, o.NewestSubject
	}
}

func (b *CABundle) add(notBefore time.Time, subject string) {
	b.Merge(CABundle{Certificates: 1, NewestNotBefore: notBefore, NewestSubject: clip(subject, 200)})
}

// TLSPolicy is what a relay's configuration says about TLS toward one
// domain (gmail.com), as InterpretTLSPolicy reads it.
type TLSPolicy struct {
	// MTA is "postfix" or "exim".
	MTA string
	// Level is Postfix's security level toward the domain: the policy
	// table's entry when it has one, else smtp_tls_security_level
	// ("none", "may", "encrypt", "dane", "dane-only", "fingerprint",
	// "verify", "secure"). Empty for Exim, or when unknown.
	Level string
	// MTASTS is true when a policy table is an MTA-STS resolver.
	MTASTS bool
	// MTASTSAnswered is true when that resolver gave the Level (an
	// enforced MTA-STS policy: "secure" with the policy's MX names).
	MTASTSAnswered bool
	// EximRequireTLS is Exim's hosts_require_tls on the remote_smtp
	// transport ("" when unset).
	EximRequireTLS string
	// EximTryClear is Exim's tls_tempfail_tryclear (default true).
	EximTryClear bool
}

// What a TLS failure toward Gmail does to Gmail-bound mail.
const (
	// TLSFailureStalls: mail waits in the queue until TLS works.
	TLSFailureStalls = "mail_waits"
	// TLSFailurePlaintext: mail is delivered without TLS.
	TLSFailurePlaintext = "delivered_without_tls"
	// TLSNotUsed: TLS is off toward the domain.
	TLSNotUsed = "tls_off"
	// TLSFailureUnknown: the configuration could not be read.
	TLSFailureUnknown = "unknown"
)

// TLSPolicyEffect is InterpretTLSPolicy's answer.
type TLSPolicyEffect struct {
	// OnTLSFailure is one of the TLSFailure constants.
	OnTLSFailure string
	// Text says, for an operator, what happens to Gmail-bound mail when
	// TLS toward Gmail fails, and what follows for the alerts.
	Text string
}

// InterpretTLSPolicy says what a TLS failure toward Gmail does to the
// relay's Gmail-bound mail under policy p. It describes; it never advises
// lowering the level: a failure under opportunistic TLS is still a
// failure to be fixed, only a quieter one.
func InterpretTLSPolicy(p TLSPolicy) TLSPolicyEffect {
	if p.MTA == "exim" {
		switch {
		case strings.TrimSpace(p.EximRequireTLS) != "":
			return TLSPolicyEffect{TLSFailureStalls, "Exim requires TLS on remote_smtp (hosts_require_tls = " + clip(p.EximRequireTLS, 100) +
				"): for the hosts it matches, Gmail-bound mail waits in the queue while TLS fails, so the queue grows and the incident rule fires sooner."}
		case p.EximTryClear:
			return TLSPolicyEffect{TLSFailurePlaintext, "Exim uses opportunistic TLS toward Gmail (no hosts_require_tls): when the TLS handshake fails it retries the delivery in clear (tls_tempfail_tryclear), so mail is delivered without TLS and the queue does not grow; the failure shows in the mail log, not in the queue."}
		default:
			return TLSPolicyEffect{TLSFailureStalls, "Exim uses opportunistic TLS toward Gmail but tls_tempfail_tryclear is false: when the TLS handshake fails, Gmail-bound mail waits in the queue, so the queue grows and the incident rule fires sooner."}
		}
	}
	level := strings.ToLower(strings.TrimSpace(p.Level))
	via := ""
	if p.MTASTSAnswered {
		via = " (from the MTA-STS resolver: Gmail's published policy is enforced)"
	}
	switch level {
	case "encrypt", "secure", "verify", "fingerprint", "dane-only":
		return TLSPolicyEffect{TLSFailureStalls, "TLS is mandatory toward Gmail (security level " + level + via +
			"): Postfix never sends this mail without TLS, so while TLS fails Gmail-bound mail waits in the queue; the queue grows and the incident rule fires sooner."}
	case "dane":
		return TLSPolicyEffect{TLSFailurePlaintext, "Security level dane: TLS is mandatory only toward MX hosts with usable DNSSEC-signed TLSA records, and Gmail's MX hosts publish none, so Postfix treats them as opportunistic (may): when the TLS handshake fails it retries without TLS, and mail is delivered without TLS; the queue does not grow and the failure shows in the mail log."}
	case "may":
		text := "Opportunistic TLS toward Gmail (security level may): when the TLS handshake fails, Postfix retries the delivery without TLS, so mail is delivered without TLS; the queue does not grow, and the failure shows in the mail log rather than in the queue."
		if p.MTASTS {
			text += " An MTA-STS resolver is configured but gave no policy for the domain, so the main.cf level applies."
		}
		return TLSPolicyEffect{TLSFailurePlaintext, text}
	case "none":
		return TLSPolicyEffect{TLSNotUsed, "TLS is off toward Gmail (security level none): Postfix does not try STARTTLS, so a TLS failure cannot hold mail back, and mail is delivered without TLS."}
	case "":
		if p.MTASTS {
			return TLSPolicyEffect{TLSFailureUnknown, "TLS policy toward Gmail is delegated to an MTA-STS resolver that did not answer: with an enforced policy, Gmail-bound mail waits in the queue while TLS fails."}
		}
		return TLSPolicyEffect{TLSFailureUnknown, "The relay's TLS policy toward Gmail could not be read."}
	}
	return TLSPolicyEffect{TLSFailureUnknown, "Unrecognised TLS security level " + clip(level, 40) + " toward Gmail."}
}

// PolicyLevel is the security level of a Postfix TLS policy table entry:
// its first word, lower-case ("secure match=…" → "secure").
func PolicyLevel(entry string) string {
	f := strings.Fields(entry)
	if len(f) == 0 {
		return ""
	}
	return strings.ToLower(f[0])
}
