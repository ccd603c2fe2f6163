package mtasts

import "strings"

// Host names are compared the way DNS compares them: ASCII case folded, a
// trailing root dot ignored. Policies carry A-labels only (RFC 8461 §3.2),
// so there is no Unicode to fold.

// canonical lowercases name and drops one trailing root dot.
func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// validHostname reports whether name (already canonical or not) is a
// syntactically valid DNS host name in A-labels: letters, digits and inner
// hyphens, labels of 1 to 63 characters, at most 253 characters in all
// (RFC 5321's Domain, which RFC 8461 uses for "mx").
func validHostname(name string) bool {
	if len(name) == 0 || len(name) > 253 {
		return false
	}
	for _, l := range strings.Split(name, ".") {
		if !validLabel(l) {
			return false
		}
	}
	return true
}

// validLabel reports whether l is one LDH label: 1 to 63 letters, digits
// and hyphens, not starting or ending with a hyphen.
func validLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// MatchPattern reports whether host matches one policy "mx" pattern (RFC
// 8461 §4.1): a plain pattern matches that name only; "*.example.com"
// matches a name with exactly one more label on the left
// ("mx1.example.com"), never "example.com" itself nor
// "a.b.example.com". Case and a trailing dot do not matter.
//
// The same rule decides whether a certificate's DNS name covers a host
// (RFC 6125 wildcards, left-most label only), so CertCovers uses it too.
func MatchPattern(pattern, host string) bool {
	pattern, host = canonical(pattern), canonical(host)
	if host == "" || pattern == "" {
		return false
	}
	rest, wild := strings.CutPrefix(pattern, "*.")
	if !wild {
		return pattern == host
	}
	label, parent, ok := strings.Cut(host, ".")
	return ok && label != "" && rest != "" && parent == rest
}

// CertCovers reports whether one of a certificate's subject alternative
// names covers host: an exact DNS name or a left-most-label wildcard
// ("*.gmail-smtp-in.l.google.com" covers "alt1.gmail-smtp-in.l.google.com").
// IP address entries never match a host name.
func CertCovers(sans []string, host string) bool {
	for _, san := range sans {
		if MatchPattern(san, host) {
			return true
		}
	}
	return false
}
