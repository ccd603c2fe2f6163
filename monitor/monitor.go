// Package monitor is gmailtls's application service: what happens between
// "probe this relay" and "the levels changed", whoever asks for it (a slash
// command through package commands, the scheduler's probing round, the
// alerter's confirming re-probe, the CLI).
//
// What flows through it:
//
//  1. a caller takes one Snapshot of the configuration in force (the
//     configuration, the relay runners and the escalation policy, swapped
//     whole by Reload after SIGHUP) and prepares a Check against it: the
//     relay must be configured and every --mx host an entry of the
//     configured target. A Check is validated once, and everything done for
//     it (probes, queue samples, the evaluation) uses that one snapshot,
//     so a reload in the middle of a request never mixes two
//     configurations;
//  2. CheckRelay probes one relay, CheckAll every relay at once (bounded by
//     Deps.Concurrency, leaving out the relays paused in storage when
//     asked: the scheduled round); beside an agent relay's probe its
//     Gmail-bound mail queue is sampled and stored; every run is stored
//     with its trigger and who asked;
//  3. escalation is then evaluated once, under the evaluation lock, from
//     storage (the recent-results cache reads only what is new) with the
//     snapshot's relays and policy; each level change is stored as an
//     event, once, even across restarts;
//  4. the Evaluation (assessment, changes, the checks behind it) is handed
//     to every subscriber (Subscribe), outside the lock: the /metrics
//     level gauge, and the alerter, which reconciles alerts with it in its
//     own loop.
//
// Assess computes the current state without storing anything (status and
// reports: looking never changes what was announced); Status, Summary and
// Relays build on it the models of status, report and relays. Evidence gathers
// what an escalation needs (stored results and transcripts, the relay
// host and queue asked of its agent) as a model that package commands
// only presents.
package monitor

import (
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/mtasts"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// Deps is what a Monitor needs. Store is required.
type Deps struct {
	Store *storage.Store
	// Config and Runners are the configuration and its relays, by relay
	// name (relay.Runners builds them); Reload replaces both.
	Config  *config.Config
	Runners map[string]relay.Runner
	// Policy turns history into levels; the zero value means the policy
	// from the configuration's [escalation] section, taken again on every
	// Reload.
	Policy escalation.Policy
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives operational logs (default: discarded).
	Logger *slog.Logger
	// Concurrency bounds the relays probed at once by CheckAll ("check
	// all" and the scheduler's rounds; default 32). With five MX hosts per
	// relay that keeps up to 160 probes in flight: a round over 200 relays
	// whose servers answer after 100 ms takes about a second
	// (BenchmarkScheduledRound).
	Concurrency int
	// Hostname names this host in the evidence of local relays (default
	// os.Hostname).
	Hostname func() (string, error)
	// MTASTS fetches the target domain's MTA-STS policy for local relays
	// (Monitor.MTASTS); nil: no MTA-STS check. The daemon and the CLI pass
	// the zero Client (the system's resolver, dialer and roots); tests
	// inject a resolver, a dialer to a loopback HTTPS server and its CA.
	MTASTS *mtasts.Client
}

// Monitor probes relays, stores the runs, evaluates escalation and tells
// its subscribers. It is safe for concurrent use.
type Monitor struct {
	store       *storage.Store
	now         func() time.Time
	log         *slog.Logger
	concurrency int
	fixedPolicy escalation.Policy // zero: from the configuration
	hostname    func() (string, error)

	snap atomic.Pointer[Snapshot]

	subMu sync.RWMutex
	subs  []func(Evaluation)

	// evalMu serializes evaluations, so that a change is stored once, and
	// guards state, the escalation state carried between evaluations (nil
	// until the first one, which replays the stored history), the
	// recent-results cache and seq, the number of the last evaluation.
	evalMu sync.Mutex
	state  *escalation.Assessment
	recent recentCache
	seq    uint64
	// beforeStore, when set (tests only), runs between reading the
	// announced levels and storing the changes: where another replica's
	// evaluation can come in.
	beforeStore func()
	// limits rate-limits on-demand checks ([probing] user_burst …).
	limits limiter
	// policyMu guards policies, the agents' TLS policies as last read
	// beside a probe (samplePolicy), by relay.
	policyMu sync.Mutex
	policies map[string]escalation.TLSPolicy

	// stsClient fetches MTA-STS policies, sts caches them (mtasts.go).
	stsClient *mtasts.Client
	sts       stsCache
}

// New returns a Monitor over deps.
func New(deps Deps) *Monitor {
	m := &Monitor{
		store:       deps.Store,
		now:         deps.Now,
		log:         deps.Logger,
		concurrency: deps.Concurrency,
		fixedPolicy: deps.Policy,
		hostname:    deps.Hostname,
		stsClient:   deps.MTASTS,
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.hostname == nil {
		m.hostname = os.Hostname
	}
	if m.concurrency <= 0 {
		m.concurrency = 32
	}
	m.Reload(deps.Config, deps.Runners)
	return m
}

// Reload swaps the configuration and the relays (after SIGHUP). Requests
// under way keep the snapshot they took; history, queue samples and
// announced levels are kept.
func (m *Monitor) Reload(cfg *config.Config, runners map[string]relay.Runner) {
	m.snap.Store(NewSnapshot(cfg, runners, m.fixedPolicy))
}

// Snapshot returns the configuration in force. Take it once at the start
// of a request and pass it down.
func (m *Monitor) Snapshot() *Snapshot { return m.snap.Load() }

// Subscribe registers fn to be handed every Evaluation (after each
// CheckRelay, CheckAll and Evaluate), with its changes, if any, already
// stored as events. fn runs in the goroutine that evaluated, after the
// evaluation lock is released, so it may call back into the Monitor; it
// should return quickly (the caller waits). Two evaluations that end at
// once may reach fn in either order: Evaluation.Seq tells the newer.
func (m *Monitor) Subscribe(fn func(Evaluation)) {
	m.subMu.Lock()
	defer m.subMu.Unlock()
	m.subs = append(m.subs, fn)
}

// publish hands ev to every subscriber.
func (m *Monitor) publish(ev Evaluation) {
	m.subMu.RLock()
	subs := slices.Clone(m.subs)
	m.subMu.RUnlock()
	for _, fn := range subs {
		fn(ev)
	}
}

// PolicyFromConfig builds the escalation policy from the [escalation]
// section; zero values keep the engine's defaults.
func PolicyFromConfig(e config.Escalation) escalation.Policy {
	p := escalation.DefaultPolicy()
	if e.Consecutive > 0 {
		p.Consecutive = e.Consecutive
	}
	if len(e.MOfK) == 2 && e.MOfK[0] > 0 && e.MOfK[1] >= e.MOfK[0] {
		p.M, p.K = e.MOfK[0], e.MOfK[1]
	}
	if e.Window.Duration > 0 {
		p.Window = e.Window.Duration
	}
	if e.WindowCount > 0 {
		p.WindowCount = e.WindowCount
	}
	if e.RecoverAfter > 0 {
		p.RecoverAfter = e.RecoverAfter
	}
	if e.LogFailures > 0 {
		p.LogFailures = e.LogFailures
	}
	return p
}
