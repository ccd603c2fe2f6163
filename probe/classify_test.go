package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

func opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, err)}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		stage Stage
		err   error
		want  Failure
	}{
		{StageDNS, &net.DNSError{Err: "no such host", IsNotFound: true}, FailDNSError},
		{StageConnect, opErr("dial", syscall.ECONNREFUSED), FailConnectRefused},
		{StageConnect, opErr("dial", syscall.EPERM), FailConnectRefused},
		{StageConnect, opErr("dial", syscall.ENETUNREACH), FailConnectUnreachable},
		{StageConnect, opErr("dial", syscall.EHOSTUNREACH), FailConnectUnreachable},
		{StageConnect, fmt.Errorf("connect: %w", context.DeadlineExceeded), FailConnectTimeout},
		{StageConnect, &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}, FailConnectTimeout},
		{StageBanner, os.ErrDeadlineExceeded, FailBannerTimeout},
		{StageBanner, io.EOF, FailSMTPProtocol},
		{StageBanner, fmt.Errorf("%w: too long", ErrProtocol), FailSMTPProtocol},
		{StageEHLO, opErr("read", syscall.ECONNRESET), FailSMTPProtocol},
		{StageHandshake, opErr("read", syscall.ECONNRESET), FailTLSReset},
		{StageHandshake, opErr("write", syscall.EPIPE), FailTLSReset},
		{StageHandshake, io.EOF, FailTLSReset},
		{StageHandshake, fmt.Errorf("x: %w", os.ErrDeadlineExceeded), FailTLSTimeout},
		{StageHandshake, fmt.Errorf("%w", tls.AlertError(70)), FailTLSProtocolVersion},
		{StageHandshake, fmt.Errorf("%w", tls.AlertError(40)), FailTLSNoSharedCipher},
		{StageHandshake, fmt.Errorf("%w", tls.AlertError(71)), FailTLSNoSharedCipher},
		{StageHandshake, fmt.Errorf("%w", tls.AlertError(80)), FailTLSAlert},
		{StageHandshake, &alertError{err: errors.New("tls: server selected unsupported protocol version 301"), alert: 70}, FailTLSProtocolVersion},
		{StageHandshake, tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, FailSMTPProtocol},
		{StageHandshake, errors.New("something new"), FailTLSAlert},
		{StageVerify, &verifyError{err: x509.CertificateInvalidError{Reason: x509.Expired}}, FailCertExpired},
		{StageVerify, &verifyError{err: x509.CertificateInvalidError{Reason: x509.NotAuthorizedToSign}}, FailCertUntrusted},
		{StageVerify, &verifyError{err: x509.HostnameError{Host: "mx.google.com"}}, FailCertHostname},
		{StageVerify, &verifyError{err: x509.UnknownAuthorityError{}}, FailCertUntrusted},
		{StageHandshake, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, FailCertUntrusted},
		{StagePostTLS, io.EOF, FailPostTLS},
		{StagePostTLS, fmt.Errorf("%w: x", ErrProtocol), FailSMTPProtocol},
	}
	for _, tc := range tests {
		if got := Classify(tc.stage, tc.err); got != tc.want {
			t.Errorf("Classify(%s, %v) = %q, want %q", tc.stage, tc.err, got, tc.want)
		}
	}
	if got := Classify(StageHandshake, nil); got != FailNone {
		t.Errorf("Classify(nil) = %q", got)
	}
}

// A real remote alert from crypto/tls is classified from its type, not
// its text.
func TestClassifyRealRemoteAlert(t *testing.T) {
	c, s := net.Pipe()
	defer c.Close()
	go func() {
		defer s.Close()
		srv := tls.Server(s, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10})
		_ = srv.Handshake()
	}()
	err := tls.Client(c, &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}).Handshake()
	if a, ok := tlsAlert(err); !ok || a != alertProtocolVersion {
		t.Fatalf("tlsAlert(%v) = %d, %v", err, a, ok)
	}
	if got := Classify(StageHandshake, err); got != FailTLSProtocolVersion {
		t.Errorf("Classify = %q", got)
	}
}

func TestHintEveryClass(t *testing.T) {
	seen := map[string]Failure{}
	for _, f := range Failures {
		h := Hint(f)
		if h == "" {
			t.Errorf("no hint for %q", f)
		}
		if other, dup := seen[h]; dup {
			t.Errorf("%q and %q share a hint", f, other)
		}
		seen[h] = f
	}
	for f, sub := range map[Failure]string{
		FailConnectTimeout: "outbound port 25 looks blocked",
		FailCertExpired:    "check this host's clock and CA bundle",
		FailStartTLSMasked: "disable SMTP inspection on the port-25 path",
	} {
		if !strings.Contains(Hint(f), sub) {
			t.Errorf("Hint(%q) = %q, want it to contain %q", f, Hint(f), sub)
		}
	}
	if Hint(FailNone) != "" {
		t.Errorf("FailNone has a hint")
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in   string
		want Target
		err  string
	}{
		{"gmail-smtp-in.l.google.com", Target{"gmail-smtp-in.l.google.com", 25}, ""},
		{"Gmail-SMTP-in.l.google.com.", Target{"gmail-smtp-in.l.google.com", 25}, ""},
		{"127.0.0.1:2525", Target{"127.0.0.1", 2525}, ""},
		{"mx.test.example:587", Target{"mx.test.example", 587}, ""},
		{"[::1]:2525", Target{"::1", 2525}, ""},
		{"[2001:db8::1]", Target{"2001:db8::1", 25}, ""},
		{"2001:db8::1", Target{"2001:db8::1", 25}, ""},
		{"", Target{}, "empty MX target"},
		{"host:0", Target{}, "port \"0\" is not a number from 1 to 65535"},
		{"host:smtp", Target{}, "port \"smtp\" is not a number"},
		{"host:70000", Target{}, "port \"70000\""},
		{"[127.0.0.1]:25", Target{}, "is not an IPv6 address"},
		{"[::1", Target{}, "want [IPv6]:port"},
		{"2001:db8::zz", Target{}, "not an IPv6 address"},
		{"bad host:25", Target{}, "neither an IP address nor a host name"},
		{"a..b", Target{}, "neither an IP address nor a host name"},
	}
	for _, tc := range tests {
		got, err := ParseTarget(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrConfig) {
				t.Errorf("ParseTarget(%q) error = %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if back, err := ParseTarget(got.String()); err != nil || back != got {
			t.Errorf("round trip of %+v: %+v, %v", got, back, err)
		}
	}
	_, err := ParseTargets([]string{"a:1", "b:x", "c:0"})
	if err == nil || strings.Count(err.Error(), "MX target") != 2 {
		t.Errorf("ParseTargets should report both bad entries: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	cfg := Config{Family: "5", HelloName: "bad name\r\nMAIL FROM:<x>", ServerName: "a b", Domain: "not a domain"}.withDefaults()
	err := cfg.validate()
	for _, sub := range []string{"family \"5\"", "EHLO name", "servername", "domain"} {
		if err == nil || !strings.Contains(err.Error(), sub) {
			t.Errorf("validate() = %v, want a problem about %s", err, sub)
		}
	}
	if _, err := Run(context.Background(), Config{Family: "x"}); !errors.Is(err, ErrConfig) {
		t.Errorf("Run with a bad family: %v", err)
	}
}

func TestRecordScanner(t *testing.T) {
	var s recordScanner
	// A 300-byte handshake record fed in pieces, then a warning alert,
	// then a fatal protocol_version alert split across writes.
	rec := append([]byte{22, 3, 1, 1, 44}, make([]byte, 300)...)
	s.feed(rec[:3])
	s.feed(rec[3:100])
	s.feed(rec[100:])
	s.feed([]byte{21, 3, 3, 0, 2, 1, 0})
	s.feed([]byte{21, 3, 3, 0})
	s.feed([]byte{2, 2})
	s.feed([]byte{70})
	if s.firstHandshake != 305 {
		t.Errorf("firstHandshake = %d, want 305", s.firstHandshake)
	}
	if !s.alertSeen || s.alert != 70 {
		t.Errorf("alert = %d (seen %v), want 70", s.alert, s.alertSeen)
	}
	// An encrypted alert (longer than two bytes) is not read as plain.
	var e recordScanner
	e.feed([]byte{21, 3, 3, 0, 3, 2, 40, 0})
	if e.alertSeen {
		t.Errorf("an encrypted alert was taken for a plain one")
	}
}
