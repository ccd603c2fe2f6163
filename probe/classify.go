package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"strconv"
	"syscall"
)

// TLS alert descriptions the classification looks at (RFC 8446, 6.2).
const (
	alertHandshakeFailure     tls.AlertError = 40
	alertProtocolVersion      tls.AlertError = 70
	alertInsufficientSecurity tls.AlertError = 71
)

// verifyError carries a certificate verification failure out of the TLS
// handshake, so that it is told apart from a failed handshake.
type verifyError struct{ err error }

func (e *verifyError) Error() string { return "certificate verification failed: " + e.err.Error() }
func (e *verifyError) Unwrap() error { return e.err }

// alertError attaches a TLS alert seen on the wire to a handshake error.
type alertError struct {
	err    error
	alert  tls.AlertError
	remote bool
}

func (e *alertError) Error() string {
	if e.remote {
		return e.err.Error()
	}
	return e.err.Error() + " (the probe sent alert " + alertName(e.alert) + ")"
}

func (e *alertError) Unwrap() []error { return []error{e.err, e.alert} }

// alertName is the RFC name of a TLS alert, e.g. "protocol_version".
func alertName(a tls.AlertError) string {
	switch a {
	case 0:
		return "close_notify"
	case 10:
		return "unexpected_message"
	case 20:
		return "bad_record_mac"
	case 22:
		return "record_overflow"
	case alertHandshakeFailure:
		return "handshake_failure"
	case 42:
		return "bad_certificate"
	case 43:
		return "unsupported_certificate"
	case 44:
		return "certificate_revoked"
	case 45:
		return "certificate_expired"
	case 46:
		return "certificate_unknown"
	case 47:
		return "illegal_parameter"
	case 48:
		return "unknown_ca"
	case 50:
		return "decode_error"
	case 51:
		return "decrypt_error"
	case alertProtocolVersion:
		return "protocol_version"
	case alertInsufficientSecurity:
		return "insufficient_security"
	case 80:
		return "internal_error"
	case 86:
		return "inappropriate_fallback"
	case 90:
		return "user_canceled"
	case 109:
		return "missing_extension"
	case 110:
		return "unsupported_extension"
	case 112:
		return "unrecognized_name"
	case 116:
		return "certificate_required"
	case 120:
		return "no_application_protocol"
	}
	return "alert(" + strconv.Itoa(int(a)) + ")"
}

// tlsAlert finds the TLS alert behind err: a tls.AlertError anywhere in its
// chain, or the alert crypto/tls wraps in a *net.OpError when the peer sent
// one (its type is unexported, a uint8; it is recognised by kind and
// package, never by its text).
func tlsAlert(err error) (tls.AlertError, bool) {
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return ae, true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		t := reflect.TypeOf(op.Err)
		if t.PkgPath() == "crypto/tls" && t.Kind() == reflect.Uint8 {
			return tls.AlertError(reflect.ValueOf(op.Err).Uint()), true
		}
	}
	return 0, false
}

// isTimeout reports whether err is a deadline or timeout.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isConnLost reports whether err means the peer (or something on the path)
// closed or reset the connection.
func isConnLost(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// certFailure classifies a certificate verification error; ok is false
// when err holds none.
func certFailure(err error) (Failure, bool) {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) {
		if inv.Reason == x509.Expired {
			return FailCertExpired, true
		}
		return FailCertUntrusted, true
	}
	var host x509.HostnameError
	if errors.As(err, &host) {
		return FailCertHostname, true
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return FailCertUntrusted, true
	}
	var sr x509.SystemRootsError
	if errors.As(err, &sr) {
		return FailCertUntrusted, true
	}
	var ve *verifyError
	if errors.As(err, &ve) {
		return FailCertUntrusted, true
	}
	return FailNone, false
}

// Classify names the failure class of err, which happened at stage. It
// looks only at error types (x509 errors, TLS alerts, net and syscall
// errors, deadlines, EOF, ErrProtocol), never at error text. A nil error
// is FailNone.
func Classify(stage Stage, err error) Failure {
	if err == nil {
		return FailNone
	}
	if f, ok := certFailure(err); ok {
		return f
	}
	switch stage {
	case StageDNS:
		return FailDNSError
	case StageConnect:
		switch {
		case isTimeout(err):
			return FailConnectTimeout
		case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPERM),
			errors.Is(err, syscall.EACCES), errors.Is(err, syscall.ECONNRESET):
			return FailConnectRefused
		default:
			return FailConnectUnreachable
		}
	case StageBanner:
		if isTimeout(err) {
			return FailBannerTimeout
		}
		return FailSMTPProtocol
	case StageEHLO, StageStartTLS:
		return FailSMTPProtocol
	case StageHandshake, StageVerify:
		return classifyHandshake(err)
	case StagePostTLS:
		if errors.Is(err, ErrProtocol) {
			return FailSMTPProtocol
		}
		return FailPostTLS
	case StageAgent:
		return FailAgentError
	}
	return FailSMTPProtocol
}

func classifyHandshake(err error) Failure {
	if isTimeout(err) {
		return FailTLSTimeout
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) || errors.Is(err, ErrProtocol) {
		// The server answered the ClientHello with something that is not
		// TLS, typically a plain-text SMTP line from a middlebox.
		return FailSMTPProtocol
	}
	if a, ok := tlsAlert(err); ok {
		switch a {
		case alertProtocolVersion:
			return FailTLSProtocolVersion
		case alertHandshakeFailure, alertInsufficientSecurity:
			return FailTLSNoSharedCipher
		}
		return FailTLSAlert
	}
	if isConnLost(err) {
		return FailTLSReset
	}
	return FailTLSAlert
}

// Hint is the first thing to check for a failure class, worded for a mail
// operator. It is the same text the Slack bot shows. FailNone has no hint.
func Hint(f Failure) string {
	switch f {
	case FailDNSError:
		return "MX or address lookup failed: check this host's resolver and that DNS egress works"
	case FailConnectTimeout:
		return "no answer to the TCP SYN: outbound port 25 looks blocked (egress firewall or provider block)"
	case FailConnectRefused:
		return "the connection was refused: check the firewall, NAT and any SMTP proxy on the path"
	case FailConnectUnreachable:
		return "no route to the MX address: check routing, and the IPv6 path for an IPv6 address"
	case FailBannerTimeout:
		return "connected, but no greeting arrived: a middlebox or a tarpit is holding the connection"
	case FailSMTPRejected:
		return "the server refused the session with an SMTP reply, not a TLS problem: check this relay's IP reputation, sending rate and policy (the reply text says which)"
	case FailStartTLSNotOffered:
		return "the EHLO reply lacks STARTTLS: SMTP inspection on the path may be stripping it"
	case FailStartTLSMasked:
		return "SMTP inspection (e.g. Cisco ASA/PIX ESMTP inspection) is masking STARTTLS: disable SMTP inspection on the port-25 path"
	case FailStartTLSRejected:
		return "the server refused STARTTLS: a remote-side problem; retry later"
	case FailTLSReset:
		return `the connection was lost during the TLS handshake (the mail log's "SSL_connect error ... lost connection"): check the path, middleboxes and the TLS stack`
	case FailTLSTimeout:
		return "the TLS handshake never completed: a middlebox is holding or dropping TLS packets"
	case FailTLSProtocolVersion:
		return "no common TLS protocol version: an outdated TLS library on the far side or a TLS-terminating middlebox (never lower the minimum version)"
	case FailTLSNoSharedCipher:
		return "no common cipher suite: check the TLS library version and cipher configuration"
	case FailTLSAlert:
		return "the TLS handshake was aborted with an alert: the alert text in the error says why"
	case FailCertUntrusted:
		return "the certificate chain does not lead to a trusted root: check the CA bundle; an unexpected issuer means TLS interception"
	case FailCertExpired:
		return "the certificate is outside its validity period, or this host's clock is wrong: check this host's clock and CA bundle"
	case FailCertHostname:
		return "the certificate does not name the MX host: TLS interception, or a wrong MX target"
	case FailPostTLS:
		return "TLS worked, but EHLO over TLS failed: a remote-side problem"
	case FailSMTPProtocol:
		return "the server sent a malformed, oversized or endless reply, or broke off the session: a middlebox or a broken peer"
	case FailAgentUnreachable:
		return "the relay's agent could not be reached: check that gmailtls agent runs there and the bot can reach its port"
	case FailAgentError:
		return "the relay's agent answered without a usable result: check the agent's log and version"
	}
	return ""
}
