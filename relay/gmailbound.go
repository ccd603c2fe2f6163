package relay

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/relay/mta"
)

// MXResolver looks up a domain's MX records; *net.Resolver is one.
type MXResolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

// Gmail-bound classification bounds.
const (
	// DefaultMXCacheTTL is how long a domain's MX answer is trusted.
	DefaultMXCacheTTL = time.Hour
	// mxFailureTTL is how long a failed lookup is remembered (not Google's).
	mxFailureTTL = 5 * time.Minute
	// mxLookupTimeout bounds one MX lookup.
	mxLookupTimeout = 3 * time.Second
	// maxMXLookups bounds the new lookups of one Queue call; domains left
	// over are looked up on later calls.
	maxMXLookups = 200
	// mxLookupWorkers is how many lookups run at once.
	mxLookupWorkers = 8
	// maxMXCache bounds the domains remembered.
	maxMXCache = 10_000
)

// IsGoogleMXHost reports whether an MX host name is Google's: under
// google.com or googlemail.com (aspmx.l.google.com, smtp.google.com,
// gmail-smtp-in.l.google.com, alt1.aspmx.l.google.com, …).
func IsGoogleMXHost(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
	return strings.HasSuffix(h, ".google.com") || strings.HasSuffix(h, ".googlemail.com")
}

// GmailBound decides which recipient domains of the queue are Gmail-bound:
// gmail.com and googlemail.com, the domains configured by hand
// ([agent] gmail_domains), the domains whose MX hosts are Google's (looked
// up through Resolver, cached for TTL), and those the mail log says went
// to the target's MX hosts (MailLog). Safe for concurrent use.
type GmailBound struct {
	// Resolver looks up MX records; nil: no MX lookups.
	Resolver MXResolver
	// Domains are added by hand (lower-case, without a trailing dot).
	Domains []string
	// MailLog, when set, reports whether the mail log shows the delivery
	// attempts of queue id to domain going to one of the target's MX
	// hosts. The mail-log reader provides it.
	MailLog func(queueID, domain string) bool
	// TTL is how long an MX answer is cached (default DefaultMXCacheTTL).
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu    sync.Mutex
	cache map[string]mxEntry
}

type mxEntry struct {
	google  bool
	mx      string // the first Google MX host, for the report
	expires time.Time
}

func (g *GmailBound) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// Prepare looks up the MX records of the domains not yet cached (at most
// maxMXLookups of them, a few at a time), so that Func answers from the
// cache without waiting.
func (g *GmailBound) Prepare(ctx context.Context, domains []string) {
	if g == nil || g.Resolver == nil {
		return
	}
	now := g.now()
	var todo []string
	g.mu.Lock()
	for _, d := range domains {
		if d == "" || mta.IsGmailDomain(d) || g.configured(d) {
			continue
		}
		if e, ok := g.cache[d]; ok && now.Before(e.expires) {
			continue
		}
		todo = append(todo, d)
		if len(todo) >= maxMXLookups {
			break
		}
	}
	g.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(mxLookupWorkers, len(todo)) {
		wg.Go(func() {
			for d := range work {
				g.lookup(ctx, d)
			}
		})
	}
	for _, d := range todo {
		if ctx.Err() != nil {
			break
		}
		work <- d
	}
	close(work)
	wg.Wait()
}

func (g *GmailBound) lookup(ctx context.Context, domain string) {
	ctx, cancel := context.WithTimeout(ctx, mxLookupTimeout)
	defer cancel()
	mxs, err := g.Resolver.LookupMX(ctx, domain)
	e := mxEntry{}
	ttl := g.TTL
	if ttl <= 0 {
		ttl = DefaultMXCacheTTL
	}
	if err != nil && len(mxs) == 0 {
		ttl = min(ttl, mxFailureTTL)
	}
	for _, mx := range mxs {
		if mx != nil && IsGoogleMXHost(mx.Host) {
			e.google, e.mx = true, strings.TrimSuffix(strings.ToLower(mx.Host), ".")
			break
		}
	}
	e.expires = g.now().Add(ttl)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cache == nil {
		g.cache = map[string]mxEntry{}
	}
	if len(g.cache) >= maxMXCache {
		now := g.now()
		for k, v := range g.cache {
			if !now.Before(v.expires) {
				delete(g.cache, k)
			}
		}
		if len(g.cache) >= maxMXCache {
			return
		}
	}
	g.cache[domain] = e
}

func (g *GmailBound) configured(domain string) bool {
	for _, d := range g.Domains {
		if strings.EqualFold(strings.TrimSuffix(d, "."), domain) {
			return true
		}
	}
	return false
}

// GoogleMX returns the Google MX host cached for domain, if any.
func (g *GmailBound) GoogleMX(domain string) string {
	if g == nil {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if e, ok := g.cache[domain]; ok && e.google {
		return e.mx
	}
	return ""
}

// Func returns the rule for mta.SummarizeQueue. It answers from what
// Prepare cached (an expired answer still counts until it is looked up
// again) and never waits on DNS.
func (g *GmailBound) Func() mta.GmailBoundFunc {
	return func(id, domain string) string {
		switch {
		case domain == "":
			return ""
		case mta.IsGmailDomain(domain):
			return mta.BoundGmail
		case g == nil:
			return ""
		case g.configured(domain):
			return mta.BoundConfigured
		}
		g.mu.Lock()
		e, ok := g.cache[domain]
		g.mu.Unlock()
		if ok && e.google {
			return mta.BoundGoogleMX
		}
		if g.MailLog != nil && g.MailLog(id, domain) {
			return mta.BoundMailLog
		}
		return ""
	}
}
