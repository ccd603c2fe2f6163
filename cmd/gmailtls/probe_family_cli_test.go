package main

import (
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// TestProbeCLIFamilyExcludesPinned: a family that excludes every pinned
// IP literal leaves nothing to probe; that is a usage error (exit 2, one
// line saying why), not a dns_error result. Where a pinned address has
// the family, it is probed as before.
func TestProbeCLIFamilyExcludesPinned(t *testing.T) {
	addrs, caFile := probeLab(t, smtptest.Gmail, smtptest.Gmail)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"ipv4 literal, family 6", mxArgs(addrs[:1], caFile, "--family", "6"), exitUsage,
			"gmailtls probe: --family 6 excludes every pinned MX: " + addrs[0] + " is IPv4; pin an IPv6 address or use --family any\n"},
		{"two ipv4 literals, family 6", mxArgs(addrs, caFile, "--family", "6"), exitUsage,
			"gmailtls probe: --family 6 excludes every pinned MX: " + addrs[0] + ", " + addrs[1] + " are IPv4;"},
		{"ipv6 literal, family 4", mxArgs([]string{"[::1]:2525"}, caFile, "--family", "4"), exitUsage,
			"gmailtls probe: --family 4 excludes every pinned MX: [::1]:2525 is IPv6; pin an IPv4 address or use --family any\n"},
		{"ipv4 literal, family 4", mxArgs(addrs[:1], caFile, "--family", "4"), exitOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := probeCLI(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errs)
			}
			if !strings.HasPrefix(errs, tc.stderr) || (tc.code == exitUsage && strings.Count(errs, "\n") != 1) {
				t.Errorf("stderr %q, want one line starting %q", errs, tc.stderr)
			}
			if tc.code == exitUsage && out != "" {
				t.Errorf("a usage error printed a report:\n%s", out)
			}
		})
	}
}
