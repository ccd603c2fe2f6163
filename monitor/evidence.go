package monitor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/mtasts"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// Bounds of what Evidence asks and reads.
const (
	// queueTrendSamples is how many stored queue samples evidence reads
	// for the trend, and queueTrendWindow how far back.
	queueTrendSamples = 12
	queueTrendWindow  = 24 * time.Hour
	// infoTimeout bounds each agent request (info, queue) behind Evidence.
	infoTimeout = 10 * time.Second
)

// HistoryResult is one stored result: the probe result's own fields (as in
// `gmailtls probe --json`, with the transcript storage keeps: failures, and
// the newest success per relay and MX host) plus its storage ids and
// trigger.
type HistoryResult struct {
	ID      int64          `json:"id"`
	RunID   int64          `json:"run_id"`
	Trigger message.Source `json:"trigger"`
	probe.WireResult
}

// NewHistoryResult is the HistoryResult of a stored result.
func NewHistoryResult(r StoredResult) HistoryResult {
	return HistoryResult{ID: r.ID, RunID: r.RunID, Trigger: r.Trigger, WireResult: r.Result.Wire()}
}

// EvidenceModel is what an escalation to a network or Google team needs,
// as `gmailtls evidence --json` prints it: the relay host (from an agent's
// info, asked at that moment), its Gmail-bound queue, and every result of
// the failing run with its stored transcript.
type EvidenceModel struct {
	Relay string `json:"relay"`
	// Kind is the relay's kind; empty for a relay no longer configured.
	Kind string `json:"kind,omitempty"`
	// Host is the agent's description of the relay host; HostError says
	// why there is none when the agent was asked and did not answer.
	Host       *relay.Info `json:"host,omitempty"`
	HostError  string      `json:"host_error,omitempty"`
	ClockSkewS float64     `json:"clock_skew_s,omitempty"`
	// ThisHost names this host, for a local relay.
	ThisHost string `json:"this_host,omitempty"`
	// Queue is the agent's Gmail-bound queue (agent relays only).
	Queue *QueueEvidence `json:"queue,omitempty"`
	// Log is the relay MTA's own mail log around the failing run (relays
	// that read one: agents, and local relays with [agent] mail_log).
	Log *LogEvidence `json:"log,omitempty"`
	// Policy is the relay MTA's TLS policy toward Gmail (GET /v1/policy);
	// PolicyError says why there is none when the relay was asked.
	Policy      *relay.Policy `json:"policy,omitempty"`
	PolicyError string        `json:"policy_error,omitempty"`
	// MTASTS is the target domain's MTA-STS policy as the relay fetched
	// it, judged against the MX hosts and certificates of Results
	// (mtasts.Judge); MTASTSError says why there is none when the target
	// is a domain from DNS. Both are empty when the MX hosts are pinned.
	MTASTS      *mtasts.Report  `json:"mta_sts,omitempty"`
	MTASTSError string          `json:"mta_sts_error,omitempty"`
	RunID       int64           `json:"run_id,omitempty"`
	Results     []HistoryResult `json:"results"`

	// Skew is the agent's clock skew when significant (ClockSkewS).
	Skew time.Duration `json:"-"`
	// Stored are the results behind Results, failures first.
	Stored []StoredResult `json:"-"`
	// Transcripts are the full stored transcripts of the failing results
	// EvidenceQuery.Transcripts asked for, by result id.
	Transcripts map[int64][]string `json:"-"`
}

// QueueEvidence is a relay's Gmail-bound queue: read now from its agent,
// and the samples stored beside its probes over the last day.
type QueueEvidence struct {
	Available  bool    `json:"available"`
	Error      string  `json:"error,omitempty"`
	Deferred   int     `json:"deferred"`
	Recipients int     `json:"recipients"`
	OldestAgeS float64 `json:"oldest_age_s"`
	TopReason  string  `json:"top_reason,omitempty"`
	// Samples are the stored samples, oldest first.
	Samples []QueueSampleModel `json:"samples"`

	// AskFailed: the agent did not answer (not: answered "unavailable").
	AskFailed bool `json:"-"`
}

// QueueSampleModel is one stored queue sample.
type QueueSampleModel struct {
	At         time.Time `json:"at"`
	Deferred   int       `json:"deferred"`
	Recipients int       `json:"recipients"`
	OldestAgeS float64   `json:"oldest_age_s"`
	TopReason  string    `json:"top_reason,omitempty"`
}

// EvidenceQuery is what Evidence gathers: the results of Relay named by
// IDs (an Evidence button), or without IDs its latest failing run.
type EvidenceQuery struct {
	Relay string
	IDs   []int64
	// Transcripts is how many full transcripts of failing results to read,
	// among the first Within results (in the order of Stored).
	Transcripts, Within int
}

// Evidence gathers the evidence of a relay's results: the results and
// their transcripts from storage, the relay host's description and its
// queue, asked now of its agent. Without a failing run in the stored
// history it returns a model without results (and asks nothing). Results
// named by IDs must belong to the relay; those no longer stored are left
// out, and none at all is an error.
func (m *Monitor) Evidence(ctx context.Context, snap *Snapshot, q EvidenceQuery) (EvidenceModel, error) {
	var results []storage.StoredResult
	var err error
	if len(q.IDs) > 0 {
		if results, err = m.resultsByID(ctx, q.Relay, q.IDs); err != nil {
			return EvidenceModel{}, err
		}
	} else if results, err = m.latestFailingRun(ctx, q.Relay); err != nil {
		return EvidenceModel{}, err
	}
	if len(results) == 0 {
		return EvidenceModel{Relay: q.Relay, Results: []HistoryResult{}}, nil
	}
	ev := m.evidenceModel(ctx, snap, q.Relay, results)
	ev.Transcripts = map[int64][]string{}
	for i, sr := range results {
		if i >= q.Within || len(ev.Transcripts) >= q.Transcripts {
			break
		}
		if sr.OK {
			continue
		}
		if full, err := m.store.Result(ctx, sr.ID); err == nil && len(full.Transcript) > 0 {
			ev.Transcripts[sr.ID] = full.Transcript
		}
	}
	return ev, nil
}

// resultsByID reads the results ids of relayName.
func (m *Monitor) resultsByID(ctx context.Context, relayName string, ids []int64) ([]storage.StoredResult, error) {
	var results []storage.StoredResult
	for _, id := range ids {
		r, err := m.store.Result(ctx, id)
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			return nil, err
		}
		if r.Relay != relayName {
			return nil, fmt.Errorf("result %d does not belong to relay %s", id, relayName)
		}
		results = append(results, r)
	}
	if len(results) == 0 {
		return nil, fmt.Errorf("the results of %s behind that button are no longer stored", relayName)
	}
	return results, nil
}

// latestFailingRun reads every result of relayName's latest failing run,
// failures first; none without a failing run.
func (m *Monitor) latestFailingRun(ctx context.Context, relayName string) ([]storage.StoredResult, error) {
	last, err := m.store.History(ctx, storage.HistoryQuery{Relay: relayName, FailuresOnly: true, Limit: 1})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if len(last) == 0 {
		return nil, nil
	}
	f := last[0]
	// The run's results started within a few minutes of each other.
	around, err := m.store.History(ctx, storage.HistoryQuery{
		Relay: relayName, Since: f.StartedAt.Add(-15 * time.Minute), Until: f.StartedAt.Add(15 * time.Minute), WithTranscript: true,
	})
	if err != nil {
		return nil, err
	}
	var run []storage.StoredResult
	for _, r := range around {
		if r.RunID == f.RunID {
			run = append(run, r)
		}
	}
	slices.SortFunc(run, func(a, b storage.StoredResult) int {
		if a.OK != b.OK {
			if !a.OK {
				return -1
			}
			return 1
		}
		return int(a.ID - b.ID)
	})
	return run, nil
}

// evidenceModel gathers the evidence of results: the relay host's
// description and queue, asked now, beside the stored results.
func (m *Monitor) evidenceModel(ctx context.Context, snap *Snapshot, relayName string, results []storage.StoredResult) EvidenceModel {
	ev := EvidenceModel{Relay: relayName, Results: make([]HistoryResult, 0, len(results)), Stored: make([]StoredResult, 0, len(results))}
	for _, r := range results {
		sr := storedResult(r)
		ev.Stored = append(ev.Stored, sr)
		ev.Results = append(ev.Results, NewHistoryResult(sr))
	}
	if len(results) > 0 {
		ev.RunID = results[0].RunID
	}
	r, err := snap.Runner(relayName)
	if err != nil {
		return ev
	}
	ev.Kind = r.Kind()
	iq, isIQ := r.(relay.InfoQueuer)
	if isIQ {
		ictx, cancel := context.WithTimeout(ctx, infoTimeout)
		sent := m.now()
		in, ierr := iq.Info(ictx)
		received := m.now()
		cancel()
		if ierr != nil {
			ev.HostError = ierr.Error()
		} else {
			ev.Host = &in
			if skew := relay.ClockSkew(in, sent, received); skew > relay.SignificantSkew || skew < -relay.SignificantSkew {
				ev.Skew = skew
				ev.ClockSkewS = skew.Seconds()
			}
		}
	}
	if (ev.Host == nil || ev.Host.Hostname == "") && r.Kind() == relay.KindLocal {
		if name, herr := m.hostname(); herr == nil {
			ev.ThisHost = name
		}
	}
	// Queues are sampled on agent relays, as beside their probes.
	if isIQ && r.Kind() == relay.KindAgent {
		q := m.queueEvidence(ctx, relayName, iq)
		ev.Queue = &q
	}
	if lr, ok := r.(relay.LogReader); ok {
		le := m.logEvidence(ctx, relayName, lr, results)
		if le.Firewall != nil && le.Firewall.SourceIPs == nil && ev.Host != nil && len(ev.Host.OutboundIPs) > 0 {
			le.Firewall.SourceIPs = append([]string(nil), ev.Host.OutboundIPs...)
		}
		ev.Log = &le
	}
	// The TLS policy is the relay MTA's, asked of agents as the queue is:
	// a local relay's host is the bot's, seldom the relay MTA.
	if pr, ok := r.(relay.PolicyReader); ok && r.Kind() == relay.KindAgent {
		ev.Policy, ev.PolicyError = m.policyEvidence(ctx, relayName, pr)
	}
	ev.MTASTS, ev.MTASTSError = m.mtastsEvidence(ctx, snap, relayName, results)
	return ev
}

// policyEvidence asks the relay for its MTA's TLS policy toward Gmail. No
// policy is never an error: the second result says why in a sentence.
func (m *Monitor) policyEvidence(ctx context.Context, relayName string, pr relay.PolicyReader) (*relay.Policy, string) {
	pctx, cancel := context.WithTimeout(ctx, infoTimeout)
	p, err := pr.Policy(pctx)
	cancel()
	switch {
	case err != nil && agentNotFound(err):
		return nil, fmt.Sprintf("the agent of %s predates the TLS policy view (GET /v1/policy answered 404): upgrade it", relayName)
	case err != nil:
		m.log.Warn("could not read the relay's TLS policy", "relay", relayName, "error", err)
		return nil, "not available: " + err.Error()
	case !p.Available:
		return &p, cmp.Or(p.Error, "the relay's MTA configuration could not be read")
	}
	return &p, ""
}

// queueEvidence reads the relay's Gmail-bound queue from its agent, beside
// the samples stored with its probes.
func (m *Monitor) queueEvidence(ctx context.Context, relayName string, iq relay.InfoQueuer) QueueEvidence {
	var qe QueueEvidence
	qctx, cancel := context.WithTimeout(ctx, infoTimeout)
	q, qerr := iq.Queue(qctx)
	cancel()
	now := m.now()
	switch {
	case qerr != nil:
		qe.Error, qe.AskFailed = qerr.Error(), true
	case !q.Available:
		qe.Error = cmp.Or(q.Error, "the agent cannot read the queue")
	default:
		qe.Available = true
		qe.Deferred, qe.Recipients, qe.TopReason = q.Deferred, q.Recipients, q.TopReason
		qe.OldestAgeS = q.OldestAge.Seconds()
	}
	qe.Samples = []QueueSampleModel{}
	samples, err := m.store.QueueSamples(ctx, relayName, now.Add(-queueTrendWindow), queueTrendSamples)
	if err != nil {
		m.log.Warn("could not read queue samples", "relay", relayName, "error", err)
	}
	for _, s := range samples {
		qe.Samples = append(qe.Samples, QueueSampleModel{At: s.At, Deferred: s.Deferred, Recipients: s.Recipients,
			OldestAgeS: s.OldestAge.Seconds(), TopReason: s.TopReason})
	}
	return qe
}
