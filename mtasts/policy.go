package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrPolicySyntax is wrapped by every error of ParsePolicy.
var ErrPolicySyntax = errors.New("mtasts: invalid policy")

// Mode is a policy's "mode" (RFC 8461 §5).
type Mode string

// The three modes.
const (
	// ModeEnforce: a sender must not deliver to an MX host that is not in
	// the policy or whose certificate is not valid for its name.
	ModeEnforce Mode = "enforce"
	// ModeTesting: a sender delivers anyway and only reports (TLSRPT).
	ModeTesting Mode = "testing"
	// ModeNone: the domain has withdrawn its policy.
	ModeNone Mode = "none"
)

// MaxMaxAge is the largest "max_age" RFC 8461 §3.2 allows: 31557600
// seconds, about a year.
const MaxMaxAge = 31557600

// Policy is a parsed policy file, "https://mta-sts.<domain>/.well-known/mta-sts.txt".
type Policy struct {
	// Version is always "STSv1".
	Version string `json:"version"`
	Mode    Mode   `json:"mode"`
	// MX are the "mx" patterns in the order published, each a host name
	// or "*." and a host name.
	MX []string `json:"mx"`
	// MaxAge is how long, in seconds, a sender may cache the policy.
	MaxAge int `json:"max_age"`
	// Extensions are fields RFC 8461 does not define, kept to be shown;
	// they change nothing.
	Extensions []Field `json:"extensions,omitempty"`
}

// Match returns the first "mx" pattern of p that host matches, and false
// when none does (RFC 8461 §4.1; see MatchPattern).
func (p Policy) Match(host string) (string, bool) {
	for _, pat := range p.MX {
		if MatchPattern(pat, host) {
			return pat, true
		}
	}
	return "", false
}

// String returns p as a policy file, LF line endings: what ParsePolicy reads
// back to the same Policy.
func (p Policy) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: %s\nmode: %s\n", p.Version, p.Mode)
	for _, mx := range p.MX {
		fmt.Fprintf(&b, "mx: %s\n", mx)
	}
	fmt.Fprintf(&b, "max_age: %d\n", p.MaxAge)
	for _, e := range p.Extensions {
		fmt.Fprintf(&b, "%s: %s\n", e.Key, e.Value)
	}
	return b.String()
}

// ParsePolicy parses a policy file as RFC 8461 §3.2 describes it: one
// "key: value" per line, lines ending in CRLF or LF; "version: STSv1",
// "mode" and "max_age" required, "mx" required (and repeatable) unless the
// mode is "none". Keys and the known values are case-sensitive.
//
// Strict where the grammar is: an unknown mode, a max_age that is not 1 to
// 10 digits or exceeds MaxMaxAge, an "mx" that is not a host name in
// A-labels (optionally behind "*."), a line that is not "key: value", or a
// control character make the policy invalid.
//
// Tolerant where the RFC asks for it or real files need it: unknown keys
// are kept as extensions and otherwise ignored; when a key other than "mx"
// repeats, the first value counts (§3.2); whitespace around values, and
// blank lines (a file ending in two newlines), are skipped.
func ParsePolicy(text string) (Policy, error) {
	if !utf8.ValidString(text) {
		return Policy{}, fmt.Errorf("%w: not valid UTF-8 text", ErrPolicySyntax)
	}
	var p Policy
	seen := map[string]bool{}
	var caseTypos []string
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.Trim(line, " \t") == "" {
			continue
		}
		key, value, err := splitPolicyLine(line)
		if err != nil {
			return Policy{}, fmt.Errorf("%w: line %d: %w", ErrPolicySyntax, n+1, err)
		}
		first := !seen[key]
		seen[key] = true
		if err := p.set(key, value, first); err != nil {
			return Policy{}, fmt.Errorf("%w: line %d: %w", ErrPolicySyntax, n+1, err)
		}
		if lower := strings.ToLower(key); lower != key && isKnownKey(lower) {
			caseTypos = append(caseTypos, key)
		}
	}
	for _, k := range []string{"version", "mode", "max_age"} {
		if !seen[k] {
			return Policy{}, fmt.Errorf("%w: no %q line%s", ErrPolicySyntax, k, typoHint(caseTypos))
		}
	}
	if p.Mode != ModeNone && len(p.MX) == 0 {
		return Policy{}, fmt.Errorf("%w: mode %s but no \"mx\" line%s", ErrPolicySyntax, p.Mode, typoHint(caseTypos))
	}
	return p, nil
}

// splitPolicyLine splits "key:" *WSP value *WSP.
func splitPolicyLine(line string) (key, value string, err error) {
	key, value, ok := strings.Cut(line, ":")
	if !ok {
		return "", "", fmt.Errorf("%q is not \"key: value\"", clip(line))
	}
	if !validKey(key) {
		return "", "", fmt.Errorf("key %q is not 1 to 32 letters, digits, \"_\", \"-\" or \".\" starting with a letter or digit", clip(key))
	}
	value = strings.Trim(value, " \t")
	for _, r := range value {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return "", "", fmt.Errorf("the value of %q has a control character", key)
		}
	}
	return key, value, nil
}

// set applies one line; first is false when key was seen before.
func (p *Policy) set(key, value string, first bool) error {
	switch key {
	case "version":
		if value != "STSv1" {
			return fmt.Errorf("version %q, expected STSv1", clip(value))
		}
		p.Version = value
	case "mode":
		m := Mode(value)
		if m != ModeEnforce && m != ModeTesting && m != ModeNone {
			return fmt.Errorf("mode %q, expected enforce, testing or none", clip(value))
		}
		if first {
			p.Mode = m
		}
	case "max_age":
		age, err := parseMaxAge(value)
		if err != nil {
			return err
		}
		if first {
			p.MaxAge = age
		}
	case "mx":
		if !validMXPattern(value) {
			return fmt.Errorf("mx %q is not a host name, or \"*.\" and a host name, in ASCII", clip(value))
		}
		p.MX = append(p.MX, value)
	default:
		if value == "" {
			return fmt.Errorf("empty value of %q", key)
		}
		p.Extensions = append(p.Extensions, Field{Key: key, Value: value})
	}
	return nil
}

// parseMaxAge parses 1*10 DIGIT no greater than MaxMaxAge.
func parseMaxAge(v string) (int, error) {
	if v == "" || len(v) > 10 || strings.Trim(v, "0123456789") != "" {
		return 0, fmt.Errorf("max_age %q is not 1 to 10 digits", clip(v))
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > MaxMaxAge {
		return 0, fmt.Errorf("max_age %s exceeds %d seconds (a year)", v, MaxMaxAge)
	}
	return int(n), nil
}

// validMXPattern reports whether v is ["*."] Domain with Domain a host name
// in A-labels.
func validMXPattern(v string) bool {
	return validHostname(strings.TrimPrefix(v, "*."))
}

// isKnownKey reports whether k is one of the keys RFC 8461 defines.
func isKnownKey(k string) bool {
	return k == "version" || k == "mode" || k == "max_age" || k == "mx"
}

// typoHint explains a missing key that the file has in another case.
func typoHint(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return fmt.Sprintf(" (keys are case-sensitive; the file has %q)", keys)
}
