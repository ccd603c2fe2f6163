package mtasts

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/probe"
)

// gmailDiscovery is a successful discovery of Gmail's policy.
func gmailDiscovery(t *testing.T, mode Mode) Discovery {
	t.Helper()
	p, err := ParsePolicy(strings.Replace(gmailPolicy, "enforce", string(mode), 1))
	if err != nil {
		t.Fatal(err)
	}
	return Discovery{Domain: "gmail.com", Class: ClassOK, ID: "20190429T010101", Policy: &p}
}

// result is a probe of mx at ip that completed TLS with a leaf naming sans.
func result(mx, ip string, verified bool, f probe.Failure, sans ...string) probe.Result {
	return probe.Result{Relay: "relay-1", MX: mx, IP: ip, ServerName: mx, OK: f == "", Failure: f,
		TLS: &probe.TLSInfo{Version: "TLS 1.3", Verified: verified,
			PeerCertificates: []probe.Certificate{{Subject: "CN=" + mx, SANs: sans}}}}
}

// failed is a probe of mx that stopped before any TLS session.
func failed(mx string, f probe.Failure) probe.Result {
	return probe.Result{Relay: "relay-1", MX: mx, IP: "192.0.2.9", Failure: f}
}

func TestJudgeCertificates(t *testing.T) {
	const mx = "alt1.gmail-smtp-in.l.google.com"
	for _, tc := range []struct {
		name    string
		results []probe.Result
		want    CertVerdict
		fail    probe.Failure
		detail  []string
	}{
		{"verified, exact name", []probe.Result{result(mx, "192.0.2.1", true, "", mx)}, CertValid, "", nil},
		{"verified, wildcard", []probe.Result{result(mx, "192.0.2.1", true, "", "mx.google.com", "*.gmail-smtp-in.l.google.com")}, CertValid, "", nil},
		{"verified, SANs truncated by the probe", []probe.Result{result(mx, "192.0.2.1", true, "", "a.example", "… 40 more")}, CertValid, "", nil},
		{"every address valid", []probe.Result{
			result(mx, "192.0.2.1", true, "", mx), result(mx, "2001:db8::1", true, "", mx)}, CertValid, "", nil},
		{"untrusted", []probe.Result{result(mx, "192.0.2.1", false, probe.FailCertUntrusted, mx)}, CertInvalid,
			probe.FailCertUntrusted, []string{"relay-1 → 192.0.2.1: cert_untrusted", "names " + mx}},
		{"expired", []probe.Result{result(mx, "192.0.2.1", false, probe.FailCertExpired, mx)}, CertInvalid,
			probe.FailCertExpired, []string{"cert_expired"}},
		{"wrong name", []probe.Result{result(mx, "192.0.2.1", false, probe.FailCertHostname, "other.test.example")}, CertInvalid,
			probe.FailCertHostname, []string{"cert_hostname_mismatch; the certificate names other.test.example"}},
		{"one bad address of two", []probe.Result{
			result(mx, "192.0.2.1", true, "", mx), result(mx, "2001:db8::1", false, probe.FailCertUntrusted, mx)}, CertInvalid,
			probe.FailCertUntrusted, []string{"2001:db8::1", "(1 of 2 probes)"}},
		{"verified for a pinned name that does not cover the MX", []probe.Result{func() probe.Result {
			r := result(mx, "192.0.2.1", true, "", "lab.example")
			r.ServerName = "lab.example"
			return r
		}()}, CertInvalid, probe.FailCertHostname, []string{"pinned server name lab.example", "not " + mx}},
		{"verified for a pinned name that covers the MX", []probe.Result{func() probe.Result {
			r := result(mx, "192.0.2.1", true, "", "*.gmail-smtp-in.l.google.com")
			r.ServerName = "mx.google.com"
			return r
		}()}, CertValid, "", nil},
		{"STARTTLS stripped", []probe.Result{failed(mx, probe.FailStartTLSMasked)}, CertNoTLS, probe.FailStartTLSMasked,
			[]string{"no TLS session (starttls_masked)"}},
		{"handshake reset", []probe.Result{failed(mx, probe.FailTLSReset)}, CertNoTLS, probe.FailTLSReset, nil},
		{"no TLS beats valid", []probe.Result{result(mx, "192.0.2.1", true, "", mx), failed(mx, probe.FailTLSTimeout)},
			CertNoTLS, probe.FailTLSTimeout, []string{"(1 of 2 probes)"}},
		{"invalid beats no TLS", []probe.Result{failed(mx, probe.FailTLSTimeout), result(mx, "192.0.2.1", false, probe.FailCertExpired, mx)},
			CertInvalid, probe.FailCertExpired, nil},
		{"connection blocked", []probe.Result{failed(mx, probe.FailConnectTimeout)}, CertUnknown, probe.FailConnectTimeout,
			[]string{"stopped before TLS (connect_timeout)"}},
		{"valid beats unknown", []probe.Result{failed(mx, probe.FailConnectTimeout), result(mx, "192.0.2.1", true, "", mx)}, CertValid, "", nil},
		{"agent down", []probe.Result{failed(mx, probe.FailAgentUnreachable)}, CertUnknown, probe.FailAgentUnreachable, nil},
		{"no probe", []probe.Result{result("gmail-smtp-in.l.google.com", "192.0.2.1", true, "", "gmail-smtp-in.l.google.com")},
			CertUnknown, "", []string{"no probe of " + mx}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Judge(gmailDiscovery(t, ModeEnforce), []string{mx}, tc.results)
			c := r.MXHosts[0]
			if c.Cert != tc.want || c.Failure != tc.fail {
				t.Errorf("cert %s (%s), want %s (%s); detail %q", c.Cert, c.Failure, tc.want, tc.fail, c.CertDetail)
			}
			contains(t, "cert detail", c.CertDetail, tc.detail...)
			if (c.CertDetail == "") != (tc.want == CertValid) {
				t.Errorf("detail %q with verdict %s", c.CertDetail, c.Cert)
			}
			// A certificate never changes the MTA-STS class.
			if r.Class != ClassOK || !c.InPolicy {
				t.Errorf("class %s, in policy %v", r.Class, c.InPolicy)
			}
			refused := tc.want == CertInvalid || tc.want == CertNoTLS
			if got := r.Refused(); (len(got) == 1) != refused {
				t.Errorf("refused %v with verdict %s", got, c.Cert)
			}
		})
	}
}

func TestJudgeModes(t *testing.T) {
	mx := []string{"gmail-smtp-in.l.google.com", "mx.elsewhere.example"}
	res := []probe.Result{result("gmail-smtp-in.l.google.com", "192.0.2.1", false, probe.FailCertUntrusted, "gmail-smtp-in.l.google.com")}

	enforce := Judge(gmailDiscovery(t, ModeEnforce), mx, res)
	if enforce.Class != ClassMXNotInPolicy || !reflect.DeepEqual(enforce.NotInPolicy, []string{"mx.elsewhere.example"}) {
		t.Errorf("enforce: class %s, not in policy %v", enforce.Class, enforce.NotInPolicy)
	}
	if got := enforce.Refused(); !reflect.DeepEqual(got, mx) {
		t.Errorf("enforce refuses %v, want %v (one by certificate, one by policy)", got, mx)
	}

	testMode := Judge(gmailDiscovery(t, ModeTesting), mx, res)
	if testMode.Class != ClassMXNotInPolicy || testMode.Enforced() || testMode.Refused() != nil {
		t.Errorf("testing: class %s, enforced %v, refused %v", testMode.Class, testMode.Enforced(), testMode.Refused())
	}

	none := Judge(Discovery{Domain: "gmail.com", Class: ClassOK, Policy: &Policy{Version: "STSv1", Mode: ModeNone}}, mx, res)
	if none.Class != ClassOK || len(none.NotInPolicy) != 0 || none.Enforced() {
		t.Errorf("none: class %s, not in policy %v, enforced %v", none.Class, none.NotInPolicy, none.Enforced())
	}

	// Without a usable policy nothing is in it, nothing is refused, and the
	// class stays the discovery's; the certificates are still judged.
	fetchFailed := Discovery{Domain: "gmail.com", Class: ClassPolicyFetchFailed, Reason: ReasonTimeout, Detail: "timed out"}
	r := Judge(fetchFailed, mx, res)
	if r.Class != ClassPolicyFetchFailed || len(r.NotInPolicy) != 0 || r.Refused() != nil || r.MXHosts[0].InPolicy ||
		r.MXHosts[0].Cert != CertInvalid {
		t.Errorf("fetch failed: %+v", r)
	}
}

func TestJudgeHostsFromResults(t *testing.T) {
	res := []probe.Result{
		{MX: "alt2.gmail-smtp-in.l.google.com.", Preference: 20},
		{MX: "gmail-smtp-in.l.google.com.", Preference: 5},
		{MX: "alt1.gmail-smtp-in.l.google.com.", Preference: 10},
		{MX: "ALT1.gmail-smtp-in.l.google.com", Preference: 10},
		{MX: "", IP: "192.0.2.1"},
	}
	r := Judge(gmailDiscovery(t, ModeEnforce), nil, res)
	var got []string
	for _, c := range r.MXHosts {
		got = append(got, c.Host)
	}
	want := []string{"gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com", "alt2.gmail-smtp-in.l.google.com"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("hosts %v, want %v", got, want)
	}
	if r := Judge(gmailDiscovery(t, ModeEnforce), nil, nil); r.MXHosts == nil || r.NotInPolicy == nil || r.Class != ClassOK {
		t.Errorf("no results: %+v (want empty lists, not null, in JSON)", r)
	}
}

func TestSummary(t *testing.T) {
	mx := []string{"gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com", "mx.elsewhere.example"}
	res := []probe.Result{
		result(mx[0], "192.0.2.1", true, "", mx[0]),
		result(mx[1], "192.0.2.2", false, probe.FailCertHostname, "other.test.example"),
	}
	got := Judge(gmailDiscovery(t, ModeEnforce), mx, res).Summary()
	want := "MTA-STS gmail.com: mx_not_in_policy; policy id 20190429T010101, mode enforce, max_age 86400s, mx gmail-smtp-in.l.google.com *.gmail-smtp-in.l.google.com\n" +
		"  mx.elsewhere.example matches none of the policy's mx patterns gmail-smtp-in.l.google.com, *.gmail-smtp-in.l.google.com\n" +
		"TLS, not MTA-STS: alt1.gmail-smtp-in.l.google.com invalid: relay-1 → 192.0.2.2: cert_hostname_mismatch; the certificate names other.test.example\n" +
		"An enforcing sender would not deliver to alt1.gmail-smtp-in.l.google.com, mx.elsewhere.example"
	if got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
	noPolicy := Judge(Discovery{Domain: "example.org", Class: ClassNoPolicy, Detail: "no TXT record at _mta-sts.example.org"}, nil, nil).Summary()
	if noPolicy != "MTA-STS example.org: no_policy\n  no TXT record at _mta-sts.example.org" {
		t.Errorf("summary without a policy: %q", noPolicy)
	}
}
