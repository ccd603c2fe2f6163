package probe_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/postfixlab"
	"github.com/gmailtls/gmailtls/probe"
)

// TestFailureClassesAgainstPostfix runs the probe engine against Debian's
// Postfix (internal/postfixlab): one instance with a listener per failure
// Postfix can express, plus a working one on 127.0.0.1 and on ::1. It
// skips when Postfix is not installed, except under CI=true, where it
// fails.
func TestFailureClassesAgainstPostfix(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	rows := []struct {
		kind postfixlab.Kind
		row
		text string // smtp_text must contain this
	}{
		{kind: postfixlab.TLS11Only, row: row{stage: probe.StageHandshake, failure: probe.FailTLSProtocolVersion,
			hint: "alert protocol_version (70)"}},
		{kind: postfixlab.ExpiredCert, row: row{stage: probe.StageVerify, failure: probe.FailCertExpired,
			hint: "the certificate expired on"}},
		{kind: postfixlab.WrongNameCert, row: row{stage: probe.StageVerify, failure: probe.FailCertHostname,
			hint: "the certificate names other.test.example, not mx.test.example"}},
		{kind: postfixlab.UntrustedCA, row: row{stage: probe.StageVerify, failure: probe.FailCertUntrusted,
			hint: `TLS interception suspected: the certificate is issued by "CN=Corp TLS Inspection CA`}},
		{kind: postfixlab.NoSTARTTLS, row: row{stage: probe.StageEHLO, failure: probe.FailStartTLSNotOffered}},
		{kind: postfixlab.StartTLS454, row: row{stage: probe.StageStartTLS, failure: probe.FailStartTLSRejected, code: 454},
			text: "4.7.0 TLS not available due to local problem"},
		{kind: postfixlab.Greet421, row: row{stage: probe.StageBanner, failure: probe.FailSMTPRejected, code: 421},
			text: "Client host rejected: Try again later"},
		{kind: postfixlab.NoSharedCipher, row: row{stage: probe.StageHandshake, failure: probe.FailTLSNoSharedCipher,
			hint: "alert handshake_failure (40)"}},
		{kind: postfixlab.SlowGreeting, row: row{stage: probe.StageBanner, failure: probe.FailBannerTimeout,
			tweak: func(c *probe.Config) { c.Timeouts.Banner = 300 * time.Millisecond }}},
	}
	listeners := []postfixlab.Listener{{Kind: postfixlab.OK}}
	v6 := postfixlab.IPv6Loopback()
	if v6 {
		listeners = append(listeners, postfixlab.Listener{Kind: postfixlab.OK, IPv6: true})
	}
	for _, tc := range rows {
		listeners = append(listeners, postfixlab.Listener{Kind: tc.kind})
	}
	lab := postfixlab.Start(t, postfixlab.Options{Listeners: listeners, CA: ca, Hostname: testHost, SlowGreeting: 2 * time.Second})

	for _, ln := range lab.Listeners() {
		if ln.Kind != postfixlab.OK {
			continue
		}
		name := "ok"
		if ln.IPv6 {
			name = "ok over IPv6"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := runOne(t, pinned(t, ca, ln.Addr))
			if !r.OK || r.Failure != probe.FailNone || r.TLS == nil || !r.TLS.Verified || r.TLS.Version != "TLS 1.3" {
				t.Fatalf("want a verified TLS 1.3 probe: %+v\n%s", r, strings.Join(r.Transcript, "\n"))
			}
			if !containsSub(r.Transcript, "ESMTP Postfix (gmailtls lab)") || !contains(r.Transcript, probe.FromServer+"221 2.0.0 Bye") {
				t.Errorf("transcript is not Postfix's:\n%s", strings.Join(r.Transcript, "\n"))
			}
			if wantIP := map[bool]string{false: "127.0.0.1", true: "::1"}[ln.IPv6]; r.IP != wantIP || r.SourceIP != wantIP {
				t.Errorf("ip %s from %s, want %s", r.IP, r.SourceIP, wantIP)
			}
			checkNoMail(t, r)
		})
	}
	if !v6 {
		t.Log("no ::1 on this machine: the IPv6 row did not run")
	}
	t.Run("post_tls without the delayed-ACK stall", func(t *testing.T) {
		t.Parallel()
		// Without TCP_QUICKACK (quickack_linux.go), Postfix's EHLO answer
		// over TLS waited about 42 ms for the ACK of its NewSessionTicket:
		// every probe's post_tls was over 40 ms (the kernel's minimum
		// delayed-ACK time). With it, a few ms even under -race.
		if runtime.GOOS != "linux" {
			t.Skip("TCP_QUICKACK is Linux's; elsewhere the stall remains")
		}
		cfg := pinned(t, ca, lab.Addr(postfixlab.OK))
		var post []float64
		for range 7 {
			r := runOne(t, cfg)
			if !r.OK {
				t.Fatalf("probe failed: %s", r.Error)
			}
			post = append(post, r.Timings.PostTLS)
		}
		if m := medianOf(post); m >= 30 {
			t.Errorf("median post_tls %.1f ms over %v, want well under the 40 ms delayed-ACK timeout", m, post)
		}
	})
	for _, tc := range rows {
		t.Run(string(tc.kind), func(t *testing.T) {
			t.Parallel()
			cfg := pinned(t, ca, lab.Addr(tc.kind))
			if tc.tweak != nil {
				tc.tweak(&cfg)
			}
			r := runOne(t, cfg)
			checkRow(t, tc.row, r)
			if !strings.Contains(r.SMTPText, tc.text) {
				t.Errorf("smtp_text %q does not contain %q", r.SMTPText, tc.text)
			}
		})
	}
}
