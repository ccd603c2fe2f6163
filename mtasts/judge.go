package mtasts

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/gmailtls/gmailtls/probe"
)

// CertVerdict says whether an MX host's TLS would satisfy MTA-STS: a
// session whose certificate chains to a trusted root and is valid for the
// MX host name (RFC 8461 §4.2).
type CertVerdict string

// The verdicts, exact strings in JSON, worst first.
const (
	// CertInvalid: the host presented a certificate that is untrusted,
	// expired, or not valid for the MX host name.
	CertInvalid CertVerdict = "invalid"
	// CertNoTLS: the host was reached but no TLS session came up
	// (STARTTLS missing, masked or refused, or the handshake failed).
	CertNoTLS CertVerdict = "no_tls"
	// CertValid: a verified certificate valid for the MX host name.
	CertValid CertVerdict = "valid"
	// CertUnknown: no probe reached the host's STARTTLS (DNS, connection,
	// banner, the relay's agent), or there was no probe of it.
	CertUnknown CertVerdict = "unknown"
)

// MXCheck is one MX host judged against the policy and its probes.
type MXCheck struct {
	Host string `json:"host"`
	// InPolicy is true when Host matches one of the policy's "mx"
	// patterns, Pattern the first that matches. Both are empty without a
	// usable policy.
	InPolicy bool   `json:"in_policy"`
	Pattern  string `json:"pattern,omitempty"`
	// Cert is the TLS verdict over every probe of Host; CertDetail says
	// which probe and why when it is not valid.
	Cert       CertVerdict `json:"cert"`
	CertDetail string      `json:"cert_detail,omitempty"`
	// Failure is the probe's failure class behind a verdict other than
	// valid; cert_hostname_mismatch also when the probe verified the chain
	// for a pinned server name that does not cover Host.
	Failure probe.Failure `json:"failure,omitempty"`
}

// Report is a Discovery judged against a domain's MX hosts and their
// probe results. Class becomes mx_not_in_policy when the policy is valid,
// its mode is enforce or testing, and an MX host matches none of its
// patterns; the certificate verdicts are TLS's, kept apart from Class.
type Report struct {
	Discovery
	MXHosts []MXCheck `json:"mx_hosts"`
	// NotInPolicy are the MX hosts that match no pattern (modes enforce
	// and testing only).
	NotInPolicy []string `json:"not_in_policy"`
}

// Judge matches every MX host against d's policy and judges its
// certificate from results (probe results of any relays and addresses;
// nil when there are none). With mx nil, the MX hosts are those of results,
// by preference then name. Judge is pure.
func Judge(d Discovery, mx []string, results []probe.Result) Report {
	if mx == nil {
		mx = hostsOf(results)
	}
	r := Report{Discovery: d, MXHosts: []MXCheck{}, NotInPolicy: []string{}}
	seen := map[string]bool{}
	for _, h := range mx {
		h = canonical(h)
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		c := MXCheck{Host: h}
		if d.Policy != nil {
			c.Pattern, c.InPolicy = d.Policy.Match(h)
		}
		c.Cert, c.CertDetail, c.Failure = certVerdict(h, results)
		r.MXHosts = append(r.MXHosts, c)
		if d.Class == ClassOK && d.Policy != nil && d.Policy.Mode != ModeNone && !c.InPolicy {
			r.NotInPolicy = append(r.NotInPolicy, h)
		}
	}
	if len(r.NotInPolicy) > 0 {
		r.Class = ClassMXNotInPolicy
		r.Detail = fmt.Sprintf("%s matches none of the policy's mx patterns %s", strings.Join(r.NotInPolicy, ", "), strings.Join(d.Policy.MX, ", "))
	}
	return r
}

// hostsOf returns the distinct MX hosts of results, by preference then name.
func hostsOf(results []probe.Result) []string {
	type host struct {
		name string
		pref uint16
	}
	var hs []host
	seen := map[string]bool{}
	for _, res := range results {
		name := canonical(res.MX)
		if name != "" && !seen[name] {
			seen[name] = true
			hs = append(hs, host{name, res.Preference})
		}
	}
	slices.SortFunc(hs, func(a, b host) int {
		return cmp.Or(cmp.Compare(a.pref, b.pref), strings.Compare(a.name, b.name))
	})
	names := make([]string, 0, len(hs))
	for _, h := range hs {
		names = append(names, h.name)
	}
	return names
}

// certVerdict judges host over its probe results: the worst verdict wins,
// and the detail counts the probes that had it.
func certVerdict(host string, results []probe.Result) (CertVerdict, string, probe.Failure) {
	var (
		worst  = CertUnknown
		detail string
		fail   probe.Failure
		n, of  int
	)
	for _, res := range results {
		if canonical(res.MX) != host {
			continue
		}
		of++
		v, d, f := judgeOne(host, res)
		switch {
		case rank(v) < rank(worst):
			worst, detail, fail, n = v, d, f, 1
		case v == worst:
			n++
			if detail == "" {
				detail, fail = d, f
			}
		}
	}
	switch {
	case of == 0:
		return CertUnknown, "no probe of " + host, ""
	case worst == CertValid:
		return CertValid, "", ""
	case n < of:
		detail = fmt.Sprintf("%s (%d of %d probes)", detail, n, of)
	}
	return worst, detail, fail
}

// rank orders verdicts worst first.
func rank(v CertVerdict) int {
	switch v {
	case CertInvalid:
		return 0
	case CertNoTLS:
		return 1
	case CertValid:
		return 2
	}
	return 3
}

// judgeOne judges one probe of host.
func judgeOne(host string, res probe.Result) (CertVerdict, string, probe.Failure) {
	where := res.IP
	if res.Relay != "" {
		where = res.Relay + " → " + res.IP
	}
	if res.TLS == nil {
		if tlsFailure(res.Failure) {
			return CertNoTLS, fmt.Sprintf("%s: no TLS session (%s)", where, res.Failure), res.Failure
		}
		if res.Failure == "" {
			return CertUnknown, where + ": the probe recorded no TLS session", ""
		}
		return CertUnknown, fmt.Sprintf("%s: the probe stopped before TLS (%s)", where, res.Failure), res.Failure
	}
	var sans []string
	if len(res.TLS.PeerCertificates) > 0 {
		sans = res.TLS.PeerCertificates[0].SANs
	}
	if !res.TLS.Verified {
		f := res.Failure
		if f == "" {
			f = probe.FailCertUntrusted
		}
		return CertInvalid, fmt.Sprintf("%s: %s; the certificate names %s", where, f, namesOf(sans)), f
	}
	// The probe verified the chain for its server name; that is the MX
	// host unless a server name was pinned.
	verifiedFor := canonical(res.ServerName)
	if verifiedFor == "" || verifiedFor == host || CertCovers(sans, host) {
		return CertValid, "", ""
	}
	return CertInvalid, fmt.Sprintf("%s: the chain verified for the pinned server name %s, but the certificate names %s, not %s",
		where, verifiedFor, namesOf(sans), host), probe.FailCertHostname
}

// tlsFailure reports whether f means the server was reached but no TLS
// session came up.
func tlsFailure(f probe.Failure) bool {
	switch f {
	case probe.FailStartTLSNotOffered, probe.FailStartTLSMasked, probe.FailStartTLSRejected,
		probe.FailTLSReset, probe.FailTLSTimeout, probe.FailTLSProtocolVersion,
		probe.FailTLSNoSharedCipher, probe.FailTLSAlert:
		return true
	}
	return false
}

// namesOf lists at most four certificate names.
func namesOf(sans []string) string {
	switch {
	case len(sans) == 0:
		return "no DNS name"
	case len(sans) > 4:
		return strings.Join(sans[:4], ", ") + ", …"
	}
	return strings.Join(sans, ", ")
}

// Enforced reports whether a sender would enforce the policy: it is valid
// and its mode is enforce.
func (r Report) Enforced() bool {
	return r.Policy != nil && r.Policy.Mode == ModeEnforce && (r.Class == ClassOK || r.Class == ClassMXNotInPolicy)
}

// Refused returns the MX hosts an enforcing sender would not deliver to:
// not in the policy, or without a valid certificate (invalid or no TLS).
// Nil unless Enforced. A host whose verdict is unknown is not counted.
func (r Report) Refused() []string {
	if !r.Enforced() {
		return nil
	}
	var out []string
	for _, c := range r.MXHosts {
		if !c.InPolicy || c.Cert == CertInvalid || c.Cert == CertNoTLS {
			out = append(out, c.Host)
		}
	}
	return out
}

// Summary says in a few lines, for people, what MTA-STS says and, apart
// from it, what TLS says: an MTA-STS failure (the policy, the MX list) and
// a TLS failure (a certificate, a handshake) call for different fixes.
func (r Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "MTA-STS %s: %s", r.Domain, r.Class)
	if r.Reason != "" {
		fmt.Fprintf(&b, " (%s)", r.Reason)
	}
	if p := r.Policy; p != nil {
		fmt.Fprintf(&b, "; policy id %s, mode %s, max_age %ds, mx %s", r.ID, p.Mode, p.MaxAge, strings.Join(p.MX, " "))
	}
	if r.Detail != "" {
		fmt.Fprintf(&b, "\n  %s", r.Detail)
	}
	var bad []string
	valid, unknown := 0, 0
	for _, c := range r.MXHosts {
		switch c.Cert {
		case CertInvalid, CertNoTLS:
			bad = append(bad, fmt.Sprintf("%s %s: %s", c.Host, c.Cert, c.CertDetail))
		case CertValid:
			valid++
		default:
			unknown++
		}
	}
	switch {
	case len(r.MXHosts) == 0:
	case len(bad) == 0:
		fmt.Fprintf(&b, "\nTLS: certificates valid for %d MX host(s), %d not probed as far as TLS", valid, unknown)
	default:
		fmt.Fprintf(&b, "\nTLS, not MTA-STS: %s", strings.Join(bad, "; "))
	}
	if refused := r.Refused(); len(refused) > 0 {
		fmt.Fprintf(&b, "\nAn enforcing sender would not deliver to %s", strings.Join(refused, ", "))
	}
	return b.String()
}

// Check fetches domain's policy and judges mx and results against it: Fetch
// then Judge. The error is Fetch's.
func (c *Client) Check(ctx context.Context, domain string, mx []string, results []probe.Result) (Report, error) {
	d, err := c.Fetch(ctx, domain)
	if err != nil {
		return Report{Discovery: d, MXHosts: []MXCheck{}, NotInPolicy: []string{}}, err
	}
	return Judge(d, mx, results), nil
}
