package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/mtasts"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// ErrMTASTSAgent says a relay's MTA-STS policy was not fetched because the
// relay is not local and cannot fetch it itself: the policy a relay sees
// is the one that matters (docs/architecture.md), so the bot does not
// fetch it in its stead.
var ErrMTASTSAgent = errors.New("this relay cannot fetch the MTA-STS policy itself")

// mtastsFetcher is a relay whose agent fetches the MTA-STS policy itself
// (relay.Agent, GET /v1/mtasts).
type mtastsFetcher interface {
	MTASTS(ctx context.Context) (mtasts.Discovery, error)
}

// agentMTASTS asks the relay's agent for the policy as it fetched it; not
// cached, as each agent has its own view.
func (m *Monitor) agentMTASTS(ctx context.Context, relayName string, r relay.Runner) (*mtasts.Discovery, error) {
	f, ok := r.(mtastsFetcher)
	if !ok {
		return nil, ErrMTASTSAgent
	}
	d, err := f.MTASTS(ctx)
	switch {
	case err != nil && agentNotFound(err):
		return nil, fmt.Errorf("the agent of %s predates the MTA-STS view (GET /v1/mtasts answered 404): upgrade it", relayName)
	case err != nil:
		return nil, err
	}
	return &d, nil
}

// stsCache keeps each domain's last valid MTA-STS policy for its max_age,
// as a sending MTA caches it (RFC 8461 §3.3): within max_age only the TXT
// record is looked up again, and a changed id fetches the policy anew.
type stsCache struct {
	mu      sync.Mutex
	entries map[string]stsEntry
}

type stsEntry struct {
	d       mtasts.Discovery
	expires time.Time
}

// MTASTS returns the MTA-STS discovery of the configured target domain as
// relayName would see it, or nil without an error when the target's MX
// hosts are pinned (there is no domain whose policy applies) or the
// Monitor has no MTA-STS client (Deps.MTASTS). A local
// relay fetches it in process with Deps.MTASTS; a valid policy is cached
// per domain for its max_age and fetched again when the TXT record's id
// changes. A relay on an agent fetches it itself (GET /v1/mtasts, with its
// own resolver and dialer); a relay that cannot gives ErrMTASTSAgent.
func (m *Monitor) MTASTS(ctx context.Context, snap *Snapshot, relayName string) (*mtasts.Discovery, error) {
	t := snap.Config.Target
	if m.stsClient == nil || len(t.MX) > 0 || strings.TrimSpace(t.Domain) == "" {
		return nil, nil
	}
	r, err := snap.Runner(relayName)
	if err != nil {
		return nil, err
	}
	if r.Kind() != relay.KindLocal {
		return m.agentMTASTS(ctx, relayName, r)
	}
	domain := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(t.Domain), "."))
	now := m.now()
	m.sts.mu.Lock()
	e, cached := m.sts.entries[domain]
	m.sts.mu.Unlock()
	if cached && now.Before(e.expires) && m.stsSameID(ctx, domain, e.d.ID) {
		d := e.d
		return &d, nil
	}
	d, err := m.stsClient.Fetch(ctx, domain)
	if err != nil {
		return nil, err
	}
	if d.Class == mtasts.ClassOK && d.Policy != nil {
		m.sts.mu.Lock()
		if m.sts.entries == nil {
			m.sts.entries = map[string]stsEntry{}
		}
		m.sts.entries[domain] = stsEntry{d: d, expires: now.Add(time.Duration(d.Policy.MaxAge) * time.Second)}
		m.sts.mu.Unlock()
	}
	return &d, nil
}

// stsSameID looks up "_mta-sts.<domain>" and reports whether its one
// v=STSv1 record still has id. A failed lookup keeps the cached policy, as
// RFC 8461 §3.3 asks of senders.
func (m *Monitor) stsSameID(ctx context.Context, domain, id string) bool {
	var res mtasts.Resolver = net.DefaultResolver
	if m.stsClient.Resolver != nil {
		res = m.stsClient.Resolver
	}
	txt, err := res.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		return true
	}
	var found []mtasts.Record
	for _, s := range txt {
		if !mtasts.IsCandidate(s) {
			continue
		}
		rec, perr := mtasts.ParseRecord(s)
		if perr != nil {
			return false
		}
		found = append(found, rec)
	}
	return len(found) == 1 && found[0].ID == id
}

// mtastsEvidence judges the relay's MTA-STS discovery against the MX hosts
// and certificates of results. Neither is set when the MX hosts are
// pinned; the string says, for people, why there is no report.
func (m *Monitor) mtastsEvidence(ctx context.Context, snap *Snapshot, relayName string, results []storage.StoredResult) (*mtasts.Report, string) {
	sctx, cancel := context.WithTimeout(ctx, mtastsTimeout)
	defer cancel()
	d, err := m.MTASTS(sctx, snap, relayName)
	switch {
	case err != nil:
		if !errors.Is(err, ErrMTASTSAgent) {
			m.log.Warn("could not check the MTA-STS policy", "relay", relayName, "error", err)
		}
		return nil, err.Error()
	case d == nil:
		return nil, ""
	}
	prs := make([]probe.Result, 0, len(results))
	for _, sr := range results {
		prs = append(prs, sr.Result)
	}
	rep := mtasts.Judge(*d, nil, prs)
	return &rep, ""
}

// mtastsTimeout bounds the MTA-STS discovery behind Evidence.
const mtastsTimeout = 30 * time.Second
