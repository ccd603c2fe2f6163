package commands

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/relay"
)

// policySection shows the relay MTA's TLS policy toward Gmail: the level
// in force and where it comes from, the transport, the CA bundle, the
// mandatory protocols and ciphers, and what a TLS failure does under it.
// Without a policy, one line says why.
func policySection(p *relay.Policy, why string) message.Section {
	domain := "Gmail"
	if p != nil && p.Domain != "" {
		domain = p.Domain
	}
	sec := message.Section{Heading: "Relay's TLS policy toward " + domain}
	if p == nil || !p.Available {
		sec.Lines = []string{"Not available: " + why}
		return sec
	}
	add := func(label, value string) {
		if value != "" {
			sec.Fields = append(sec.Fields, message.Field{Label: label, Value: value})
		}
	}
	add("MTA", p.MTA)
	if p.MTA == "postfix" {
		level := cmp.Or(p.EffectiveLevel, "unknown")
		if p.SecurityLevel != "" && p.SecurityLevel != p.EffectiveLevel {
			level += " (smtp_tls_security_level = " + p.SecurityLevel + ")"
		} else if p.PolicyEntry == "" {
			level += " (smtp_tls_security_level)"
		}
		add("Security level", level)
		switch {
		case p.PolicyEntry != "":
			add("Policy entry", fmt.Sprintf("%s → %s (%s)", p.PolicyKey, p.PolicyEntry, p.PolicyTable))
		case p.PolicyMaps != "":
			add("Policy entry", fmt.Sprintf("none for %s in smtp_tls_policy_maps = %s", cmp.Or(p.PolicyKey, domain), p.PolicyMaps))
		default:
			add("Policy entry", "none (no smtp_tls_policy_maps)")
		}
		add("MTA-STS", p.MTASTSResolver)
		transport := "the domain's MX hosts (no transport_maps entry, no relayhost)"
		switch {
		case p.Transport != "":
			transport = p.Transport + " (transport_maps)"
		case p.Relayhost != "":
			transport = p.Relayhost + " (relayhost)"
		}
		add("Transport", transport)
		ca := []string{}
		if p.CAFile != "" {
			ca = append(ca, "smtp_tls_CAfile = "+p.CAFile)
		}
		if p.CAPath != "" {
			ca = append(ca, "smtp_tls_CApath = "+p.CAPath)
		}
		switch {
		case len(ca) == 0:
			add("CA bundle", "none set (smtp_tls_CAfile and smtp_tls_CApath empty)")
		case p.CACertificates > 0:
			newest := ""
			if !p.CANewestNotBefore.IsZero() {
				newest = fmt.Sprintf(", newest issued %s", p.CANewestNotBefore.Format("2006-01-02"))
				if p.CANewestSubject != "" {
					newest += " (" + clip(p.CANewestSubject) + ")"
				}
			}
			add("CA bundle", fmt.Sprintf("%s: %s%s", strings.Join(ca, ", "), plural(p.CACertificates, "certificate"), newest))
		default:
			add("CA bundle", strings.Join(ca, ", ")+": no certificate read")
		}
		add("Mandatory protocols", p.MandatoryProtocols)
		add("Mandatory ciphers", p.MandatoryCiphers)
	}
	if e := p.Exim; e != nil {
		add("hosts_require_tls", cmp.Or(e.HostsRequireTLS, "(unset)"))
		add("hosts_try_tls", e.HostsTryTLS)
		add("tls_tempfail_tryclear", fmt.Sprint(e.TLSTempfailTryclear))
		add("tls_require_ciphers", e.TLSRequireCiphers)
	}
	add("On a TLS failure", p.Effect)
	for _, w := range p.Warnings {
		sec.Lines = append(sec.Lines, "Warning: "+w)
	}
	return sec
}
