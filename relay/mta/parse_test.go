package mta

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/probe"
)

// The fixtures were captured from the real tools run against the scripted
// STARTTLS servers of internal/smtptest (relay/testdata/capture.sh).
func fixture(t *testing.T, tool, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", tool, name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type want struct {
	ok       bool
	stage    probe.Stage
	failure  probe.Failure
	code     int
	version  string
	verified bool
}

func check(t *testing.T, o Outcome, w want) {
	t.Helper()
	if o.OK != w.ok || o.Stage != w.stage || o.Failure != w.failure {
		t.Errorf("got ok=%v stage=%q failure=%q (%s), want ok=%v stage=%q failure=%q",
			o.OK, o.Stage, o.Failure, o.Error, w.ok, w.stage, w.failure)
	}
	if w.code != 0 && o.SMTPCode != w.code {
		t.Errorf("smtp code %d, want %d", o.SMTPCode, w.code)
	}
	if w.version != "" {
		if o.TLS == nil || o.TLS.Version != w.version {
			t.Errorf("tls %+v, want version %s", o.TLS, w.version)
		}
	}
	if w.verified && (o.TLS == nil || !o.TLS.Verified) {
		t.Errorf("tls %+v, want verified", o.TLS)
	}
	if !o.OK && o.Error == "" {
		t.Error("failure without an error text")
	}
	if o.Transcript == nil {
		t.Error("nil transcript")
	}
}

func TestParseOpenSSLFixtures(t *testing.T) {
	tests := []struct {
		name     string
		timedOut bool
		want     want
	}{
		{"gmail", false, want{ok: true, version: "TLS 1.3", verified: true}},
		{"drop_large_hello", false, want{ok: true, version: "TLS 1.3", verified: true}},
		{"post_tls_421", false, want{ok: true, version: "TLS 1.3"}},
		{"expired_cert", false, want{stage: probe.StageVerify, failure: probe.FailCertExpired}},
		{"wrong_name_cert", false, want{stage: probe.StageVerify, failure: probe.FailCertHostname}},
		{"untrusted_ca", false, want{stage: probe.StageVerify, failure: probe.FailCertUntrusted}},
		{"self_signed_cert", false, want{stage: probe.StageVerify, failure: probe.FailCertUntrusted}},
		{"reset_after_ready", false, want{stage: probe.StageHandshake, failure: probe.FailTLSReset}},
		{"no_starttls", false, want{stage: probe.StageEHLO, failure: probe.FailStartTLSNotOffered}},
		{"masked", false, want{stage: probe.StageEHLO, failure: probe.FailStartTLSNotOffered}},
		{"starttls_454", false, want{stage: probe.StageStartTLS, failure: probe.FailStartTLSRejected}},
		{"starttls_502", false, want{stage: probe.StageStartTLS, failure: probe.FailStartTLSRejected}},
		{"tls10_only", false, want{stage: probe.StageHandshake, failure: probe.FailTLSProtocolVersion}},
		{"no_shared_cipher", false, want{stage: probe.StageHandshake, failure: probe.FailTLSNoSharedCipher}},
		{"greet_421", false, want{stage: probe.StageEHLO, failure: probe.FailStartTLSNotOffered}},
		{"close_after_banner", false, want{stage: probe.StageEHLO, failure: probe.FailStartTLSNotOffered}},
		{"ehlo_550", false, want{stage: probe.StageEHLO, failure: probe.FailStartTLSNotOffered}},
		{"hang_banner", true, want{stage: probe.StageHandshake, failure: probe.FailTLSTimeout}},
		{"hang_after_ready", true, want{stage: probe.StageHandshake, failure: probe.FailTLSTimeout}},
		{"connect_refused", false, want{stage: probe.StageConnect, failure: probe.FailConnectRefused}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ParseOpenSSL(fixture(t, "openssl", tt.name), tt.timedOut)
			check(t, o, tt.want)
		})
	}
}

func TestParseOpenSSLDetails(t *testing.T) {
	o := ParseOpenSSL(fixture(t, "openssl", "gmail"), false)
	if o.TLS.Cipher != "TLS_AES_128_GCM_SHA256" || o.TLS.Group != "X25519" {
		t.Errorf("tls %+v", o.TLS)
	}
	if len(o.TLS.PeerCertificates) != 1 || o.TLS.PeerCertificates[0].Subject != "CN=mx.test.example" {
		t.Errorf("certs %+v", o.TLS.PeerCertificates)
	}
	o = ParseOpenSSL(fixture(t, "openssl", "expired_cert"), false)
	if o.TLS == nil || len(o.TLS.PeerCertificates) == 0 || o.TLS.PeerCertificates[0].NotAfter.IsZero() {
		t.Errorf("expired cert details lost: %+v", o.TLS)
	}
	if !strings.Contains(o.Error, "certificate has expired") {
		t.Errorf("error %q", o.Error)
	}
	o = ParseOpenSSL(fixture(t, "openssl", "untrusted_ca"), false)
	if got := o.TLS.PeerCertificates[0].Subject; got != "O=gmailtls tests, CN=Corp TLS Inspection CA" {
		t.Errorf("subject %q", got)
	}
}

func TestParseOpenSSLSynthetic(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want probe.Failure
	}{
		{"read reset", "read:errno=104\n", probe.FailTLSReset},
		{"reset text", "4007:error:80000068:system library:BIO_read:Connection reset by peer:../x.c:1:\n", probe.FailTLSReset},
		{"protocol version alert", "40:error:0A00042E:SSL routines:ssl3_read_bytes:tlsv1 alert protocol version:../r.c:1:SSL alert number 70\n", probe.FailTLSProtocolVersion},
		{"unexpected eof", "40:error:0A000126:SSL routines::unexpected eof while reading:../r.c:1:\n", probe.FailTLSReset},
		{"other alert", "40:error:0A000438:SSL routines::tlsv1 alert internal error:../r.c:1:SSL alert number 80\n", probe.FailTLSAlert},
		{"timeout connect", "connect:errno=110\n", probe.FailConnectTimeout},
		{"unreachable", "connect:errno=113\n", probe.FailConnectUnreachable},
		{"not yet valid", "depth=0 CN = x\nverify error:num=9:certificate is not yet valid\n", probe.FailCertExpired},
		{"empty", "", probe.FailTLSAlert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ParseOpenSSL([]byte(tt.out), false)
			if o.OK || o.Failure != tt.want {
				t.Errorf("got %q (%s), want %q", o.Failure, o.Error, tt.want)
			}
		})
	}
}

func TestParsePosttlsFingerFixtures(t *testing.T) {
	tests := []struct {
		name     string
		timedOut bool
		want     want
	}{
		{"gmail", false, want{ok: true, version: "TLS 1.3", verified: true}},
		{"gmail-c", false, want{ok: true, version: "TLS 1.3", verified: true}},
		{"drop_large_hello", false, want{ok: true, version: "TLS 1.3", verified: true}},
		{"expired_cert", false, want{stage: probe.StageVerify, failure: probe.FailCertExpired, version: "TLS 1.3"}},
		{"expired_cert-c", false, want{stage: probe.StageVerify, failure: probe.FailCertExpired}},
		{"wrong_name_cert", false, want{stage: probe.StageVerify, failure: probe.FailCertHostname}},
		{"wrong_name_cert-c", false, want{stage: probe.StageVerify, failure: probe.FailCertHostname}},
		{"untrusted_ca", false, want{stage: probe.StageVerify, failure: probe.FailCertUntrusted}},
		{"untrusted_ca-c", false, want{stage: probe.StageVerify, failure: probe.FailCertUntrusted}},
		{"self_signed_cert", false, want{stage: probe.StageVerify, failure: probe.FailCertUntrusted}},
		{"reset_after_ready", false, want{stage: probe.StageHandshake, failure: probe.FailTLSReset}},
		{"reset_after_ready-c", false, want{stage: probe.StageHandshake, failure: probe.FailTLSReset}},
		{"hang_after_ready", false, want{stage: probe.StageHandshake, failure: probe.FailTLSTimeout}},
		{"hang_banner", false, want{stage: probe.StageBanner, failure: probe.FailBannerTimeout}},
		{"no_starttls", false, want{stage: probe.StageEHLO, failure: probe.FailStartTLSNotOffered}},
		{"no_starttls-c", false, want{stage: probe.StageEHLO, failure: probe.FailStartTLSNotOffered}},
		{"masked", false, want{stage: probe.StageEHLO, failure: probe.FailStartTLSMasked}},
		{"starttls_454", false, want{stage: probe.StageStartTLS, failure: probe.FailStartTLSRejected, code: 454}},
		{"starttls_502-c", false, want{stage: probe.StageStartTLS, failure: probe.FailStartTLSRejected, code: 502}},
		{"tls10_only", false, want{stage: probe.StageHandshake, failure: probe.FailTLSProtocolVersion}},
		{"no_shared_cipher", false, want{stage: probe.StageHandshake, failure: probe.FailTLSNoSharedCipher}},
		{"greet_421", false, want{stage: probe.StageBanner, failure: probe.FailSMTPRejected, code: 421}},
		{"ehlo_550", false, want{stage: probe.StageEHLO, failure: probe.FailSMTPRejected, code: 550}},
		{"post_tls_421", false, want{stage: probe.StagePostTLS, failure: probe.FailPostTLS, code: 421}},
		{"garbage", false, want{stage: probe.StageBanner, failure: probe.FailSMTPProtocol}},
		{"close_after_banner", false, want{stage: probe.StageEHLO, failure: probe.FailSMTPProtocol}},
		{"connect_refused", false, want{stage: probe.StageConnect, failure: probe.FailConnectRefused}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ParsePosttlsFinger(fixture(t, "posttls-finger", tt.name), tt.timedOut)
			check(t, o, tt.want)
		})
	}
}

func TestParsePosttlsFingerDetails(t *testing.T) {
	o := ParsePosttlsFinger(fixture(t, "posttls-finger", "gmail"), false)
	if o.TLS.Cipher != "TLS_AES_128_GCM_SHA256" || o.TLS.Group != "X25519" {
		t.Errorf("tls %+v", o.TLS)
	}
	if c := o.TLS.PeerCertificates; len(c) != 1 || c[0].Subject != "CN=mx.test.example" || c[0].Issuer != "CN=gmailtls test CA" {
		t.Errorf("certs %+v", c)
	}
	if o.Transcript[1] != "S: 220 mx.google.com ESMTP ffa0c8e4b3d2-00002.1 - gsmtp" || o.Transcript[2] != "C: EHLO vm.localdomain" {
		t.Errorf("transcript %q", o.Transcript[:3])
	}
}

func TestParsePosttlsFingerTimedOut(t *testing.T) {
	tests := []struct {
		out  string
		want probe.Failure
	}{
		{"", probe.FailConnectTimeout},
		{"posttls-finger: Connected to x[127.0.0.1]:25\n", probe.FailBannerTimeout},
		{"posttls-finger: Connected to x[127.0.0.1]:25\nposttls-finger: < 220 hi\nposttls-finger: > EHLO a\nposttls-finger: < 250-x\nposttls-finger: < 250 STARTTLS\nposttls-finger: > STARTTLS\nposttls-finger: < 220 go\n", probe.FailTLSTimeout},
	}
	for _, tt := range tests {
		o := ParsePosttlsFinger([]byte(tt.out), true)
		if o.Failure != tt.want {
			t.Errorf("%q: got %q (%s), want %q", tt.out, o.Failure, o.Error, tt.want)
		}
	}
}

func TestArgs(t *testing.T) {
	got := strings.Join(OpenSSLArgs("::1", 2525, "mx.test.example", "relay.example", "/ca.pem"), " ")
	want := "s_client -starttls smtp -connect [::1]:2525 -name relay.example -servername mx.test.example -verify_hostname mx.test.example -CAfile /ca.pem -verify_return_error -brief"
	if got != want {
		t.Errorf("openssl args\n got %s\nwant %s", got, want)
	}
	got = strings.Join(PosttlsFingerArgs("::1", 25, "mx.test.example", "", "/etc/ssl/certs", 20), " ")
	want = "-l secure -t 20 -T 20 -P /etc/ssl/certs -s mx.test.example [ipv6:::1]:25 mx.test.example"
	if got != want {
		t.Errorf("posttls-finger args\n got %s\nwant %s", got, want)
	}
	got = strings.Join(PosttlsFingerArgs("127.0.0.1", 25, "", "/ca.pem", "", 0), " ")
	if got != "-l secure -F /ca.pem [127.0.0.1]:25" {
		t.Errorf("posttls-finger args %s", got)
	}
}

func TestParsePosttlsFingerToolError(t *testing.T) {
	o := ParsePosttlsFinger([]byte("posttls-finger: fatal: open /etc/postfix/main.cf: No such file or directory\n"), false)
	if o.ToolError == "" {
		t.Fatalf("a fatal error of the tool itself is not flagged: %+v", o)
	}
	o = ParsePosttlsFinger([]byte("posttls-finger: Connected to 127.0.0.1[127.0.0.1]:25\nposttls-finger: lost connection\n"), false)
	if o.ToolError != "" {
		t.Errorf("an ordinary failure flagged as a tool error: %q", o.ToolError)
	}
}
