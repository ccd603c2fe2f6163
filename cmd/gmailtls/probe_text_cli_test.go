package main

import (
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// TestProbeCLITextPinnedAndTLS: the human report of a pinned run names
// the pinned MX hosts, not gmail.com (the JSON keeps "domain", empty), and a
// failure after TLS was negotiated shows the session's TLS version and
// cipher on its row.
func TestProbeCLITextPinnedAndTLS(t *testing.T) {
	addrs, caFile := probeLab(t, smtptest.PostTLS421, smtptest.UntrustedCA)
	code, out, errs := probeCLI(t, mxArgs(addrs[:1], caFile)...)
	if code != exitFailed || errs != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
	}
	if want := "gmailtls probe of the pinned MX " + addrs[0] + " from relay local, "; !strings.HasPrefix(out, want) {
		t.Errorf("header does not name the pinned MX (want %q):\n%s", want, out)
	}
	if !strings.Contains(out, "post_tls post_tls_failed 421, TLS1.3 AES_128_GCM_SHA256") {
		t.Errorf("post_tls row lacks the TLS details:\n%s", out)
	}

	code, out, _ = probeCLI(t, mxArgs(addrs, caFile)...)
	if code != exitFailed {
		t.Fatalf("exit %d\n%s", code, out)
	}
	want := "gmailtls probe of 2 pinned MX hosts from relay local, "
	list := "\npinned MX hosts: " + addrs[0] + ", " + addrs[1] + "\n"
	if !strings.HasPrefix(out, want) || !strings.Contains(out, list) {
		t.Errorf("header does not name the pinned MX hosts:\n%s", out)
	}
	if !strings.Contains(out, "verify cert_untrusted, TLS1.3 AES_128_GCM_SHA256") {
		t.Errorf("verify row lacks the TLS details:\n%s", out)
	}

	code, out, _ = probeCLI(t, mxArgs(addrs[:1], caFile, "--json")...)
	if code != exitFailed || !strings.Contains(out, `"domain": "",`) {
		t.Errorf("--json of a pinned run: want the domain key, empty (exit %d):\n%s", code, out)
	}
	// Through the DNS (the domain's MX set), the key names the domain:
	// relay's TestFullProbeTeachesTheMXSet covers that side.
}
