package monitor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/maillog"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/relay/mta"
	"github.com/gmailtls/gmailtls/storage"
)

// Check says what to probe and why. Prepare it against a Snapshot to
// validate it once and pin the configuration it runs under; CheckRelay and
// CheckAll prepare one that is not yet against the configuration in force.
type Check struct {
	// Relay is the relay CheckRelay probes; CheckAll probes every
	// configured relay and leaves it empty.
	Relay string
	// MX narrows the probes to these hosts of the configured target
	// (--mx arguments, see Snapshot.ResolveMX); empty: all of it.
	MX []string
	// Trigger is recorded on each run (message.SourceSchedule, …) and
	// RequestedBy names who asked.
	Trigger     message.Source
	RequestedBy string
	// SkipPaused leaves the relays paused in storage out of CheckAll (the
	// scheduled round); "check all" probes them too.
	SkipPaused bool
	// OnResult, when set, is called with each result as it arrives, before
	// anything is stored: a local relay's one MX address at a time (from
	// several goroutines at once, several relays too under CheckAll), an
	// agent's all at once when it answers. For progress shown to a person
	// waiting; it must not block for long.
	OnResult func(probe.Result)

	snap *Snapshot // set by Prepare
}

// CheckResult is one relay probed, stored and evaluated.
type CheckResult struct {
	Relay string
	// Kind is the relay's kind (local or agent).
	Kind        string
	Trigger     message.Source
	RequestedBy string
	// Options are the probe options used (MX narrowed to configured
	// target entries).
	Options relay.Options
	// RunID and ResultIDs are the stored ids; ResultIDs[i] belongs to
	// Report.Results[i].
	RunID     int64
	ResultIDs []int64
	Report    probe.Report
	// State is the relay's escalation state after this run, Global the
	// state across relays.
	State  escalation.RelayState
	Global escalation.RelayState
	// Changes are the level changes this run caused (stored as events).
	Changes []escalation.Change
	// NotStored is why the run could not be stored (the disk is full…),
	// nil when it was. Such a run is what the probe found, shown to who
	// asked but not in history and never evaluated.
	NotStored error
	// Control is the control probe run beside it ([target] control_mx),
	// nil when none is configured.
	Control *Control
}

// Control is the probe of the control destination ([target] control_mx),
// run through the same relay at the same time as its Gmail probe. Its
// results are never stored nor counted as Gmail results: only whether it
// failed is kept with the run (storage.Run.ControlFailed), for the scope
// local_infrastructure.
type Control struct {
	// MX are the control hosts as configured.
	MX     []string
	Report probe.Report
	// Err is why the control could not be probed (the relay's agent does
	// not list it…): then it is not judged.
	Err error
}

// Failed reports whether the control was probed and failed toward a
// destination (a failure of the relay's agent alone judges nothing).
func (c *Control) Failed() bool {
	if c == nil || c.Err != nil || c.Report.OK() {
		return false
	}
	for _, r := range c.Report.Results {
		if !r.OK && !r.Failure.IsRelayFailure() {
			return true
		}
	}
	return false
}

// ErrNotStored wraps a storage failure after the probe ran: the
// CheckResult returned with it holds the probe's report, with NotStored
// set.
var ErrNotStored = errors.New("the results were not stored")

// OK reports whether every result of the run succeeded.
func (c CheckResult) OK() bool { return c.Report.OK() }

// Failed returns the failing results with their ids.
func (c CheckResult) Failed() (results []probe.Result, ids []int64) {
	for i, r := range c.Report.Results {
		if !r.OK {
			results = append(results, r)
			if i < len(c.ResultIDs) {
				ids = append(ids, c.ResultIDs[i])
			}
		}
	}
	return results, ids
}

// AgentOnly reports whether every failure of the run is the relay agent's
// (agent_unreachable, agent_error): Gmail was not judged.
func (c CheckResult) AgentOnly() bool {
	failed, _ := c.Failed()
	if len(failed) == 0 {
		return false
	}
	for _, r := range failed {
		if !r.Failure.IsRelayFailure() {
			return false
		}
	}
	return true
}

// prepared returns c prepared against the configuration in force unless
// it already is.
func (m *Monitor) prepared(c Check) (Check, error) {
	if c.snap != nil {
		return c, nil
	}
	return m.Snapshot().Prepare(c)
}

// CheckRelay probes c.Relay, stores the run (with its trigger and who
// asked), re-evaluates escalation from storage, stores the level changes as
// events and hands the Evaluation to the subscribers. Failed probes are
// results, not errors: the error means the check could not run or not be
// stored.
func (m *Monitor) CheckRelay(ctx context.Context, c Check) (CheckResult, error) {
	c, err := m.prepared(c)
	if err != nil {
		return CheckResult{}, err
	}
	if c.Relay == "" {
		_, err := c.snap.Runner("")
		return CheckResult{}, err
	}
	if err := m.rateLimit(c, []string{c.Relay}); err != nil {
		return CheckResult{}, err
	}
	res, err := m.probeAndRecord(ctx, c, c.Relay)
	if err != nil {
		m.levelsOf(ctx, c.snap, []*CheckResult{&res})
		return res, err
	}
	checks := []CheckResult{res}
	if _, err := m.evaluate(ctx, c.snap, checks, c.Trigger); err != nil {
		return res, err
	}
	return checks[0], nil
}

// CheckAll probes every configured relay at once (bounded by
// Deps.Concurrency), stores each run, then evaluates escalation once. With
// c.SkipPaused (the scheduler), relays paused in storage are left out. The
// results come back sorted by relay name; a relay that could not be
// probed at all is logged and left out, and the error reports it.
func (m *Monitor) CheckAll(ctx context.Context, c Check) ([]CheckResult, error) {
	c, err := m.prepared(c)
	if err != nil {
		return nil, err
	}
	names := c.snap.Names()
	if c.SkipPaused {
		if names, err = m.activeRelays(ctx, c.snap); err != nil {
			return nil, err
		}
	}
	if err := m.rateLimit(c, names); err != nil {
		return nil, err
	}
	results := make([]*CheckResult, len(names))
	errs := make([]error, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.concurrency)
	for i, name := range names {
		g.Go(func() error {
			defer func() {
				if p := recover(); p != nil {
					errs[i] = fmt.Errorf("relay %s: internal error: %v", name, p)
					m.log.Error("monitor: panic while probing a relay", "relay", name, "panic", p)
				}
			}()
			res, err := m.probeAndRecord(gctx, c, name)
			if err != nil {
				errs[i] = err
				m.log.Warn("monitor: relay check failed", "relay", name, "err", err)
				if res.NotStored != nil {
					results[i] = &res // shown, not evaluated
				}
				return nil // one relay never cancels the others
			}
			results[i] = &res
			return nil
		})
	}
	_ = g.Wait()
	m.levelsOf(ctx, c.snap, results)
	var out, stored []CheckResult
	for _, r := range results {
		if r != nil {
			out = append(out, *r)
			if r.NotStored == nil {
				stored = append(stored, *r)
			}
		}
	}
	if len(stored) > 0 {
		if _, err := m.evaluate(ctx, c.snap, stored, c.Trigger); err != nil {
			return out, err
		}
		// evaluate filled in the stored runs' states and changes.
		j := 0
		for i := range out {
			if out[i].NotStored == nil {
				out[i] = stored[j]
				j++
			}
		}
	}
	return out, errors.Join(errs...)
}

// rateLimit takes the tokens of an on-demand check of relays, or says how
// long to wait ([ErrRateLimited]). Scheduled rounds and confirmations pass.
func (m *Monitor) rateLimit(c Check, relays []string) error {
	if !limited(c.Trigger) || len(relays) == 0 {
		return nil
	}
	if err := m.limits.take(m.now(), c.snap.Config.Probing, c.RequestedBy, relays); err != nil {
		m.log.Info("monitor: on-demand check rate limited", "user", c.RequestedBy, "relays", relays, "err", err)
		return err
	}
	return nil
}

// levelsOf fills in the levels of the checks that ran but could not be
// stored: the levels stored history gives, which such a check leaves as
// they were.
func (m *Monitor) levelsOf(ctx context.Context, snap *Snapshot, checks []*CheckResult) {
	var asmt *escalation.Assessment
	for _, c := range checks {
		if c == nil || c.NotStored == nil {
			continue
		}
		if asmt == nil {
			a, err := m.assess(ctx, m.now(), snap)
			if err != nil {
				return
			}
			asmt = &a
		}
		c.State, c.Global = stateOf(*asmt, c.Relay), asmt.Global
	}
}

// Round is the scheduler's probing round: CheckAll of the relays not
// paused, with trigger "schedule", evaluated once. Its Evaluation reaches
// the subscribers like any other, so the alerter reconciles with it
// (without evaluating again); a round that probed nothing (every relay
// paused) is evaluated all the same, so that the alerter still catches up.
func (m *Monitor) Round(ctx context.Context) error {
	c, err := m.Snapshot().Prepare(Check{Trigger: message.SourceSchedule, RequestedBy: "schedule", SkipPaused: true})
	if err != nil {
		return err
	}
	checks, err := m.CheckAll(ctx, c)
	if ctx.Err() != nil {
		// Shutdown (SIGTERM) cut the round short: the relays it did not
		// finish stored nothing, and there is nothing new to evaluate.
		return err
	}
	if len(checks) == 0 {
		if _, eerr := m.evaluate(ctx, c.snap, nil, c.Trigger); eerr != nil {
			err = errors.Join(err, eerr)
		}
	}
	return err
}

// ActiveRelays lists the configured relays that are not paused, sorted:
// those the scheduled round probes, and those the alerter may ask for a
// second opinion.
func (m *Monitor) ActiveRelays(ctx context.Context) ([]string, error) {
	return m.activeRelays(ctx, m.Snapshot())
}

// activeRelays is ActiveRelays under snap: the one place that decides
// what "paused" means.
func (m *Monitor) activeRelays(ctx context.Context, snap *Snapshot) ([]string, error) {
	rels, err := m.store.Relays(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("reading which relays are paused: %w", err)
	}
	now := m.now()
	paused := map[string]bool{}
	for _, r := range rels {
		if r.Paused(now) {
			paused[r.Name] = true
		}
	}
	return slices.DeleteFunc(slices.Clone(snap.Names()), func(n string) bool { return paused[n] }), nil
}

// probeAndRecord probes one relay of the prepared check and stores the
// run, without evaluating.
func (m *Monitor) probeAndRecord(ctx context.Context, c Check, relayName string) (CheckResult, error) {
	r, err := c.snap.Runner(relayName)
	if err != nil {
		return CheckResult{}, err
	}
	opts := relay.Options{MX: slices.Clone(c.MX)}
	if c.OnResult != nil {
		opts.OnResult = func(res probe.Result) {
			if ctx.Err() == nil { // what a cancelled probe saw is not a result
				c.OnResult(res)
			}
		}
	}
	if r.Kind() == relay.KindAgent {
		// On the relay itself, compare with the MTA's own TLS stack (the
		// agent runs it when its [agent] mta_stack allows).
		opts.MTAStack = true
	}
	started := m.now()
	var wg sync.WaitGroup
	if iq, ok := r.(relay.InfoQueuer); ok && r.Kind() == relay.KindAgent {
		wg.Go(func() { m.sampleQueue(ctx, relayName, iq) })
	}
	if pr, ok := r.(relay.PolicyReader); ok && r.Kind() == relay.KindAgent {
		wg.Go(func() { m.samplePolicy(ctx, relayName, pr) })
	}
	var mailLog maillog.Summary
	if lr, ok := r.(relay.LogReader); ok {
		wg.Go(func() { mailLog = m.readLog(ctx, relayName, lr) })
	}
	var control *Control
	if hosts := controlMX(c.snap); len(hosts) > 0 {
		control = &Control{MX: slices.Clone(hosts)}
		wg.Go(func() { control.Report, control.Err = r.Probe(ctx, relay.Options{MX: slices.Clone(hosts)}) })
	}
	rep, err := r.Probe(ctx, opts)
	wg.Wait()
	if control != nil && control.Err != nil && ctx.Err() == nil {
		m.log.Warn("monitor: the control MX could not be probed", "relay", relayName, "control_mx", control.MX, "err", control.Err)
	}
	if ctx.Err() != nil {
		// Interrupted (Ctrl-C, shutdown): what a cancelled probe saw is
		// not a result.
		return CheckResult{}, fmt.Errorf("check %s: %w", relayName, context.Cause(ctx))
	}
	if err == nil && c.OnResult != nil && r.Kind() == relay.KindAgent {
		// An agent answers in one piece: its results are handed over now.
		for _, res := range rep.Results {
			res.Relay = cmp.Or(res.Relay, relayName)
			c.OnResult(res)
		}
	}
	if err != nil {
		if errors.Is(err, relay.ErrNotConfigured) {
			// Said once: ErrTarget's "not a configured target", then why.
			return CheckResult{}, fmt.Errorf("%w: %s", ErrTarget, strings.TrimPrefix(err.Error(), relay.ErrNotConfigured.Error()+": "))
		}
		return CheckResult{}, fmt.Errorf("check %s: %w", relayName, err)
	}
	if rep.Relay == "" {
		rep.Relay = relayName
	}
	if rep.StartedAt.IsZero() {
		rep.StartedAt = started
	}
	for i := range rep.Results {
		if rep.Results[i].Relay == "" {
			rep.Results[i].Relay = relayName
		}
	}
	if mailLog.Available {
		m.recordLogSample(ctx, relayName, LogSampleOf(mailLog, rep.Results))
	}
	run := storage.Run{Relay: relayName, Trigger: c.Trigger, RequestedBy: c.RequestedBy, StartedAt: rep.StartedAt,
		ControlFailed: control.Failed()}
	// The run is stored even if the caller goes away now: the probe ran.
	runID, ids, err := m.store.RecordRun(context.WithoutCancel(ctx), run, rep.Results)
	if err != nil {
		// The probe ran: who asked still sees what it found.
		err = fmt.Errorf("check %s: %w: %w", relayName, ErrNotStored, err)
		return CheckResult{Relay: relayName, Kind: r.Kind(), Trigger: c.Trigger, RequestedBy: c.RequestedBy,
			Options: opts, Report: rep, NotStored: err, Control: control}, err
	}
	m.log.Debug("relay checked", "relay", relayName, "run", runID, "results", len(rep.Results), "ok", rep.OK(), "trigger", c.Trigger)
	return CheckResult{
		Relay:       relayName,
		Kind:        r.Kind(),
		Trigger:     c.Trigger,
		RequestedBy: c.RequestedBy,
		Options:     opts,
		RunID:       runID,
		ResultIDs:   ids,
		Report:      rep,
		Control:     control,
	}, nil
}

// controlMX are the control hosts of snap's configuration ([target]
// control_mx), none when there is none.
func controlMX(snap *Snapshot) []string {
	if snap.Config == nil {
		return nil
	}
	return snap.Config.Target.ControlMX
}

// queueTimeout bounds the queue request made beside an agent's probe.
const queueTimeout = 15 * time.Second

// sampleQueue asks an agent for its Gmail-bound queue and stores the
// sample, for the queue rule of escalation and for evidence. Failures are
// logged only.
func (m *Monitor) sampleQueue(ctx context.Context, relayName string, iq relay.InfoQueuer) {
	ctx, cancel := context.WithTimeout(ctx, queueTimeout)
	defer cancel()
	q, err := iq.Queue(ctx)
	if err != nil || !q.Available {
		m.log.Debug("no queue sample from relay", "relay", relayName, "err", err, "reason", q.Error)
		return
	}
	s := storage.QueueSample{Relay: relayName, At: m.now(), Deferred: q.Deferred, OldestAge: q.OldestAge,
		Recipients: q.Recipients, TopReason: q.TopReason}
	if err := m.store.RecordQueueSample(context.WithoutCancel(ctx), s); err != nil {
		m.log.Warn("could not store a queue sample", "relay", relayName, "error", err)
	}
}

// samplePolicy asks an agent for its MTA's TLS policy toward Gmail and
// keeps what a TLS failure does to Gmail-bound mail, in memory, for the
// TLS policy rules of escalation (docs/architecture.md, "TLS policy
// rules"). It is not stored: a policy is configuration, not history, and
// the next check after a restart reads it again. A relay whose policy
// cannot be read loses its entry; failures are logged only.
func (m *Monitor) samplePolicy(ctx context.Context, relayName string, pr relay.PolicyReader) {
	ctx, cancel := context.WithTimeout(ctx, queueTimeout)
	defer cancel()
	p, err := pr.Policy(ctx)
	m.policyMu.Lock()
	defer m.policyMu.Unlock()
	if m.policies == nil {
		m.policies = map[string]escalation.TLSPolicy{}
	}
	if err != nil || !p.Available {
		m.log.Debug("no TLS policy from relay", "relay", relayName, "err", err, "reason", p.Error)
		delete(m.policies, relayName)
		return
	}
	m.policies[relayName] = TLSPolicyOf(relayName, p)
}

// TLSPolicyOf is what escalation needs of a relay's TLS policy: whether
// a TLS failure makes Gmail-bound mail wait or go out without TLS, and
// the setting that says so.
func TLSPolicyOf(relayName string, p relay.Policy) escalation.TLSPolicy {
	tp := escalation.TLSPolicy{Relay: relayName,
		MailWaits:  p.OnTLSFailure == mta.TLSFailureStalls,
		WithoutTLS: p.OnTLSFailure == mta.TLSFailurePlaintext}
	switch {
	case p.MTASTSResolver != "" && p.PolicyEntry == "":
		tp.Setting = "the MTA-STS policy of " + p.MTASTSResolver
	case p.PolicyEntry != "":
		tp.Setting = "the TLS policy entry for " + p.Domain + " (" + p.PolicyEntry + ")"
	case p.EffectiveLevel != "":
		tp.Setting = "smtp_tls_security_level=" + p.EffectiveLevel
	case p.Exim != nil && p.Exim.HostsRequireTLS != "":
		tp.Setting = "Exim's hosts_require_tls = " + p.Exim.HostsRequireTLS
	case p.Exim != nil:
		tp.Setting = "Exim's remote_smtp TLS settings"
	}
	return tp
}

// tlsPolicies are the relays' TLS policies as last read, for the
// configured relays.
func (m *Monitor) tlsPolicies(runners map[string]relay.Runner) []escalation.TLSPolicy {
	m.policyMu.Lock()
	defer m.policyMu.Unlock()
	out := make([]escalation.TLSPolicy, 0, len(m.policies))
	for name, tp := range m.policies {
		if _, ok := runners[name]; ok {
			out = append(out, tp)
		}
	}
	return out
}

// logSampleTimeout bounds the mail log read made beside a probe.
const logSampleTimeout = 30 * time.Second

// sampleLogWindow is the window of the mail log read beside a probe: the
// last hour (docs/architecture.md, "Mail log rules").
const sampleLogWindow = time.Hour

// readLog reads the relay's mail log over the last hour beside its probe.
// A relay without a mail log, or one that cannot be read, gives a Summary
// that is not Available; failures are logged only.
func (m *Monitor) readLog(ctx context.Context, relayName string, lr relay.LogReader) maillog.Summary {
	ctx, cancel := context.WithTimeout(ctx, logSampleTimeout)
	defer cancel()
	s, err := lr.Log(ctx, sampleLogWindow)
	if err != nil || !s.Available {
		m.log.Debug("no mail log sample from relay", "relay", relayName, "err", err, "reason", s.Error)
		return maillog.Summary{}
	}
	return s
}

// recordLogSample stores a mail log sample; failures are logged only.
func (m *Monitor) recordLogSample(ctx context.Context, relayName string, s storage.LogSample) {
	s.Relay, s.At = relayName, m.now()
	if err := m.store.RecordLogSample(context.WithoutCancel(ctx), s); err != nil {
		m.log.Warn("could not store a mail log sample", "relay", relayName, "error", err)
	}
}

// gmailDomains are the recipient domains that are Gmail-bound by name;
// other domains count when the log shows them tried on the target's MX.
var gmailDomains = map[string]bool{"gmail.com": true, "googlemail.com": true}

// LogSampleOf sums what a mail log says toward the target of a probe run:
// the MTA's TLS and connection failures and its deliveries toward the MX
// addresses (or host names) the run probed, and the Gmail-bound queue IDs
// (a recipient at gmail.com or googlemail.com, or an attempt on one of
// those MX, so that Google-hosted Workspace domains count) still deferred
// or delivered after a failure. Relay and At are left to the caller.
func LogSampleOf(s maillog.Summary, results []probe.Result) storage.LogSample {
	ips, hosts := map[string]bool{}, map[string]bool{}
	for _, r := range results {
		if r.IP != "" {
			ips[r.IP] = true
		}
		if h := normHost(r.MX); h != "" {
			hosts[h] = true
		}
	}
	target := func(ip, host string) bool {
		return (ip != "" && ips[ip]) || (host != "" && hosts[normHost(host)])
	}
	out := storage.LogSample{Window: s.Until.Sub(s.Since)}
	for _, mx := range s.MX {
		if !target(mx.IP, mx.Host) {
			continue
		}
		out.TLSFailures += mx.TLSFailures
		out.ConnectFailures += mx.ConnectFailures
		out.Delivered += mx.Delivered
	}
	for _, q := range s.Queue {
		bound := false
		for _, d := range q.Domains {
			bound = bound || gmailDomains[strings.ToLower(d)]
		}
		for _, a := range q.Attempts {
			bound = bound || target(a.MXIP, a.MXHost)
		}
		if !bound {
			continue
		}
		if q.Delivered {
			out.DeliveredLater++
		} else {
			out.Stuck++
		}
	}
	return out
}

func normHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }
