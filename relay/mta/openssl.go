package mta

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/probe"
)

// OpenSSLArgs returns the arguments of `openssl s_client` toward ip:port:
// STARTTLS for SMTP, SNI and hostname verification against servername,
// verification failures fatal, brief output. caFile, when set, is an extra
// root file; without it the system trust store is used. helo, when set, is
// the EHLO name (openssl's -name).
func OpenSSLArgs(ip string, port int, servername, helo, caFile string) []string {
	args := []string{"s_client", "-starttls", "smtp", "-connect", hostPort(ip, port)}
	if helo != "" {
		args = append(args, "-name", helo)
	}
	if servername != "" {
		args = append(args, "-servername", servername, "-verify_hostname", servername)
	}
	if caFile != "" {
		args = append(args, "-CAfile", caFile)
	}
	return append(args, "-verify_return_error", "-brief")
}

// openSSLVerifyFailure maps an X509_V_ERR number to a failure class.
func openSSLVerifyFailure(num int) probe.Failure {
	switch num {
	case 9, 10: // not yet valid, expired
		return probe.FailCertExpired
	case 62: // hostname mismatch
		return probe.FailCertHostname
	}
	return probe.FailCertUntrusted
}

// ParseOpenSSL sorts the output of `openssl s_client -starttls smtp -brief`
// (see OpenSSLArgs) into an outcome. timedOut says the tool was stopped by
// its deadline. The exit status is not needed: the output says everything
// that can be known, and -brief does not show the SMTP dialogue, so a
// failure before STARTTLS is only known coarsely.
func ParseOpenSSL(out []byte, timedOut bool) Outcome {
	var (
		o                 Outcome
		established       bool
		noStartTLS        bool
		verifiedOK        bool
		verifyNum         = -1
		verifyText        string
		verifyErrBrief    string
		libReason         string
		connectErr        string
		ioErr             string
		tlsInfo           probe.TLSInfo
		certs             []probe.Certificate
		haveCertFromDepth = map[string]bool{}
	)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		o.note(probe.Note, line)
		lower := strings.ToLower(line)
		switch {
		case line == "CONNECTION ESTABLISHED":
			established = true
		case strings.HasPrefix(lower, "didn't find starttls"):
			noStartTLS = true
		case strings.HasPrefix(line, "Protocol version: "):
			tlsInfo.Version = tlsVersionName(strings.TrimSpace(strings.TrimPrefix(line, "Protocol version: ")))
		case strings.HasPrefix(line, "Ciphersuite: "):
			tlsInfo.Cipher = strings.TrimSpace(strings.TrimPrefix(line, "Ciphersuite: "))
		case strings.HasPrefix(line, "Server Temp Key: "):
			v := strings.TrimPrefix(line, "Server Temp Key: ")
			if i := strings.IndexByte(v, ','); i >= 0 {
				v = v[:i]
			}
			tlsInfo.Group = strings.TrimSpace(v)
		case strings.HasPrefix(line, "Negotiated TLS1.3 group: "):
			tlsInfo.Group = strings.TrimSpace(strings.TrimPrefix(line, "Negotiated TLS1.3 group: "))
		case strings.HasPrefix(line, "Peer certificate: "):
			subj := opensslDN(strings.TrimPrefix(line, "Peer certificate: "))
			if !haveCertFromDepth[subj] {
				certs = append([]probe.Certificate{{Subject: subj}}, certs...)
				haveCertFromDepth[subj] = true
			}
		case line == "Verification: OK":
			verifiedOK = true
		case strings.HasPrefix(line, "Verification error: "):
			verifyErrBrief = strings.TrimPrefix(line, "Verification error: ")
		case strings.HasPrefix(line, "depth="):
			if _, subj, ok := strings.Cut(line, " "); ok {
				s := opensslDN(subj)
				if !haveCertFromDepth[s] {
					certs = append(certs, probe.Certificate{Subject: s})
					haveCertFromDepth[s] = true
				}
			}
		case strings.HasPrefix(line, "verify error:num="):
			rest := strings.TrimPrefix(line, "verify error:num=")
			n, text, _ := strings.Cut(rest, ":")
			if v, err := strconv.Atoi(n); err == nil && verifyNum < 0 {
				verifyNum, verifyText = v, text
			}
		case strings.HasPrefix(line, "notAfter="):
			if t, err := time.Parse("Jan _2 15:04:05 2006 MST", strings.TrimPrefix(line, "notAfter=")); err == nil && len(certs) > 0 {
				certs[len(certs)-1].NotAfter = t
			}
		case strings.HasPrefix(line, "connect:errno="):
			connectErr = line
		case strings.Contains(line, ":error:"):
			if r := opensslReason(line); r != "" && libReason == "" {
				libReason = r
				if strings.Contains(line, "BIO_connect") || strings.Contains(line, "connect()") {
					connectErr = r
				}
			}
		case strings.HasPrefix(line, "write:errno=") || strings.HasPrefix(line, "read:errno="):
			ioErr = line
		}
	}
	if len(certs) > 0 {
		tlsInfo.PeerCertificates = certs
	}
	withTLS := func() *probe.TLSInfo {
		t := tlsInfo
		if t.PeerCertificates == nil {
			t.PeerCertificates = []probe.Certificate{}
		}
		return &t
	}
	switch {
	case connectErr != "":
		f, ok := connectFailure(connectErr)
		if !ok {
			f = probe.FailConnectUnreachable
		}
		o.fail(probe.StageConnect, f, "openssl could not connect: "+connectErr)
	case verifyNum >= 0:
		o.fail(probe.StageVerify, openSSLVerifyFailure(verifyNum),
			fmt.Sprintf("openssl certificate verification failed: %s (X509 error %d)", verifyText, verifyNum))
		o.TLS = withTLS()
	case established && noStartTLS:
		o.fail(probe.StageEHLO, probe.FailStartTLSNotOffered,
			"the EHLO reply did not offer STARTTLS (openssl tried anyway and the server accepted it; an MTA would not)")
		o.TLS = withTLS()
	case established && verifyErrBrief != "":
		o.fail(probe.StageVerify, tlsLibraryFailure(verifyErrBrief), "openssl certificate verification failed: "+verifyErrBrief)
		o.TLS = withTLS()
	case established:
		o.OK = true
		tlsInfo.Verified = verifiedOK
		o.TLS = withTLS()
		if !verifiedOK {
			o.fail(probe.StageVerify, probe.FailCertUntrusted, "openssl connected but did not report a verified certificate")
		}
	case libReason != "" && strings.Contains(strings.ToLower(libReason), "wrong version number") && noStartTLS:
		o.fail(probe.StageEHLO, probe.FailStartTLSNotOffered,
			"the EHLO reply did not offer STARTTLS; openssl tried anyway and the server answered in plain text ("+libReason+")")
	case libReason != "" && strings.Contains(strings.ToLower(libReason), "wrong version number"):
		o.fail(probe.StageStartTLS, probe.FailStartTLSRejected,
			"the server did not start TLS after STARTTLS: it went on in plain text ("+libReason+")")
	case libReason != "":
		f := tlsLibraryFailure(libReason)
		o.fail(stageOf(f), f, "openssl handshake failed: "+libReason)
	case ioErr != "" && noStartTLS:
		o.fail(probe.StageEHLO, probe.FailStartTLSNotOffered,
			"the server closed the connection and its EHLO reply did not offer STARTTLS ("+ioErr+"); the greeting or EHLO may have been refused")
	case ioErr != "":
		o.fail(probe.StageHandshake, probe.FailTLSReset, "connection lost during the TLS handshake ("+ioErr+")")
	case timedOut:
		o.fail(probe.StageHandshake, probe.FailTLSTimeout, "openssl did not finish in time (no greeting, or the STARTTLS handshake hung)")
	default:
		last := "no output"
		if n := len(o.Transcript); n > 0 {
			last = strings.TrimPrefix(o.Transcript[n-1], probe.Note)
		}
		o.fail(probe.StageHandshake, probe.FailTLSAlert, "unrecognised openssl output: "+last)
	}
	if o.Transcript == nil {
		o.Transcript = []string{}
	}
	return o
}

// opensslDN turns "O = gmailtls tests, CN = Corp CA" into
// "O=gmailtls tests, CN=Corp CA".
func opensslDN(s string) string {
	s = strings.TrimSpace(s)
	return clip(strings.ReplaceAll(s, " = ", "="), 256)
}

// opensslReason picks the reason out of an OpenSSL error line such as
// "4037...:error:0A000086:SSL routines:func:certificate verify failed:file.c:1889:".
func opensslReason(line string) string {
	_, rest, ok := strings.Cut(line, ":error:")
	if !ok {
		return ""
	}
	parts := strings.Split(rest, ":")
	// code, library, function, reason, file, line, [data]
	if len(parts) < 4 {
		return strings.TrimSpace(rest)
	}
	reason := parts[3]
	if len(parts) > 6 && strings.TrimSpace(parts[6]) != "" {
		reason += ": " + strings.TrimSpace(strings.Join(parts[6:], ":"))
	}
	return clip(strings.TrimSpace(reason), 200)
}
