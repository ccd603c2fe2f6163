package mta

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/gmailtls/gmailtls/probe"
)

// Bounds on what a parser keeps of a tool's output.
const (
	maxTranscriptLines = 200
	maxLineBytes       = 512
)

// Outcome is what a parser makes of one run of a tool toward one MX
// address: the probe-result fields that the tool's output can tell. The
// caller adds relay, MX, IP, port and timings.
type Outcome struct {
	OK         bool
	Stage      probe.Stage
	Failure    probe.Failure
	Error      string
	SMTPCode   int
	SMTPText   string
	TLS        *probe.TLSInfo
	Transcript []string
	// ToolError is set when the tool itself could not run (a fatal error of
	// its own, such as a missing main.cf): the outcome says nothing about
	// the path to the MX host and is not a result.
	ToolError string
}

// Apply copies the outcome into r, keeping r's identity fields.
func (o Outcome) Apply(r *probe.Result) {
	r.OK = o.OK
	r.Stage = o.Stage
	r.Failure = o.Failure
	r.Error = o.Error
	r.SMTPCode = o.SMTPCode
	r.SMTPText = o.SMTPText
	r.TLS = o.TLS
	r.Transcript = o.Transcript
	if r.Transcript == nil {
		r.Transcript = []string{}
	}
	if r.Hints == nil {
		r.Hints = []string{}
	}
}

func (o *Outcome) fail(stage probe.Stage, f probe.Failure, msg string) {
	o.OK = false
	o.Stage = stage
	o.Failure = f
	o.Error = msg
}

// note appends a transcript line, bounded in count and length.
func (o *Outcome) note(prefix, line string) {
	if len(o.Transcript) >= maxTranscriptLines {
		return
	}
	o.Transcript = append(o.Transcript, prefix+clip(line, maxLineBytes))
}

// clip cuts s to at most n bytes without splitting a UTF-8 sequence and
// replaces control characters.
func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' && r != '\t' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// tlsVersionName turns OpenSSL's "TLSv1.3" into the probe's "TLS 1.3".
func tlsVersionName(v string) string {
	switch v {
	case "TLSv1":
		return "TLS 1.0"
	case "TLSv1.1", "TLSv1.2", "TLSv1.3":
		return "TLS " + strings.TrimPrefix(v, "TLSv")
	case "SSLv3":
		return "SSL 3.0"
	}
	return v
}

// smtpReply splits "454 4.7.0 text" into its code and text.
func smtpReply(s string) (int, string) {
	s = strings.TrimSpace(s)
	if len(s) >= 3 {
		if c, err := strconv.Atoi(s[:3]); err == nil && c >= 100 && c <= 599 {
			return c, strings.TrimSpace(s[3:])
		}
	}
	return 0, s
}

// tlsLibraryFailure sorts an OpenSSL error string into a handshake
// failure class.
func tlsLibraryFailure(msg string) probe.Failure {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "connection reset"), strings.Contains(m, "errno=104"),
		strings.Contains(m, "errno=32"), strings.Contains(m, "broken pipe"),
		strings.Contains(m, "unexpected eof"), strings.Contains(m, "lost connection"):
		return probe.FailTLSReset
	case strings.Contains(m, "timed out"), strings.Contains(m, "errno=110"):
		return probe.FailTLSTimeout
	case strings.Contains(m, "protocol version"), strings.Contains(m, "unsupported protocol"),
		strings.Contains(m, "no protocols available"), strings.Contains(m, "legacy sigalg"),
		strings.Contains(m, "wrong ssl version"), strings.Contains(m, "version too low"):
		return probe.FailTLSProtocolVersion
	case strings.Contains(m, "handshake failure"), strings.Contains(m, "no shared cipher"),
		strings.Contains(m, "no ciphers available"), strings.Contains(m, "alert number 40"):
		return probe.FailTLSNoSharedCipher
	case strings.Contains(m, "certificate has expired"), strings.Contains(m, "not yet valid"):
		return probe.FailCertExpired
	case strings.Contains(m, "hostname mismatch"), strings.Contains(m, "name mismatch"):
		return probe.FailCertHostname
	case strings.Contains(m, "certificate verify failed"), strings.Contains(m, "self-signed"),
		strings.Contains(m, "self signed"), strings.Contains(m, "unable to get local issuer"),
		strings.Contains(m, "untrusted"), strings.Contains(m, "unknown ca"):
		return probe.FailCertUntrusted
	}
	return probe.FailTLSAlert
}

// stageOf is the stage a failure class belongs to when a tool only says
// how it failed.
func stageOf(f probe.Failure) probe.Stage {
	switch f {
	case probe.FailConnectRefused, probe.FailConnectTimeout, probe.FailConnectUnreachable:
		return probe.StageConnect
	case probe.FailCertExpired, probe.FailCertHostname, probe.FailCertUntrusted:
		return probe.StageVerify
	case probe.FailBannerTimeout:
		return probe.StageBanner
	}
	return probe.StageHandshake
}

// connectFailure sorts a connect error text.
func connectFailure(msg string) (probe.Failure, bool) {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "refused"), strings.Contains(m, "errno=111"):
		return probe.FailConnectRefused, true
	case strings.Contains(m, "timed out"), strings.Contains(m, "errno=110"):
		return probe.FailConnectTimeout, true
	case strings.Contains(m, "no route"), strings.Contains(m, "unreachable"),
		strings.Contains(m, "errno=113"), strings.Contains(m, "errno=101"):
		return probe.FailConnectUnreachable, true
	}
	return "", false
}

// hostPort formats an address for openssl -connect.
func hostPort(ip string, port int) string {
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() && !a.Is4In6() {
		return "[" + a.String() + "]:" + strconv.Itoa(port)
	}
	return ip + ":" + strconv.Itoa(port)
}
