package probe_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gmailtls/gmailtls/internal/smtptest"
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

// engineResult is a result of the relay's own TLS tool toward
// mx.example.net: only its total time is known.
func engineResult(engine string, ok bool, total float64) probe.Result {
	r := probe.Result{Relay: "relay-2", Engine: engine, MX: "mx.example.net", Preference: 10, IP: "192.0.2.25", Port: 25,
		StartedAt: started, OK: ok, Timings: probe.Timings{Total: total}, Hints: []string{}, Transcript: []string{}}
	if ok {
		r.TLS = &probe.TLSInfo{Version: "TLS 1.3", Cipher: "TLS_AES_256_GCM_SHA384", Verified: true}
	} else {
		r.Stage, r.Failure, r.Error = probe.StageHandshake, probe.FailTLSReset, "posttls-finger: lost connection"
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
	// Failures after TLS was negotiated: the row shows the session's TLS.
	untrusted := okResult("alt3.gmail-smtp-in.l.google.com", "142.250.153.26", "192.0.2.10", 30, 150.2)
	untrusted.OK, untrusted.Stage, untrusted.Failure = false, probe.StageVerify, probe.FailCertUntrusted
	untrusted.TLS.Verified = false
	untrusted.TLS.PeerCertificates[0].Issuer = "CN=Corp TLS Inspection CA"
	untrusted.Error = "certificate verification failed: x509: certificate signed by unknown authority"
	untrusted.Hints = []string{probe.Hint(probe.FailCertUntrusted)}
	postTLS := okResult(mx1, "142.250.153.26", "192.0.2.10", 10, 190.4)
	postTLS.OK, postTLS.Stage, postTLS.Failure = false, probe.StagePostTLS, probe.FailPostTLS
	postTLS.SMTPCode, postTLS.SMTPText = 421, "4.7.0 closing"
	postTLS.Error = "EHLO over TLS answered 421"
	postTLS.Hints = []string{probe.Hint(probe.FailPostTLS)}
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
		// An agent that did not answer: no domain, no MX host; the header
		// still reads as a sentence ("gmailtls probe from relay relay-2").
		"text_agent_failed.golden": {Relay: "relay-2", StartedAt: started, Results: []probe.Result{{
			Relay: "relay-2", StartedAt: started, Stage: probe.StageAgent, Failure: probe.FailAgentUnreachable,
			Error:   "relay: agent unreachable: dial tcp 192.0.2.2:8425: connect: connection refused",
			Timings: probe.Timings{Total: 5001.2}, Hints: []string{"the relay's agent could not be reached"}, Transcript: []string{},
		}}},
		// An agent's pinned target (no domain: the hosts name themselves)
		// and the relay's own TLS tools beside the native engine: each row
		// names its engine; openssl and posttls-finger time the whole run
		// only, and a run without a time shows "—".
		"text_engines.golden": {Relay: "relay-2", StartedAt: started, Results: []probe.Result{
			okResult("mx.example.net", "192.0.2.25", "", 10, 88.2),
			engineResult(probe.EngineOpenSSL, true, 140.6),
			engineResult(probe.EnginePosttlsFinger, false, 0),
		}},
		"text_after_tls.golden": {Relay: "relay-1", Domain: "gmail.com", StartedAt: started, Results: []probe.Result{
			okResult(mx0, "142.250.102.27", "192.0.2.10", 5, 181.1), postTLS, untrusted,
		}},
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

// TestWriteTextPinnedHeader: a run aimed at pinned MX hosts says so in the
// header instead of naming the domain it never looked up.
func TestWriteTextPinnedHeader(t *testing.T) {
	rep := probe.Report{Relay: "local", Domain: "gmail.com", StartedAt: started,
		Results: []probe.Result{okResult("127.0.0.1", "127.0.0.1", "", 0, 3.2)}}
	rep.Results[0].Port = 2525
	many := make([]probe.Target, 8)
	for i := range many {
		many[i] = probe.Target{Host: fmt.Sprintf("alt%d.mx-lab.internal.example.net", i), Port: 2525 + i}
	}
	tests := []struct {
		name   string
		pinned []probe.Target
		want   string
	}{
		{"dns", nil, "gmailtls probe of gmail.com from relay local, 2026-03-02T09:15:00+01:00: ok\n"},
		{"one", []probe.Target{{Host: "127.0.0.1", Port: 2525}},
			"gmailtls probe of the pinned MX 127.0.0.1:2525 from relay local, 2026-03-02T09:15:00+01:00: ok\n"},
		{"two, port 25 left out", []probe.Target{{Host: "mx1.lab", Port: 25}, {Host: "2001:db8::1", Port: 2525}},
			"gmailtls probe of 2 pinned MX hosts from relay local, 2026-03-02T09:15:00+01:00: ok\n" +
				"pinned MX hosts: mx1.lab, [2001:db8::1]:2525\n"},
		{"wrapped", many, "gmailtls probe of 8 pinned MX hosts from relay local, 2026-03-02T09:15:00+01:00: ok\n" +
			"pinned MX hosts: alt0.mx-lab.internal.example.net:2525, alt1.mx-lab.internal.example.net:2526,\n" +
			"                 alt2.mx-lab.internal.example.net:2527, alt3.mx-lab.internal.example.net:2528,\n" +
			"                 alt4.mx-lab.internal.example.net:2529, alt5.mx-lab.internal.example.net:2530,\n" +
			"                 alt6.mx-lab.internal.example.net:2531, alt7.mx-lab.internal.example.net:2532\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := probe.WriteTextOptions(&buf, rep, probe.TextOptions{Pinned: tc.pinned}); err != nil {
				t.Fatal(err)
			}
			got, _, _ := strings.Cut(buf.String(), "  MX host")
			// The engine line closes the header of a one-engine run.
			if want := tc.want + "engine: native (gmailtls's own Go crypto/tls)\n"; got != want {
				t.Errorf("header\n got %q\nwant %q", got, want)
			}
			for i, line := range strings.Split(got, "\n") {
				if n := utf8.RuneCountInString(line); n > probe.TextWidth {
					t.Errorf("line %d has %d columns: %q", i+1, n, line)
				}
			}
		})
	}
}

// TestWriteTextTLSOnFailuresAfterHandshake probes real loopback servers
// that fail after TLS was negotiated (EHLO over TLS answered 421; a leaf
// from an unknown CA): their rows show the TLS version and cipher the
// JSON has, and the header names the pinned targets.
func TestWriteTextTLSOnFailuresAfterHandshake(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	post := smtptest.StartT(t, smtptest.Options{Behavior: smtptest.PostTLS421, CA: ca, Hostname: testHost, Addr: "127.0.0.61:0"})
	untrusted := smtptest.StartT(t, smtptest.Options{Behavior: smtptest.UntrustedCA, CA: ca, Hostname: testHost, Addr: "127.0.0.62:0"})
	cfg := pinned(t, ca, post.Addr())
	second, err := probe.ParseTarget(untrusted.Addr())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MX = append(cfg.MX, second)
	rep, err := probe.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := probe.WriteTextOptions(&buf, rep, probe.TextOptions{Pinned: cfg.MX}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	wantHeader := "gmailtls probe of 2 pinned MX hosts from relay test, "
	wantList := "\npinned MX hosts: " + post.Addr() + ", " + untrusted.Addr() + "\n"
	if !strings.HasPrefix(out, wantHeader) || !strings.Contains(out, wantList) {
		t.Errorf("header does not name the pinned targets (want %q):\n%s", wantHeader, out)
	}
	for i, want := range []string{"post_tls post_tls_failed 421", "verify cert_untrusted"} {
		r := rep.Results[i]
		if string(r.Stage)+" "+string(r.Failure) != strings.Fields(want)[0]+" "+strings.Fields(want)[1] || r.TLS == nil || r.TLS.Version != "TLS 1.3" {
			t.Fatalf("result %d: %s %s, TLS %+v", i, r.Stage, r.Failure, r.TLS)
		}
		row := want + ", TLS1.3 " + strings.TrimPrefix(r.TLS.Cipher, "TLS_")
		if !strings.Contains(out, row) {
			t.Errorf("no row with %q:\n%s", row, out)
		}
	}
}
