package mtasts

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// gmailMX are gmail.com's MX hosts.
var gmailMX = []string{
	"gmail-smtp-in.l.google.com.", "alt1.gmail-smtp-in.l.google.com.", "alt2.gmail-smtp-in.l.google.com.",
	"alt3.gmail-smtp-in.l.google.com.", "alt4.gmail-smtp-in.l.google.com.",
}

// TestFetchGmail discovers a Gmail-like policy end to end on loopback: the
// TXT record among others at the same name, the HTTPS fetch verified for
// mta-sts.gmail.com, the parse, every Gmail MX host in the policy.
func TestFetchGmail(t *testing.T) {
	h := startPolicyHost(t, serve(gmailPolicy))
	dns := gmailDNS()
	r, err := h.client(dns).Check(context.Background(), "Gmail.COM.", gmailMX, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Discovery{
		Domain: "gmail.com", Class: ClassOK, Record: gmailRecord, ID: "20190429T010101",
		URL: "https://mta-sts.gmail.com/.well-known/mta-sts.txt",
		Policy: &Policy{Version: "STSv1", Mode: ModeEnforce, MaxAge: 86400,
			MX: []string{"gmail-smtp-in.l.google.com", "*.gmail-smtp-in.l.google.com"}},
		FetchedAt: r.FetchedAt,
	}
	if !reflect.DeepEqual(r.Discovery, want) {
		t.Errorf("discovery = %+v\nwant        %+v", r.Discovery, want)
	}
	if len(r.MXHosts) != 5 || len(r.NotInPolicy) != 0 || !r.Enforced() {
		t.Errorf("MX hosts %+v, not in policy %v, enforced %v", r.MXHosts, r.NotInPolicy, r.Enforced())
	}
	for i, c := range r.MXHosts {
		wantPat := "*.gmail-smtp-in.l.google.com"
		if i == 0 {
			wantPat = "gmail-smtp-in.l.google.com"
		}
		if !c.InPolicy || c.Pattern != wantPat || c.Host != canonical(gmailMX[i]) || c.Cert != CertUnknown {
			t.Errorf("MX %d = %+v, want in policy by %s, certificate unknown (no probes)", i, c, wantPat)
		}
	}
	if got := dns.asked; len(got) != 1 || got[0] != "_mta-sts.gmail.com." {
		t.Errorf("TXT lookups %q, want one of _mta-sts.gmail.com. (fully qualified)", got)
	}
	if got := h.dials(); len(got) != 1 || got[0] != "mta-sts.gmail.com:443" {
		t.Errorf("dialed %q, want mta-sts.gmail.com:443 once", got)
	}
}

// verdictCase is one row of the verdict table.
type verdictCase struct {
	name string
	// setup returns the policy host and the resolver; nil: Gmail's
	// record and policy.
	setup  func(t *testing.T) (*policyHost, *fakeDNS)
	client func(c *Client) // adjusts the client
	mx     []string        // nil: gmailMX
	class  Class
	reason Reason
	detail []string
	// fetched says whether HTTPS was reached (a dial was made).
	fetched bool
}

// with is a setup serving handler to Gmail's record.
func with(handler http.Handler) func(t *testing.T) (*policyHost, *fakeDNS) {
	return func(t *testing.T) (*policyHost, *fakeDNS) { return startPolicyHost(t, handler), gmailDNS() }
}

// txt is a setup publishing records at _mta-sts.gmail.com (and serving
// Gmail's policy).
func txt(records ...string) func(t *testing.T) (*policyHost, *fakeDNS) {
	return func(t *testing.T) (*policyHost, *fakeDNS) {
		return startPolicyHost(t, serve(gmailPolicy)), &fakeDNS{txt: map[string][]string{"_mta-sts.gmail.com": records}}
	}
}

// dnsErr is a setup whose TXT lookup fails with err.
func dnsErr(err error) func(t *testing.T) (*policyHost, *fakeDNS) {
	return func(t *testing.T) (*policyHost, *fakeDNS) {
		return startPolicyHost(t, serve(gmailPolicy)), &fakeDNS{err: map[string]error{"_mta-sts.gmail.com": err}}
	}
}

func TestVerdicts(t *testing.T) {
	// exactly is a valid policy of exactly MaxPolicySize bytes.
	exactly := gmailPolicy + "padding: "
	exactly += strings.Repeat("x", MaxPolicySize-len(exactly)-1) + "\n"

	for _, tc := range []verdictCase{
		{name: "ok", class: ClassOK, fetched: true},
		{name: "ok at exactly 64 KiB", setup: with(serve(exactly)), class: ClassOK, fetched: true},
		{name: "ok: mode none ignores the MX list", setup: with(serve("version: STSv1\nmode: none\nmax_age: 86400\n")),
			mx: []string{"mx.elsewhere.example"}, class: ClassOK, fetched: true},

		// no_policy
		{name: "no such name", setup: func(t *testing.T) (*policyHost, *fakeDNS) {
			return startPolicyHost(t, serve(gmailPolicy)), &fakeDNS{}
		}, class: ClassNoPolicy, detail: []string{"no TXT record at _mta-sts.gmail.com", "does not publish MTA-STS"}},
		{name: "no TXT record", setup: txt(), class: ClassNoPolicy,
			detail: []string{"no TXT record at _mta-sts.gmail.com"}},
		{name: "no v=STSv1 TXT record", setup: txt("v=spf1 -all", "v=STSv10; id=1"), class: ClassNoPolicy,
			detail: []string{"2 TXT record(s) at _mta-sts.gmail.com, none starting with v=STSv1"}},

		// record_lookup_failed
		{name: "TXT lookup timeout", setup: dnsErr(&net.DNSError{Err: "i/o timeout", Name: "_mta-sts.gmail.com", IsTimeout: true}),
			class: ClassRecordLookupFailed, reason: ReasonTimeout, detail: []string{"timed out"}},
		{name: "TXT lookup SERVFAIL", setup: dnsErr(&net.DNSError{Err: "server misbehaving", Name: "_mta-sts.gmail.com", IsTemporary: true}),
			class: ClassRecordLookupFailed, reason: ReasonDNS, detail: []string{"server misbehaving"}},

		// record_invalid
		{name: "two records", setup: txt(gmailRecord, "v=STSv1; id=20260101;"), class: ClassRecordInvalid,
			reason: ReasonSeveralRecords, detail: []string{"2 TXT records", "exactly one"}},
		{name: "two records, one invalid", setup: txt(gmailRecord, "v=STSv1"), class: ClassRecordInvalid,
			reason: ReasonSeveralRecords},
		{name: "record syntax", setup: txt("v=STSv1; id=2019-04-29;"), class: ClassRecordInvalid,
			reason: ReasonSyntax, detail: []string{`id "2019-04-29"`, "no policy"}},
		{name: "record without id", setup: txt("v=STSv1 ;"), class: ClassRecordInvalid, reason: ReasonSyntax,
			detail: []string{"no id field"}},

		// policy_fetch_failed
		{name: "certificate from another CA", setup: untrustedHost, class: ClassPolicyFetchFailed,
			reason: ReasonCertUntrusted, fetched: true, detail: []string{"not signed by a trusted CA"}},
		{name: "certificate for another name", setup: func(t *testing.T) (*policyHost, *fakeDNS) {
			return startPolicyHost(t, serve(gmailPolicy), "mta-sts.example.com", "gmail.com"), gmailDNS()
		}, class: ClassPolicyFetchFailed, reason: ReasonCertHostname, fetched: true,
			detail: []string{"not valid for the host name", "mta-sts.gmail.com"}},
		{name: "certificate expired by the client's clock", client: func(c *Client) {
			c.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
		}, class: ClassPolicyFetchFailed, reason: ReasonCertExpired, fetched: true, detail: []string{"expired"}},
		{name: "redirect not followed", setup: redirectHost, class: ClassPolicyFetchFailed, reason: ReasonRedirect,
			fetched: true, detail: []string{"301", `"https://policy.example.net/mta-sts.txt"`, "must not follow"}},
		{name: "404", setup: with(http.NotFoundHandler()), class: ClassPolicyFetchFailed, reason: ReasonHTTPStatus,
			fetched: true, detail: []string{`"404 Not Found", not 200 OK`}},
		{name: "500", setup: with(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "oops", http.StatusInternalServerError)
		})), class: ClassPolicyFetchFailed, reason: ReasonHTTPStatus, fetched: true, detail: []string{"500"}},
		{name: "text/html", setup: with(contentType("text/html; charset=utf-8")), class: ClassPolicyFetchFailed,
			reason: ReasonContentType, fetched: true, detail: []string{`served as "text/html; charset=utf-8", not text/plain`}},
		{name: "no content type", setup: with(contentType("")), class: ClassPolicyFetchFailed,
			reason: ReasonContentType, fetched: true, detail: []string{`served as "", not text/plain`}},
		{name: "text/plain lookalike", setup: with(contentType("text/plainx")), class: ClassPolicyFetchFailed,
			reason: ReasonContentType, fetched: true},
		{name: "too large, with a length", setup: with(serve(exactly + "x")), class: ClassPolicyFetchFailed,
			reason: ReasonTooLarge, fetched: true, detail: []string{"65537 bytes"}},
		{name: "too large, chunked", setup: with(chunked(MaxPolicySize + 1)), class: ClassPolicyFetchFailed,
			reason: ReasonTooLarge, fetched: true, detail: []string{"more than the 65536 bytes"}},
		{name: "policy host does not resolve", setup: func(t *testing.T) (*policyHost, *fakeDNS) {
			h := startPolicyHost(t, serve(gmailPolicy))
			h.routes = map[string]string{}
			return h, gmailDNS()
		}, class: ClassPolicyFetchFailed, reason: ReasonDNS, fetched: true, detail: []string{"does not resolve"}},
		{name: "connection refused", setup: refusedHost, class: ClassPolicyFetchFailed, reason: ReasonConnect,
			fetched: true, detail: []string{"cannot connect"}},
		{name: "plain HTTP on 443", setup: plainHost, class: ClassPolicyFetchFailed, reason: ReasonTLS,
			fetched: true, detail: []string{"TLS handshake failed"}},
		{name: "no answer", setup: with(hang()), client: func(c *Client) { c.Timeout = 300 * time.Millisecond },
			class: ClassPolicyFetchFailed, reason: ReasonTimeout, fetched: true, detail: []string{"timed out"}},

		// policy_invalid
		{name: "policy syntax", setup: with(serve("version: STSv1\nmode: sometimes\nmx: a.example\nmax_age: 1\n")),
			class: ClassPolicyInvalid, reason: ReasonSyntax, fetched: true, detail: []string{`line 2: mode "sometimes"`}},
		{name: "policy max_age over a year", setup: with(serve(strings.Replace(gmailPolicy, "86400", "99999999", 1))),
			class: ClassPolicyInvalid, reason: ReasonSyntax, fetched: true, detail: []string{"exceeds 31557600"}},

		// mx_not_in_policy
		{name: "an MX host outside the policy", mx: append(gmailMX[:2:2], "mx.elsewhere.example", "gmail-smtp-in.l.google.com.evil.net"),
			class: ClassMXNotInPolicy, fetched: true,
			detail: []string{"mx.elsewhere.example, gmail-smtp-in.l.google.com.evil.net matches none of"}},
		{name: "a wildcard matches one label only", mx: []string{"a.alt1.gmail-smtp-in.l.google.com"},
			class: ClassMXNotInPolicy, fetched: true},
		{name: "testing mode still reports", setup: with(serve(strings.Replace(gmailPolicy, "enforce", "testing", 1))),
			mx: []string{"mx.elsewhere.example"}, class: ClassMXNotInPolicy, fetched: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setup := tc.setup
			if setup == nil {
				setup = with(serve(gmailPolicy))
			}
			h, dns := setup(t)
			c := h.client(dns)
			if tc.client != nil {
				tc.client(c)
			}
			mx := tc.mx
			if mx == nil {
				mx = gmailMX
			}
			r, err := c.Check(context.Background(), "gmail.com", mx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Class != tc.class || r.Reason != tc.reason {
				t.Errorf("class %s (%s), want %s (%s); detail %q", r.Class, r.Reason, tc.class, tc.reason, r.Detail)
			}
			contains(t, "detail", r.Detail, tc.detail...)
			if tc.class != ClassOK && r.Detail == "" {
				t.Error("a failure without a detail")
			}
			if fetched := len(h.dials()) > 0; fetched != tc.fetched {
				t.Errorf("HTTPS reached: %v, want %v", fetched, tc.fetched)
			}
			if usable := tc.class == ClassOK || tc.class == ClassMXNotInPolicy; (r.Policy != nil) != usable {
				t.Errorf("policy %+v with class %s", r.Policy, r.Class)
			}
			if r.Class == ClassMXNotInPolicy && len(r.NotInPolicy) == 0 || r.Class != ClassMXNotInPolicy && len(r.NotInPolicy) != 0 {
				t.Errorf("not in policy %v with class %s", r.NotInPolicy, r.Class)
			}
		})
	}
}

// untrustedHost presents a leaf for the right name from a CA the client
// does not trust (TLS interception looks like this).
func untrustedHost(t *testing.T) (*policyHost, *fakeDNS) {
	trusted, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	other, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := other.Issue([]string{"mta-sts.gmail.com"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return startPolicyHostCert(t, serve(gmailPolicy), trusted, leaf), gmailDNS()
}

// redirectHost redirects the policy elsewhere, where a policy is served:
// following the redirect would succeed, which must not happen.
func redirectHost(t *testing.T) (*policyHost, *fakeDNS) {
	var hits atomic.Int32
	h := startPolicyHost(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) > 1 {
			t.Errorf("a second request, for %s: the redirect was followed", r.URL)
		}
		if r.URL.Path == "/.well-known/mta-sts.txt" && r.Host == "mta-sts.gmail.com" {
			http.Redirect(w, r, "https://policy.example.net/mta-sts.txt", http.StatusMovedPermanently)
			return
		}
		serve(gmailPolicy).ServeHTTP(w, r)
	}), "mta-sts.gmail.com", "policy.example.net")
	h.route("policy.example.net:443", h.srv.Listener.Addr().String())
	return h, gmailDNS()
}

// refusedHost routes mta-sts.gmail.com to a port nobody listens on.
func refusedHost(t *testing.T) (*policyHost, *fakeDNS) {
	h := startPolicyHost(t, serve(gmailPolicy))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h.route("mta-sts.gmail.com:443", addr)
	return h, gmailDNS()
}

// plainHost routes mta-sts.gmail.com to an HTTP server without TLS.
func plainHost(t *testing.T) (*policyHost, *fakeDNS) {
	h := startPolicyHost(t, serve(gmailPolicy))
	plain := httptest.NewServer(serve(gmailPolicy))
	t.Cleanup(plain.Close)
	h.route("mta-sts.gmail.com:443", plain.Listener.Addr().String())
	return h, gmailDNS()
}

// contentType serves Gmail's policy under ct; "" sends no Content-Type.
func contentType(ct string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if ct == "" {
			w.Header()["Content-Type"] = nil // no sniffing either
		} else {
			w.Header().Set("Content-Type", ct)
		}
		io.WriteString(w, gmailPolicy)
	})
}

// chunked serves n bytes of a valid-looking policy without a length.
func chunked(n int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, gmailPolicy)
		w.(http.Flusher).Flush()
		line := "x: " + strings.Repeat("y", 1020) + "\n"
		for left := n - len(gmailPolicy); left > 0; left -= len(line) {
			if left < len(line) {
				line = line[:left]
			}
			if _, err := io.WriteString(w, line); err != nil {
				return
			}
		}
	})
}

// hang never answers, until the client goes away.
func hang() http.Handler {
	return http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
}

// TestFetchCanceled: a caller that cancels gets an error, not a verdict.
func TestFetchCanceled(t *testing.T) {
	h := startPolicyHost(t, hang())
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	d, err := h.client(gmailDNS()).Fetch(ctx, "gmail.com")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d.Domain != "gmail.com" || d.ID != "20190429T010101" {
		t.Errorf("partial discovery %+v, want the record found before the cancel", d)
	}
}

// TestFetchDeadline: the caller's deadline, shorter than Timeout, bounds
// the fetch, and is a timeout verdict, not an error.
func TestFetchDeadline(t *testing.T) {
	h := startPolicyHost(t, hang())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	d, err := h.client(gmailDNS()).Fetch(ctx, "gmail.com")
	if err != nil {
		t.Fatal(err)
	}
	if d.Class != ClassPolicyFetchFailed || d.Reason != ReasonTimeout {
		t.Errorf("class %s (%s), want policy_fetch_failed (timeout): %s", d.Class, d.Reason, d.Detail)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v past a 200 ms deadline", el)
	}
}

func TestFetchBadDomain(t *testing.T) {
	c := &Client{Resolver: &fakeDNS{}, DialContext: func(context.Context, string, string) (net.Conn, error) {
		t.Error("dialed for an invalid domain")
		return nil, errors.New("no")
	}}
	for _, d := range []string{"", "gmail..com", "gmail.com/x", "mta sts.gmail.com", strings.Repeat("a", 64) + ".com"} {
		if _, err := c.Fetch(context.Background(), d); !errors.Is(err, ErrDomain) {
			t.Errorf("Fetch(%q) = %v, want ErrDomain", d, err)
		}
	}
}

// TestFetchHostileHeaders: what the server says is clipped before it goes
// into a detail.
func TestFetchHostileHeaders(t *testing.T) {
	long := "https://evil.example/" + strings.Repeat("a", 5000)
	h := startPolicyHost(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, long, http.StatusFound)
	}))
	d, err := h.client(gmailDNS()).Fetch(context.Background(), "gmail.com")
	if err != nil {
		t.Fatal(err)
	}
	if d.Reason != ReasonRedirect || len(d.Detail) > 300 || !strings.Contains(d.Detail, "https://evil.example/aaa") {
		t.Errorf("reason %s, detail of %d bytes: %s", d.Reason, len(d.Detail), d.Detail)
	}
}
