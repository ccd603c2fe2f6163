package relay

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/postfixlab"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay/mta"
)

// mxTable answers MX lookups from a table and counts them; a domain not
// in the table gets "no such host". No real DNS is asked.
type mxTable struct {
	mu      sync.Mutex
	mx      map[string][]*net.MX
	lookups map[string]int
}

func (m *mxTable) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lookups == nil {
		m.lookups = map[string]int{}
	}
	m.lookups[name]++
	if mx, ok := m.mx[name]; ok {
		return mx, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (m *mxTable) count(name string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lookups[name]
}

func workspaceMX() *mxTable {
	return &mxTable{mx: map[string][]*net.MX{
		"workspace-customer.test": {{Host: "ASPMX.L.GOOGLE.COM.", Pref: 1}, {Host: "alt1.aspmx.l.google.com.", Pref: 5}},
		"elsewhere.test":          {{Host: "mx.elsewhere.test.", Pref: 10}},
	}}
}

// The relay, for real: Debian's Postfix routes gmail.com,
// googlemail.com and a Google-hosted customer domain to a lab MX that
// resets every handshake, under smtp_tls_security_level = encrypt. The
// agent (started with MAIL_CONFIG, running the real postqueue, postconf
// and postmap through ExecRunner) counts the customer domain's mail
// because its MX is Google's, measures the oldest age from postqueue's
// arrival times, groups one reason with every queue id, and reads the TLS
// policy: level encrypt, the transport to the lab MX, mail waits.
func TestQueueAndPolicyFromRealPostfix(t *testing.T) {
	started := time.Now().Truncate(time.Second)
	r := postfixlab.StartRelay(t, postfixlab.RelayOptions{})
	fed := time.Now()
	env := map[string]string{"PATH": os.Getenv("PATH"), "MAIL_CONFIG": r.ConfigDir()}
	runner := &ExecRunner{Getenv: func(k string) string { return env[k] }}
	// The agent's (and the bot's) clock an hour ahead: the oldest message
	// is an hour old, give or take the seconds of the test.
	clock := func() time.Time { return time.Now().Add(time.Hour) }
	resolver := workspaceMX()
	srv := plainAgent(t, ServerConfig{
		Base:       probe.Config{Domain: "gmail.com"},
		Commands:   runner,
		Resolver:   resolver,
		MailConfig: r.ConfigDir(),
		Now:        clock,
	})
	a := NewAgent("relay-2", srv.URL, testSecret, srv.Client(), 30*time.Second, clock)

	before := clock()
	q, err := a.Queue(t.Context())
	after := clock()
	if err != nil {
		t.Fatal(err)
	}
	if !q.Available || q.Deferred != 3 || q.Recipients != 3 {
		t.Fatalf("queue %+v", q)
	}
	if q.OldestArrival.Before(started) || q.OldestArrival.After(fed) {
		t.Errorf("oldest arrival %s outside [%s, %s]", q.OldestArrival, started, fed)
	}
	// Measured on the agent's clock from postqueue's arrival_time (Unix
	// seconds): between the clock before and after the request.
	if q.OldestAge < before.Sub(q.OldestArrival) || q.OldestAge > after.Sub(q.OldestArrival) || q.OldestAge < time.Hour {
		t.Errorf("oldest age %s, want %s to %s", q.OldestAge, before.Sub(q.OldestArrival), after.Sub(q.OldestArrival))
	}
	if len(q.Reasons) != 1 || q.Reasons[0].Reason != "Cannot start TLS: handshake failure" || q.TopReason != q.Reasons[0].Reason {
		t.Fatalf("reasons %+v", q.Reasons)
	}
	g := q.Reasons[0]
	if g.Recipients != 3 || g.Messages != 3 || len(g.QueueIDs) != 3 || g.MoreIDs != 0 {
		t.Fatalf("group %+v", g)
	}
	listed, err := r.Queue(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, e := range listed {
		ids[e.QueueID] = true
	}
	domains := map[string]bool{}
	for _, m := range g.QueueIDs {
		if !ids[m.ID] || len(m.Domains) != 1 || m.Arrival.Before(started) || m.Arrival.After(fed) {
			t.Errorf("queue id %+v not in the relay's queue %v", m, ids)
		}
		domains[m.Domains[0]] = true
	}
	if len(domains) != 3 || !domains["workspace-customer.test"] {
		t.Errorf("domains of the queue ids %v", domains)
	}
	var ws QueueDomain
	for _, d := range q.Domains {
		if d.Domain == "workspace-customer.test" {
			ws = d
		}
	}
	if ws.Why != mta.BoundGoogleMX || ws.MX != "aspmx.l.google.com" || ws.Recipients != 1 {
		t.Errorf("domains %+v", q.Domains)
	}
	// The answer is cached: a second reading asks DNS no more.
	if _, err := a.Queue(t.Context()); err != nil || resolver.count("workspace-customer.test") != 1 {
		t.Errorf("lookups %v (%v)", resolver.lookups, err)
	}

	// Without the MX lookup, the Workspace domain's mail is not seen.
	plain := plainAgent(t, ServerConfig{Base: probe.Config{Domain: "gmail.com"}, Commands: runner})
	q2, err := NewAgent("relay-2", plain.URL, testSecret, plain.Client(), 30*time.Second, time.Now).Queue(t.Context())
	if err != nil || q2.Deferred != 2 {
		t.Errorf("by name only: %+v %v", q2, err)
	}

	p, err := a.Policy(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !p.Available || p.MTA != "postfix" || p.SecurityLevel != "encrypt" || p.EffectiveLevel != "encrypt" {
		t.Fatalf("policy %+v", p)
	}
	hop := "[" + r.MX.Host() + "]:" + strconv.Itoa(r.MX.Port())
	if p.Transport != "smtp:"+hop || p.NextHop != hop || !strings.HasPrefix(p.TransportMaps, "texthash:") {
		t.Errorf("transport %q next hop %q maps %q", p.Transport, p.NextHop, p.TransportMaps)
	}
	if p.OnTLSFailure != mta.TLSFailureStalls || !strings.Contains(p.Effect, "waits in the queue") {
		t.Errorf("effect %s: %s", p.OnTLSFailure, p.Effect)
	}
	if p.MandatoryProtocols == "" || p.MandatoryCiphers == "" || p.Protocols == "" || len(p.Warnings) != 0 {
		t.Errorf("policy %+v", p)
	}
}

// A policy table entry, an MTA-STS resolver socketmap and a CA bundle,
// read with the real postconf and postmap from a main.cf of the test's
// own: the table's entry wins over main.cf's level, and the newest
// certificate of the bundle is found.
func TestPolicyTablesAndCABundle(t *testing.T) {
	postfixlab.Require(t)
	dir := t.TempDir()
	ca := newCA(t)
	bundle := filepath.Join(dir, "ca.pem")
	if err := ca.WritePEM(bundle); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("tls_policy", "gmail.com secure match=.google.com\n")
	write("master.cf", "")
	write("main.cf", strings.Join([]string{
		"compatibility_level = 3.6",
		"smtp_tls_security_level = may",
		"smtp_tls_policy_maps = texthash:" + dir + "/tls_policy, socketmap:inet:127.0.0.1:8461:postfix",
		"smtp_tls_CAfile = " + bundle,
		"relayhost = [smarthost.test.example]:587",
	}, "\n")+"\n")
	env := map[string]string{"PATH": os.Getenv("PATH")}
	l := NewLocal("r", probe.Config{Domain: "gmail.com"}, nil)
	l.Commands = &ExecRunner{Getenv: func(k string) string { return env[k] }}
	l.MailConfig = dir
	p, err := l.Policy(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p.SecurityLevel != "may" || p.PolicyEntry != "secure match=.google.com" || p.EffectiveLevel != "secure" ||
		p.PolicyTable != "texthash:"+dir+"/tls_policy" || p.MTASTSResolver != "socketmap:inet:127.0.0.1:8461:postfix" {
		t.Fatalf("policy %+v", p)
	}
	// The relayhost is the next hop; its key has no entry, gmail.com's has.
	if p.NextHop != "[smarthost.test.example]:587" || p.PolicyKey != "gmail.com" {
		t.Errorf("next hop %q key %q", p.NextHop, p.PolicyKey)
	}
	if p.OnTLSFailure != mta.TLSFailureStalls || !strings.Contains(p.Effect, "MTA-STS is delegated to socketmap:inet:127.0.0.1:8461:postfix") {
		t.Errorf("effect %s", p.Effect)
	}
	want := mta.ParseCABundle(caPEM)
	if p.CACertificates != 1 || !p.CANewestNotBefore.Equal(want.NewestNotBefore) || p.CANewestNotBefore.IsZero() {
		t.Errorf("CA bundle %d certs, newest %s (want %s)", p.CACertificates, p.CANewestNotBefore, want.NewestNotBefore)
	}
}

// Exim's configuration, from a fake exim that prints what `exim -bP`
// prints.
func TestPolicyExim(t *testing.T) {
	dir := t.TempDir()
	script := `#!/bin/sh
case "$*" in
"-bP tls_require_ciphers") echo "tls_require_ciphers = SECURE192:-VERS-TLS-ALL:+VERS-TLS1.3" ;;
"-bP transport remote_smtp") printf 'driver = smtp\nhosts_require_tls = *.google.com\nhosts_try_tls = *\nno_tls_tempfail_tryclear\n' ;;
*) echo "unexpected $*" >&2; exit 2 ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "exim"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PATH": dir}
	l := NewLocal("r", probe.Config{}, nil)
	l.Commands = &ExecRunner{Getenv: func(k string) string { return env[k] }}
	// No postconf on that PATH: Exim it is.
	t.Setenv("PATH", dir)
	p, err := l.Policy(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !p.Available || p.MTA != "exim" || p.Exim == nil || p.Exim.HostsRequireTLS != "*.google.com" ||
		p.Exim.TLSRequireCiphers != "SECURE192:-VERS-TLS-ALL:+VERS-TLS1.3" || p.Exim.TLSTempfailTryclear || p.Exim.HostsTryTLS != "*" {
		t.Fatalf("policy %+v exim %+v", p, p.Exim)
	}
	if p.OnTLSFailure != mta.TLSFailureStalls || p.Domain != "gmail.com" {
		t.Errorf("%+v", p)
	}
}

func TestPolicyWithoutMTA(t *testing.T) {
	l := NewLocal("r", probe.Config{}, nil)
	l.Commands = &fakeCommands{}
	p, err := l.Policy(t.Context())
	if err != nil || p.Available || !strings.Contains(p.Error, "neither Postfix") || p.OnTLSFailure != mta.TLSFailureUnknown {
		t.Errorf("%+v %v", p, err)
	}
}

// The MX cache: answers last TTL, failures a few minutes; expired answers
// are looked up again.
func TestGmailBoundCache(t *testing.T) {
	now := time.Unix(1772445600, 0)
	res := workspaceMX()
	g := &GmailBound{Resolver: res, Domains: []string{"Hand.Example."}, TTL: time.Hour, Now: func() time.Time { return now }}
	domains := []string{"gmail.com", "workspace-customer.test", "elsewhere.test", "missing.test", "hand.example"}
	g.Prepare(t.Context(), domains)
	f := g.Func()
	for d, want := range map[string]string{
		"gmail.com": mta.BoundGmail, "workspace-customer.test": mta.BoundGoogleMX, "elsewhere.test": "",
		"missing.test": "", "hand.example": mta.BoundConfigured, "": "",
	} {
		if got := f("ID", d); got != want {
			t.Errorf("%q: %q, want %q", d, got, want)
		}
	}
	if res.count("gmail.com") != 0 || res.count("hand.example") != 0 {
		t.Errorf("looked up %v", res.lookups)
	}
	now = now.Add(10 * time.Minute)
	g.Prepare(t.Context(), domains)
	if res.count("workspace-customer.test") != 1 || res.count("missing.test") != 2 {
		t.Errorf("after 10 minutes: %v", res.lookups)
	}
	now = now.Add(time.Hour)
	g.Prepare(t.Context(), domains)
	if res.count("workspace-customer.test") != 2 {
		t.Errorf("after the TTL: %v", res.lookups)
	}
	// The mail-log hook makes a recipient Gmail-bound too.
	g.MailLog = func(id, domain string) bool { return id == "4D8E45103FE" && domain == "elsewhere.test" }
	if got := g.Func()("4D8E45103FE", "elsewhere.test"); got != mta.BoundMailLog {
		t.Errorf("mail log: %q", got)
	}
	// A nil GmailBound knows gmail.com and googlemail.com only.
	var none *GmailBound
	none.Prepare(t.Context(), domains)
	if none.Func()("x", "googlemail.com") != mta.BoundGmail || none.Func()("x", "workspace-customer.test") != "" {
		t.Error("nil GmailBound")
	}
}

func TestIsGoogleMXHost(t *testing.T) {
	for host, want := range map[string]bool{
		"aspmx.l.google.com.": true, "ALT2.ASPMX.L.GOOGLE.COM": true, "smtp.google.com": true,
		"gmail-smtp-in.l.google.com": true, "mx.googlemail.com": true,
		"google.com": false, "evilgoogle.com": false, "aspmx.l.google.com.evil.test": false, "": false,
	} {
		if IsGoogleMXHost(host) != want {
			t.Errorf("%q: want %t", host, want)
		}
	}
	var _ MXResolver = net.DefaultResolver
}
