package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"time"
)

// ErrDomain is returned for a domain that is not a host name: nothing was
// looked up.
var ErrDomain = errors.New("mtasts: invalid domain")

// Resolver looks up the TXT records of a name. *net.Resolver satisfies it.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Class is the verdict on a domain's MTA-STS policy: "ok" or the first step
// of RFC 8461's discovery that failed. It is about MTA-STS only; whether
// each MX host's TLS holds is in Report.MXHosts.
type Class string

// The classes, exact strings in JSON.
const (
	// ClassOK: one valid record, a policy fetched and parsed, and every MX
	// host in it (when judged against MX hosts).
	ClassOK Class = "ok"
	// ClassNoPolicy: no "_mta-sts" TXT record starting with v=STSv1; the
	// domain does not publish MTA-STS and senders deliver opportunistically.
	ClassNoPolicy Class = "no_policy"
	// ClassRecordLookupFailed: the TXT lookup itself failed (timeout,
	// SERVFAIL); a sender would keep using a cached policy.
	ClassRecordLookupFailed Class = "record_lookup_failed"
	// ClassRecordInvalid: more than one v=STSv1 record, or one that does not
	// parse; RFC 8461 §3.1 says to treat the domain as having no policy.
	ClassRecordInvalid Class = "record_invalid"
	// ClassPolicyFetchFailed: the HTTPS fetch failed: DNS, connection,
	// timeout, a certificate not valid for mta-sts.<domain>, a status other
	// than 200 (redirects included), a content type other than text/plain,
	// or a body over MaxPolicySize.
	ClassPolicyFetchFailed Class = "policy_fetch_failed"
	// ClassPolicyInvalid: the policy was fetched but does not parse.
	ClassPolicyInvalid Class = "policy_invalid"
	// ClassMXNotInPolicy: the policy is valid but an MX host matches none
	// of its "mx" patterns (only in modes enforce and testing).
	ClassMXNotInPolicy Class = "mx_not_in_policy"
)

// Reason narrows a class down: which check of the record or the fetch
// failed. Empty for ok and mx_not_in_policy.
type Reason string

// The reasons, exact strings in JSON.
const (
	ReasonSyntax         Reason = "syntax"                 // record_invalid, policy_invalid
	ReasonSeveralRecords Reason = "several_records"        // record_invalid
	ReasonDNS            Reason = "dns"                    // record_lookup_failed, policy_fetch_failed
	ReasonTimeout        Reason = "timeout"                // record_lookup_failed, policy_fetch_failed
	ReasonConnect        Reason = "connect"                // policy_fetch_failed
	ReasonTLS            Reason = "tls"                    // policy_fetch_failed: the handshake
	ReasonCertUntrusted  Reason = "cert_untrusted"         // policy_fetch_failed
	ReasonCertExpired    Reason = "cert_expired"           // policy_fetch_failed
	ReasonCertHostname   Reason = "cert_hostname_mismatch" // policy_fetch_failed
	ReasonRedirect       Reason = "redirect"               // policy_fetch_failed: a 3xx, never followed
	ReasonHTTPStatus     Reason = "http_status"            // policy_fetch_failed: not 200
	ReasonContentType    Reason = "content_type"           // policy_fetch_failed: not text/plain
	ReasonTooLarge       Reason = "too_large"              // policy_fetch_failed: over MaxPolicySize
	ReasonHTTP           Reason = "http"                   // policy_fetch_failed: any other HTTP error
)

const (
	defaultTimeout         = time.Minute
	maxResponseHeaderBytes = 16 << 10
)

// MaxPolicySize is the largest policy file fetched, 64 KiB (RFC 8461 §3.3).
const MaxPolicySize = 64 << 10

// Discovery is what fetching a domain's policy found, as a sending MTA
// would find it.
type Discovery struct {
	Domain string `json:"domain"`
	Class  Class  `json:"class"`
	Reason Reason `json:"reason,omitempty"`
	// Detail says, for people, what failed and with what; never parse it.
	Detail string `json:"detail,omitempty"`
	// Record is the v=STSv1 TXT record as published (clipped), ID its id.
	Record string `json:"record,omitempty"`
	ID     string `json:"id,omitempty"`
	// URL is where the policy was fetched from, once a record was found.
	URL string `json:"url,omitempty"`
	// Policy is the parsed policy when Class is ok or mx_not_in_policy.
	Policy    *Policy   `json:"policy,omitempty"`
	FetchedAt time.Time `json:"fetched_at"`
}

// Client fetches MTA-STS policies. The zero value uses the system's
// resolver, dialer and roots; tests and relays inject their own.
type Client struct {
	// Resolver looks up "_mta-sts.<domain>"; nil: net.DefaultResolver.
	Resolver Resolver
	// DialContext opens the TCP connection to "mta-sts.<domain>:443"
	// (host name and port, resolved by the dialer); nil: a net.Dialer. A
	// relay's agent binds its source address here; tests map the name to
	// a loopback server.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// RootCAs verifies mta-sts.<domain>'s certificate; nil: the system
	// roots.
	RootCAs *x509.CertPool
	// Timeout bounds the whole discovery, TXT lookup and HTTPS fetch
	// together; 0 means one minute (RFC 8461 §3.3). A shorter deadline on
	// the context wins.
	Timeout time.Duration
	// Now is the clock of FetchedAt and of certificate validity; nil:
	// time.Now.
	Now func() time.Time
}

// Fetch discovers domain's MTA-STS policy the way RFC 8461 §3 tells a
// sending MTA to:
//
//  1. look up the TXT records of "_mta-sts.<domain>", keep those that
//     start with v=STSv1, require exactly one, parse it;
//  2. GET https://mta-sts.<domain>/.well-known/mta-sts.txt, the
//     certificate verified for mta-sts.<domain>, redirects refused,
//     status 200, media type text/plain, at most MaxPolicySize bytes,
//     no proxy and no connection kept;
//  3. parse the policy.
//
// Each failure is a Discovery with its Class and Reason, not an error.
// The error is non-nil only when the domain is not a host name (ErrDomain)
// or ctx was canceled (the partial Discovery comes with it).
func (c *Client) Fetch(ctx context.Context, domain string) (Discovery, error) {
	domain = canonical(domain)
	if !validHostname(domain) {
		return Discovery{}, fmt.Errorf("%w: %q is not a host name", ErrDomain, clip(domain))
	}
	d := Discovery{Domain: domain, FetchedAt: c.now()}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()

	rec, ok := c.lookupRecord(ctx, &d)
	if ok {
		d.ID = rec.ID
		var body []byte
		if body, ok = c.fetchPolicy(ctx, &d); ok {
			c.parse(body, &d)
		}
	}
	if errors.Is(parent.Err(), context.Canceled) {
		return d, fmt.Errorf("mtasts: fetching the policy of %s: %w", domain, parent.Err())
	}
	return d, nil
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return defaultTimeout
}

// maxDetail bounds a Detail: it quotes what servers and resolvers said.
const maxDetail = 1024

// fail records a failed step.
func (d *Discovery) fail(class Class, reason Reason, format string, args ...any) {
	d.Class, d.Reason, d.Detail = class, reason, clipN(fmt.Sprintf(format, args...), maxDetail)
}

// lookupRecord is step 1. It reports false when discovery stops here.
func (c *Client) lookupRecord(ctx context.Context, d *Discovery) (Record, bool) {
	var r Resolver = net.DefaultResolver
	if c.Resolver != nil {
		r = c.Resolver
	}
	name := "_mta-sts." + d.Domain
	// The trailing dot keeps a resolver's search list out of it.
	txts, err := r.LookupTXT(ctx, name+".")
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		d.fail(ClassNoPolicy, "", "no TXT record at %s: %s does not publish MTA-STS", name, d.Domain)
		return Record{}, false
	case err != nil && (isTimeout(err) || ctx.Err() != nil):
		d.fail(ClassRecordLookupFailed, ReasonTimeout, "looking up the TXT record %s timed out: %v", name, err)
		return Record{}, false
	case err != nil:
		d.fail(ClassRecordLookupFailed, ReasonDNS, "looking up the TXT record %s failed: %v", name, err)
		return Record{}, false
	}
	var sts []string
	for _, t := range txts {
		if IsCandidate(t) {
			sts = append(sts, t)
		}
	}
	switch len(sts) {
	case 0:
		if len(txts) == 0 {
			d.fail(ClassNoPolicy, "", "no TXT record at %s: %s does not publish MTA-STS", name, d.Domain)
			return Record{}, false
		}
		d.fail(ClassNoPolicy, "", "%d TXT record(s) at %s, none starting with v=STSv1: %s does not publish MTA-STS", len(txts), name, d.Domain)
		return Record{}, false
	case 1:
	default:
		d.fail(ClassRecordInvalid, ReasonSeveralRecords, "%d TXT records at %s start with v=STSv1; exactly one is allowed, so senders treat %s as having no policy", len(sts), name, d.Domain)
		return Record{}, false
	}
	d.Record = clipN(sts[0], 512)
	rec, err := ParseRecord(sts[0])
	if err != nil {
		d.fail(ClassRecordInvalid, ReasonSyntax, "%v; senders treat %s as having no policy", err, d.Domain)
		return Record{}, false
	}
	return rec, true
}

// fetchPolicy is step 2. It reports false when discovery stops here.
func (c *Client) fetchPolicy(ctx context.Context, d *Discovery) ([]byte, bool) {
	d.URL = "https://mta-sts." + d.Domain + "/.well-known/mta-sts.txt"
	resp, err := c.httpClient().Do(c.request(ctx, d.URL))
	if err != nil {
		reason, text := fetchError(ctx, err)
		d.fail(ClassPolicyFetchFailed, reason, "fetching %s: %s", d.URL, text)
		return nil, false
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		d.fail(ClassPolicyFetchFailed, ReasonRedirect, "%s answered %s with a redirect to %q; senders must not follow redirects (RFC 8461 §3.3)",
			d.URL, resp.Status, clip(resp.Header.Get("Location")))
		return nil, false
	case resp.StatusCode != http.StatusOK:
		d.fail(ClassPolicyFetchFailed, ReasonHTTPStatus, "%s answered %q, not 200 OK", d.URL, clip(resp.Status))
		return nil, false
	}
	ct := resp.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "text/plain" {
		d.fail(ClassPolicyFetchFailed, ReasonContentType, "%s is served as %q, not text/plain", d.URL, clip(ct))
		return nil, false
	}
	if resp.ContentLength > MaxPolicySize {
		d.fail(ClassPolicyFetchFailed, ReasonTooLarge, "%s is %d bytes, more than the %d a sender reads", d.URL, resp.ContentLength, MaxPolicySize)
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		reason, text := fetchError(ctx, err)
		d.fail(ClassPolicyFetchFailed, reason, "reading %s: %s", d.URL, text)
		return nil, false
	}
	if len(body) > MaxPolicySize {
		d.fail(ClassPolicyFetchFailed, ReasonTooLarge, "%s is more than the %d bytes a sender reads", d.URL, MaxPolicySize)
		return nil, false
	}
	return body, true
}

// parse is step 3.
func (c *Client) parse(body []byte, d *Discovery) {
	p, err := ParsePolicy(string(body))
	if err != nil {
		d.fail(ClassPolicyInvalid, ReasonSyntax, "%s: %v", d.URL, err)
		return
	}
	d.Class, d.Policy = ClassOK, &p
}

// request is the policy GET.
func (c *Client) request(ctx context.Context, u string) *http.Request {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		// u is built from a validated host name: it always parses.
		panic(fmt.Sprintf("mtasts: policy URL %q: %v", u, err))
	}
	req.Header.Set("User-Agent", "gmailtls-mtasts")
	req.Close = true
	return req
}

// httpClient is a client for one fetch: no redirects, no proxy, no
// connection kept, the certificate verified against RootCAs for the URL's
// host name, mta-sts.<domain>.
func (c *Client) httpClient() *http.Client {
	dial := c.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            dial,
			TLSClientConfig:        &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12, Time: c.Now},
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: maxResponseHeaderBytes,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// fetchError sorts an HTTPS error into a reason and words it.
func fetchError(ctx context.Context, err error) (Reason, string) {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		dnsErr    *net.DNSError
		opErr     *net.OpError
		alert     tls.AlertError
		recordErr tls.RecordHeaderError
	)
	switch {
	case ctx.Err() != nil:
		// The caller's deadline ended the fetch, whatever step it cut
		// short (a handshake cut mid-way reads as a TLS error otherwise).
		return ReasonTimeout, fmt.Sprintf("timed out: %v", err)
	case errors.As(err, &unknownCA):
		return ReasonCertUntrusted, fmt.Sprintf("the certificate is not signed by a trusted CA: %v", err)
	case errors.As(err, &hostname):
		return ReasonCertHostname, fmt.Sprintf("the certificate is not valid for the host name: %v", err)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return ReasonCertExpired, fmt.Sprintf("the certificate is expired or not yet valid: %v", err)
	case errors.As(err, &invalid):
		return ReasonCertUntrusted, fmt.Sprintf("the certificate does not verify: %v", err)
	case errors.As(err, &dnsErr):
		return ReasonDNS, fmt.Sprintf("the policy host does not resolve: %v", err)
	case isTimeout(err):
		return ReasonTimeout, fmt.Sprintf("timed out: %v", err)
	case errors.Is(err, http.ErrSchemeMismatch):
		return ReasonTLS, "the TLS handshake failed: the server speaks plain HTTP on port 443"
	case errors.As(err, &alert), errors.As(err, &recordErr), errors.As(err, &opErr) && opErr.Op == "remote error":
		return ReasonTLS, fmt.Sprintf("the TLS handshake failed: %v", err)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return ReasonConnect, fmt.Sprintf("cannot connect: %v", err)
	}
	return ReasonHTTP, err.Error()
}

// isTimeout reports whether err is a deadline or a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// clipN shortens s to n bytes.
func clipN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
