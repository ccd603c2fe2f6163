package mta

import (
	"bufio"
	"bytes"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gmailtls/gmailtls/probe"
)

// PosttlsFingerArgs returns the arguments of `posttls-finger` toward one MX
// address: security level "secure" (chain and name verified), the system
// CApath and, when set, an extra CAfile, SNI and the name to match, and the
// connect and command timeouts in seconds. SMTP chat logging stays on (no
// -c) so that failures before STARTTLS (a masked or missing STARTTLS) can
// be told apart: with -c posttls-finger prints nothing for them. The
// destination is bracketed so that no MX or address lookup happens.
func PosttlsFingerArgs(ip string, port int, servername, caFile, caPath string, timeoutSec int) []string {
	args := []string{"-l", "secure"}
	if timeoutSec > 0 {
		t := strconv.Itoa(timeoutSec)
		args = append(args, "-t", t, "-T", t)
	}
	if caPath != "" {
		args = append(args, "-P", caPath)
	}
	if caFile != "" {
		args = append(args, "-F", caFile)
	}
	if servername != "" {
		args = append(args, "-s", servername)
	}
	dest := "[" + ip + "]:" + strconv.Itoa(port)
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() && !a.Is4In6() {
		dest = "[ipv6:" + a.String() + "]:" + strconv.Itoa(port)
	}
	args = append(args, dest)
	if servername != "" {
		args = append(args, servername)
	}
	return args
}

// ParsePosttlsFinger sorts the output of posttls-finger (see
// PosttlsFingerArgs; with or without -c) into an outcome. posttls-finger
// exits 0 even when the TLS session failed, so only its output counts.
// timedOut says the tool was stopped by its deadline.
func ParsePosttlsFinger(out []byte, timedOut bool) Outcome {
	var (
		o             Outcome
		connected     bool
		sawGreeting   bool
		sawEHLO       bool
		starttlsOK    bool
		starttlsSeen  bool
		offered       bool
		masked        bool
		quitBeforeTLS bool
		tlsUp         bool
		verifyReason  string
		trust         string // "Verified", "Trusted", "Untrusted", "Anonymous"
		tlsInfo       probe.TLSInfo
		certs         []probe.Certificate
		failed        bool
		libProblem    string
		sslErr        string
	)
	fail := func(stage probe.Stage, f probe.Failure, msg string) {
		if !failed {
			o.fail(stage, f, msg)
			failed = true
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		raw := strings.TrimRight(sc.Text(), "\r")
		line := strings.TrimPrefix(raw, "posttls-finger: ")
		if strings.TrimSpace(line) == "" {
			continue
		}
		switch {
		case strings.HasPrefix(line, "< "):
			text := line[2:]
			o.note(probe.FromServer, text)
			code, rest := smtpReply(text)
			switch {
			case !sawGreeting:
				sawGreeting = true
				if strings.HasPrefix(rest, "*") && code == 220 {
					masked = true
				}
			case starttlsSeen && !starttlsOK && !tlsUp:
				if code == 220 {
					starttlsOK = true
				}
			case sawEHLO && !tlsUp:
				kw := ""
				if len(text) > 4 && (text[3] == '-' || text[3] == ' ') {
					if f := strings.Fields(text[4:]); len(f) > 0 {
						kw = strings.ToUpper(f[0])
					}
				}
				switch {
				case kw == "STARTTLS":
					offered = true
				case kw == "XXXXXXXA" || strings.HasPrefix(kw, "XXXX"):
					masked = true
				}
			}
			continue
		case strings.HasPrefix(line, "> "):
			text := line[2:]
			o.note(probe.FromClient, text)
			switch strings.ToUpper(strings.TrimSpace(text)) {
			case "STARTTLS":
				starttlsSeen = true
			case "QUIT":
				if !tlsUp {
					quitBeforeTLS = true
				}
			default:
				if strings.HasPrefix(strings.ToUpper(text), "EHLO") {
					sawEHLO = true
				}
			}
			continue
		}
		o.note(probe.Note, line)
		lower := strings.ToLower(line)
		switch {
		case strings.HasPrefix(line, "fatal: "):
			// posttls-finger could not run at all (no main.cf, bad
			// option): nothing was tested.
			if o.ToolError == "" {
				o.ToolError = line
			}
		case strings.HasPrefix(line, "Connected to "):
			connected = true
		case strings.HasPrefix(line, "Failed to establish session"):
			f, ok := connectFailure(line)
			if !ok {
				f = probe.FailConnectUnreachable
			}
			fail(probe.StageConnect, f, line)
		case strings.Contains(lower, "timeout while reading server greeting"):
			fail(probe.StageBanner, probe.FailBannerTimeout, line)
		case strings.HasPrefix(line, "SMTP service not available: "):
			code, text := smtpReply(strings.TrimPrefix(line, "SMTP service not available: "))
			if code == 0 {
				fail(probe.StageBanner, probe.FailSMTPProtocol, line)
			} else {
				fail(probe.StageBanner, probe.FailSMTPRejected, line)
				o.SMTPCode, o.SMTPText = code, text
			}
		case strings.HasPrefix(line, "EHLO rejected: "):
			code, text := smtpReply(strings.TrimPrefix(line, "EHLO rejected: "))
			if tlsUp {
				fail(probe.StagePostTLS, probe.FailPostTLS, line)
			} else {
				fail(probe.StageEHLO, probe.FailSMTPRejected, line)
			}
			o.SMTPCode, o.SMTPText = code, text
		case strings.HasPrefix(line, "STARTTLS rejected: "):
			code, text := smtpReply(strings.TrimPrefix(line, "STARTTLS rejected: "))
			fail(probe.StageStartTLS, probe.FailStartTLSRejected, line)
			o.SMTPCode, o.SMTPText = code, text
		case strings.HasPrefix(line, "SSL_connect error"):
			sslErr = line
		case strings.HasPrefix(line, "warning: TLS library problem: "):
			if libProblem == "" {
				libProblem = strings.TrimPrefix(line, "warning: TLS library problem: ")
			}
		case strings.Contains(line, "certificate verification failed for "):
			if _, r, ok := strings.Cut(line, "verification failed for "); ok {
				if _, reason, ok := strings.Cut(r, ": "); ok {
					reason = strings.TrimSpace(reason)
					if i := strings.Index(reason, ":"); strings.HasPrefix(reason, "num=") && i >= 0 {
						reason = reason[i+1:]
					}
					if verifyReason == "" {
						verifyReason = reason
					}
				}
			}
		case strings.Contains(line, "subject_CN="):
			c := probe.Certificate{}
			for _, f := range strings.Split(line, ", ") {
				if i := strings.Index(f, "subject_CN="); i >= 0 {
					c.Subject = "CN=" + clip(f[i+len("subject_CN="):], 256)
				}
				if v, ok := strings.CutPrefix(f, "issuer_CN="); ok {
					c.Issuer = "CN=" + clip(v, 256)
				}
			}
			if c.Subject != "" && len(certs) < 10 {
				certs = append(certs, c)
			}
		case strings.Contains(line, " TLS connection established to "):
			tlsUp = true
			trust, _, _ = strings.Cut(line, " ")
			if _, rest, ok := strings.Cut(line, ": "); ok {
				parseFingerTLS(rest, &tlsInfo)
			}
		case strings.HasPrefix(line, "lost connection"), strings.HasPrefix(line, "warning: lost connection"):
			if !tlsUp {
				if starttlsOK {
					fail(probe.StageHandshake, probe.FailTLSReset, line)
				} else {
					fail(probe.StageEHLO, probe.FailSMTPProtocol, "the server closed the connection before STARTTLS: "+line)
				}
			}
		case strings.Contains(lower, "timeout while"):
			switch {
			case tlsUp:
				fail(probe.StagePostTLS, probe.FailPostTLS, line)
			case starttlsOK:
				fail(probe.StageHandshake, probe.FailTLSTimeout, line)
			default:
				fail(probe.StageEHLO, probe.FailSMTPProtocol, line)
			}
		}
	}
	if len(certs) > 0 {
		tlsInfo.PeerCertificates = certs
	} else {
		tlsInfo.PeerCertificates = []probe.Certificate{}
	}
	if sslErr != "" && !failed {
		detail := sslErr
		if libProblem != "" {
			detail += " (" + libProblem + ")"
		}
		f := tlsLibraryFailure(sslErr)
		if libProblem != "" {
			f = tlsLibraryFailure(libProblem)
		}
		if f == probe.FailCertExpired || f == probe.FailCertHostname || f == probe.FailCertUntrusted {
			fail(probe.StageVerify, f, detail)
		} else {
			fail(probe.StageHandshake, f, detail)
		}
	}
	if tlsUp && !failed {
		switch {
		case verifyReason != "":
			fail(probe.StageVerify, tlsLibraryFailure(verifyReason), "posttls-finger: certificate verification failed: "+verifyReason)
		case trust == "Verified":
			tlsInfo.Verified = true
		case trust == "Trusted":
			fail(probe.StageVerify, probe.FailCertHostname, "the certificate chain is trusted but does not name the MX host")
		default:
			fail(probe.StageVerify, probe.FailCertUntrusted, trust+" TLS connection: the certificate was not verified")
		}
	}
	if tlsUp || len(certs) > 0 {
		t := tlsInfo
		o.TLS = &t
	}
	if !failed {
		switch {
		case tlsUp:
			o.OK = true
		case masked:
			fail(probe.StageEHLO, probe.FailStartTLSMasked,
				"STARTTLS is masked (greeting of '*' or XXXXXXXA in the EHLO reply): an SMTP-inspecting firewall is on the path")
		case quitBeforeTLS && sawEHLO && !offered:
			fail(probe.StageEHLO, probe.FailStartTLSNotOffered, "the EHLO reply did not offer STARTTLS")
		case timedOut && !connected:
			fail(probe.StageConnect, probe.FailConnectTimeout, "posttls-finger did not connect in time")
		case timedOut && !sawGreeting:
			fail(probe.StageBanner, probe.FailBannerTimeout, "posttls-finger got no greeting in time")
		case timedOut && starttlsOK:
			fail(probe.StageHandshake, probe.FailTLSTimeout, "posttls-finger did not finish the TLS handshake in time")
		case timedOut:
			fail(probe.StageEHLO, probe.FailSMTPProtocol, "posttls-finger did not finish in time")
		case len(o.Transcript) == 0:
			// With -c, a server without (or with a masked) STARTTLS yields
			// no output at all.
			fail(probe.StageEHLO, probe.FailStartTLSNotOffered, "posttls-finger printed nothing: no TLS session (STARTTLS not offered or masked; run without -c to see the dialogue)")
		default:
			last := strings.TrimPrefix(o.Transcript[len(o.Transcript)-1], probe.Note)
			fail(probe.StageHandshake, probe.FailTLSAlert, "unrecognised posttls-finger output: "+last)
		}
	}
	if o.Transcript == nil {
		o.Transcript = []string{}
	}
	return o
}

// parseFingerTLS reads "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128
// bits) key-exchange X25519 server-signature ECDSA (prime256v1) ...".
func parseFingerTLS(s string, t *probe.TLSInfo) {
	f := strings.Fields(s)
	for i := 0; i < len(f); i++ {
		switch {
		case i == 0 && (strings.HasPrefix(f[i], "TLSv") || strings.HasPrefix(f[i], "SSLv")):
			t.Version = tlsVersionName(f[i])
		case f[i] == "cipher" && i+1 < len(f):
			t.Cipher = clip(f[i+1], 100)
		case f[i] == "key-exchange" && i+1 < len(f):
			t.Group = clip(f[i+1], 100)
		}
	}
}
