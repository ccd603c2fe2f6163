package mtasts

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/golden"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/probe"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// gmailLab is gmail.com's five MX hosts on loopback, each a scripted
// STARTTLS server, reached through a resolver and a dialer that know only
// them: the primary and alt1/alt3 as Gmail, alt2 behind a firewall that
// masks STARTTLS, alt4 with a certificate for another name.
type gmailLab struct {
	mx    []*net.MX
	addrs map[string]string // host → "127.0.0.N"
	to    map[string]string // "127.0.0.N:25" → the server
}

func startGmailLab(t *testing.T, ca *smtptest.CA) *gmailLab {
	t.Helper()
	start := func(b smtptest.Behavior, name string) string {
		return smtptest.StartT(t, smtptest.Options{CA: ca, Hostname: name, Behavior: b}).Addr()
	}
	primary := start(smtptest.Gmail, "gmail-smtp-in.l.google.com")
	alt := start(smtptest.Gmail, "*.gmail-smtp-in.l.google.com")
	masked := start(smtptest.Masked, "*.gmail-smtp-in.l.google.com")
	wrong := start(smtptest.WrongNameCert, "*.gmail-smtp-in.l.google.com")
	lab := &gmailLab{addrs: map[string]string{}, to: map[string]string{}}
	for i, srv := range []string{primary, alt, masked, alt, wrong} {
		host := "gmail-smtp-in.l.google.com"
		if i > 0 {
			host = fmt.Sprintf("alt%d.gmail-smtp-in.l.google.com", i)
		}
		ip := fmt.Sprintf("127.0.0.%d", 11+i)
		lab.mx = append(lab.mx, &net.MX{Host: host + ".", Pref: uint16(5 + 10*i)})
		lab.addrs[host] = ip
		lab.to[ip+":25"] = srv
	}
	return lab
}

func (l *gmailLab) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if canonical(name) != "gmail.com" {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return l.mx, nil
}

func (l *gmailLab) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	ip, ok := l.addrs[canonical(host)]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []net.IPAddr{{IP: net.ParseIP(ip)}}, nil
}

func (l *gmailLab) DialContext(ctx context.Context, network, address string, _ netip.Addr) (net.Conn, error) {
	to, ok := l.to[address]
	if !ok {
		return nil, fmt.Errorf("gmail lab: no server at %s", address)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, to)
}

// TestGmailGolden runs the probe engine against a Gmail-like lab, fetches
// Gmail's policy from a loopback mta-sts.gmail.com, and judges the one
// against the other: the MTA-STS class is ok while two MX hosts fail TLS,
// one by its certificate and one behind a STARTTLS-masking firewall. The
// report and its summary are golden files.
func TestGmailGolden(t *testing.T) {
	h := startPolicyHost(t, serve(gmailPolicy))
	lab := startGmailLab(t, h.ca)
	rep, err := probe.Run(context.Background(), probe.Config{
		Domain: "gmail.com", RootCAs: h.ca.Pool, Resolver: lab, Dialer: lab,
		HelloName: "relay-1.example.net", Timeout: 10 * time.Second, NoRetry: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.client(gmailDNS()).Check(context.Background(), "gmail.com", nil, rep.Results)
	if err != nil {
		t.Fatal(err)
	}

	if r.Class != ClassOK || !r.Enforced() {
		t.Errorf("class %s, enforced %v: an MX host failing TLS is not an MTA-STS failure", r.Class, r.Enforced())
	}
	want := []string{"alt2.gmail-smtp-in.l.google.com", "alt4.gmail-smtp-in.l.google.com"}
	if got := r.Refused(); !reflect.DeepEqual(got, want) {
		t.Errorf("refused %v, want %v", got, want)
	}

	r.FetchedAt = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC) // the one thing that differs run to run
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/gmail_report.json", append(js, '\n'), *update, "-update")
	golden.Check(t, "testdata/gmail_summary.txt", []byte(r.Summary()+"\n"), *update, "-update")

	// The JSON reads back to the same report.
	var back Report
	if err := json.Unmarshal(js, &back); err != nil || !reflect.DeepEqual(back, r) {
		t.Errorf("JSON round trip: %v\n%+v\n%+v", err, back, r)
	}
	if !strings.Contains(string(js), `"class": "ok"`) {
		t.Errorf("report JSON lacks its class:\n%s", js)
	}
}
