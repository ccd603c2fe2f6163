package probe_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gmailtls/gmailtls/probe"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update after checking):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var started = time.Date(2026, 3, 2, 9, 15, 0, 0, time.FixedZone("CET", 3600))

func okResult(mx, ip, src string, pref uint16, total float64) probe.Result {
	return probe.Result{
		Relay: "relay-1", MX: mx, Preference: pref, IP: ip, Port: 25, SourceIP: src, OK: true,
		StartedAt: started,
		TLS: &probe.TLSInfo{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", Group: "X25519MLKEM768", Verified: true,
			PeerCertificates: []probe.Certificate{{Subject: "CN=mx.google.com", Issuer: "CN=WR2,O=Google Trust Services,C=US",
				SANs: []string{"mx.google.com", "gmail-smtp-in.l.google.com"}, NotAfter: started.AddDate(0, 2, 0), DaysLeft: 61}}},
		Timings: probe.Timings{Connect: 12.1, Banner: 80.4, EHLO: 11.9, StartTLS: 12.0, Handshake: 40.2, PostTLS: 24.5, Total: total},
		Hints:   []string{}, Transcript: []string{},
	}
}

func resetResult(mx, ip, src string, pref uint16) probe.Result {
	r := okResult(mx, ip, src, pref, 20412.7)
	r.OK, r.Stage, r.Failure = false, probe.StageHandshake, probe.FailTLSReset
	r.Error = "TLS handshake: read tcp " + src + ":41234->" + ip + ":25: read: connection reset by peer"
	r.TLS.Variant = "classic_kex"
	r.Hints = []string{probe.Hint(probe.FailTLSReset),
		"the handshake succeeds without the post-quantum key share: a middlebox on the path drops large ClientHellos (ClientHello of 1571 bytes fails, 290 bytes works)"}
	r.Transcript = []string{
		"* connected to " + ip + ":25 from " + src,
		"S: 220 mx.google.com ESMTP a640c23a62f3a-a7f1e2d2c5esi1234567.1 - gsmtp",
		"C: EHLO relay-1.example.net",
		"S: 250-mx.google.com at your service, [" + src + "]",
		"S: 250-SIZE 157286400", "S: 250-8BITMIME", "S: 250-STARTTLS", "S: 250-ENHANCEDSTATUSCODES",
		"S: 250-PIPELINING", "S: 250-CHUNKING", "S: 250 SMTPUTF8",
		"C: STARTTLS", "S: 220 2.0.0 Ready to start TLS",
		"* TLS handshake started, SNI " + mx,
		"* handshake failed (tls_reset): " + r.Error,
	}
	return r
}

func TestWriteTextGolden(t *testing.T) {
	const (
		mx0 = "gmail-smtp-in.l.google.com"
		mx1 = "alt1.gmail-smtp-in.l.google.com"
		mx4 = "alt4.gmail-smtp-in.l.google.com"
	)
	masked := probe.Result{
		Relay: "relay-1", MX: mx4, Preference: 40, IP: "142.250.153.27", Port: 25, SourceIP: "192.0.2.10",
		StartedAt: started, Stage: probe.StageEHLO, Failure: probe.FailStartTLSMasked,
		Error:   "the EHLO reply lists XXXXXXXA where STARTTLS belongs",
		Timings: probe.Timings{Connect: 11, Banner: 75, EHLO: 10, Total: 97.3},
		Hints: []string{probe.Hint(probe.FailStartTLSMasked),
			"the greeting is masked with asterisks: SMTP inspection (e.g. Cisco ASA ESMTP inspection) rewrites this session; disable SMTP inspection on the port-25 path",
			"XXXXXXXA in the EHLO reply is STARTTLS overwritten by SMTP inspection (Cisco ASA/PIX ESMTP inspection)"},
		Transcript: []string{"* connected to 142.250.153.27:25 from 192.0.2.10", "S: 220 ****************************",
			"C: EHLO relay-1.example.net", "S: 250-mx.google.com at your service", "S: 250-XXXXXXXA", "S: 250 SMTPUTF8",
			"* ehlo failed (starttls_masked): the EHLO reply lists XXXXXXXA where STARTTLS belongs",
			"C: QUIT", "S: 221 2.0.0 closing connection"},
	}
	rejected := probe.Result{
		Relay: "relay-1", MX: mx1, Preference: 10, IP: "2607:f8b0:4023:1004::1b", Port: 25, SourceIP: "2001:db8:100::10",
		StartedAt: started, Stage: probe.StageBanner, Failure: probe.FailSMTPRejected, SMTPCode: 421,
		SMTPText: "4.7.0 [2001:db8:100::10] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.",
		Error:    "the server answered the greeting with 421",
		Timings:  probe.Timings{Connect: 30, Banner: 31, Total: 61.4},
		Hints:    []string{probe.Hint(probe.FailSMTPRejected)},
		Transcript: []string{"* connected to [2607:f8b0:4023:1004::1b]:25 from 2001:db8:100::10",
			"S: 421-4.7.0 [2001:db8:100::10] Our system has detected an unusual rate of unsolicited mail originating from your IP address.",
			"S: 421 4.7.0 To protect our users from spam, mail sent from your IP address has been temporarily rate limited.",
			"* banner failed (smtp_rejected): the server answered the greeting with 421", "C: QUIT", "S: 221 2.0.0 bye"},
	}
	dns := probe.Result{
		Relay: "relay-1", MX: "alt2.gmail-smtp-in.l.google.com", Preference: 20, Port: 25, StartedAt: started,
		Stage: probe.StageDNS, Failure: probe.FailDNSError,
		Error: "address lookup of alt2.gmail-smtp-in.l.google.com: lookup alt2.gmail-smtp-in.l.google.com: i/o timeout",
		Hints: []string{probe.Hint(probe.FailDNSError)}, Transcript: []string{"* dns failed (dns_error): address lookup timed out"},
	}
	reports := map[string]probe.Report{
		"text_all_ok.golden": {Relay: "local", Domain: "gmail.com", StartedAt: started, Results: []probe.Result{
			okResult(mx0, "142.250.102.27", "192.0.2.10", 5, 181.1),
			okResult(mx0, "2a00:1450:400c:c0b::1a", "2001:db8:100::10", 5, 203.0),
			okResult(mx1, "142.250.153.26", "192.0.2.10", 10, 1234.5),
		}},
		"text_failures.golden": {Relay: "relay-1", Domain: "gmail.com", StartedAt: started, Results: []probe.Result{
			okResult(mx0, "142.250.102.27", "192.0.2.10", 5, 181.1),
			resetResult(mx0, "142.250.102.27", "192.0.2.11", 5),
			rejected, dns, masked,
		}},
		"text_empty.golden": {Relay: "local", Domain: "gmail.com", StartedAt: started},
	}
	for name, rep := range reports {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := probe.WriteText(&buf, rep); err != nil {
				t.Fatal(err)
			}
			for i, line := range strings.Split(buf.String(), "\n") {
				if n := utf8.RuneCountInString(line); n > probe.TextWidth {
					t.Errorf("line %d has %d columns: %q", i+1, n, line)
				}
			}
			golden(t, name, buf.Bytes())
		})
	}
}
