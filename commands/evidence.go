package commands

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

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
	Queue   *QueueEvidence  `json:"queue,omitempty"`
	RunID   int64           `json:"run_id,omitempty"`
	Results []HistoryResult `json:"results"`

	skew   time.Duration
	stored []storage.StoredResult
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

	askFailed bool // the agent did not answer (not: answered "unavailable")
}

// QueueSampleModel is one stored queue sample.
type QueueSampleModel struct {
	At         time.Time `json:"at"`
	Deferred   int       `json:"deferred"`
	Recipients int       `json:"recipients"`
	OldestAgeS float64   `json:"oldest_age_s"`
	TopReason  string    `json:"top_reason,omitempty"`
}

func (h *Handler) runEvidence(ctx context.Context, c *call) (Reply, error) {
	return h.evidenceForRelay(ctx, c, c.cmd.Relay)
}

// evidenceResponse answers an Evidence button: the evidence of the results
// it names.
func (h *Handler) evidenceResponse(ctx context.Context, snap *monitor.Snapshot, b buttonValue) (message.Response, error) {
	var results []storage.StoredResult
	for _, id := range b.IDs {
		r, err := h.store.Result(ctx, id)
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			return message.Response{}, err
		}
		if r.Relay != b.Relay {
			return message.Response{}, fmt.Errorf("result %d does not belong to relay %s", id, b.Relay)
		}
		results = append(results, r)
	}
	if len(results) == 0 {
		return message.Response{}, fmt.Errorf("the results of %s behind that button are no longer stored", b.Relay)
	}
	m := h.evidenceModel(ctx, snap, b.Relay, results)
	return h.evidenceMessage(ctx, m), nil
}

// evidenceForRelay is "evidence <relay>": the latest failing run's evidence.
func (h *Handler) evidenceForRelay(ctx context.Context, c *call, relayName string) (Reply, error) {
	last, err := h.store.History(ctx, storage.HistoryQuery{Relay: relayName, FailuresOnly: true, Limit: 1})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return Reply{}, err
	}
	if len(last) == 0 {
		return Reply{Response: message.Response{
			Title:     fmt.Sprintf("%s: no failing probe in the stored history", relayName),
			Verdict:   message.VerdictOK,
			Summary:   relayName + ": nothing to show",
			Sections:  []message.Section{{Lines: []string{fmt.Sprintf("Run `%scheck %s` to probe it now.", c.prefix(), relayName)}}},
			Ephemeral: true,
		}, Data: EvidenceModel{Relay: relayName, Results: []HistoryResult{}}}, nil
	}
	f := last[0]
	// The run's results started within a few minutes of each other.
	around, err := h.store.History(ctx, storage.HistoryQuery{
		Relay: relayName, Since: f.StartedAt.Add(-15 * time.Minute), Until: f.StartedAt.Add(15 * time.Minute), WithTranscript: true,
	})
	if err != nil {
		return Reply{}, err
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
	m := h.evidenceModel(ctx, c.snap, relayName, run)
	return Reply{Response: h.evidenceMessage(ctx, m), Data: m}, nil
}

// evidenceModel gathers the evidence of results: the relay host's
// description and queue, asked now, beside the stored results.
func (h *Handler) evidenceModel(ctx context.Context, snap *monitor.Snapshot, relayName string, results []storage.StoredResult) EvidenceModel {
	m := EvidenceModel{Relay: relayName, Results: make([]HistoryResult, 0, len(results)), stored: results}
	for _, sr := range results {
		m.Results = append(m.Results, historyResult(sr))
	}
	if len(results) > 0 {
		m.RunID = results[0].RunID
	}
	r, err := snap.Runner(relayName)
	if err != nil {
		return m
	}
	m.Kind = r.Kind()
	iq, isIQ := r.(relay.InfoQueuer)
	if isIQ {
		ictx, cancel := context.WithTimeout(ctx, infoTimeout)
		sent := h.now()
		in, ierr := iq.Info(ictx)
		received := h.now()
		cancel()
		if ierr != nil {
			m.HostError = ierr.Error()
		} else {
			m.Host = &in
			if skew := relay.ClockSkew(in, sent, received); skew > relay.SignificantSkew || skew < -relay.SignificantSkew {
				m.skew = skew
				m.ClockSkewS = skew.Seconds()
			}
		}
	}
	if (m.Host == nil || m.Host.Hostname == "") && r.Kind() == relay.KindLocal {
		if name, herr := h.hostname(); herr == nil {
			m.ThisHost = name
		}
	}
	// Queues are sampled on agent relays, as beside their probes.
	if isIQ && r.Kind() == relay.KindAgent {
		q := h.queueModel(ctx, relayName, iq)
		m.Queue = &q
	}
	return m
}

// evidenceMessage shows an EvidenceModel: the relay host, its queue, then
// per result the source IP, MX host and IP, exact time with zone, stage,
// class, TLS and certificate details, the end of the failing transcripts,
// and the result ids.
func (h *Handler) evidenceMessage(ctx context.Context, m EvidenceModel) message.Response {
	resp := message.Response{
		Title:     fmt.Sprintf("%s: evidence", m.Relay),
		Verdict:   message.VerdictInfo,
		Ephemeral: true,
	}
	host := message.Section{Heading: "Relay host"}
	host.Fields = append(host.Fields, message.Field{Label: "Name", Value: m.Relay})
	if m.Kind != "" {
		host.Fields[0].Value += " (" + m.Kind + ")"
	}
	if m.HostError != "" {
		host.Fields = append(host.Fields, message.Field{Label: "Host info", Value: "not available: " + m.HostError})
	}
	if m.skew != 0 {
		host.Fields = append(host.Fields, message.Field{Label: "Clock skew", Value: m.skew.Round(time.Second).String()})
	}
	switch {
	case m.Host != nil && m.Host.Hostname != "":
		host.Fields = append(host.Fields, message.Field{Label: "Host", Value: m.Host.Hostname})
	case m.ThisHost != "":
		host.Fields = append(host.Fields, message.Field{Label: "Host", Value: m.ThisHost + " (this host)"})
	}
	if info := m.Host; info != nil {
		if len(info.OutboundIPs) > 0 {
			host.Fields = append(host.Fields, message.Field{Label: "Outbound IPs", Value: strings.Join(info.OutboundIPs, ", ")})
		}
		if info.MTA != "" {
			host.Fields = append(host.Fields, message.Field{Label: "MTA", Value: strings.TrimSpace(info.MTA + " " + info.MTAVersion)})
		}
		if info.TLSLibrary != "" {
			host.Fields = append(host.Fields, message.Field{Label: "TLS library", Value: info.TLSLibrary})
		}
		if info.Version != "" {
			host.Fields = append(host.Fields, message.Field{Label: "gmailtls", Value: info.Version})
		}
	}
	resp.Sections = append(resp.Sections, host)
	if m.Queue != nil {
		resp.Sections = append(resp.Sections, h.queueSection(*m.Queue))
	}

	var ids []string
	transcripts := 0
	for i, sr := range m.stored {
		ids = append(ids, strconv.FormatInt(sr.ID, 10))
		if i >= maxEvidenceResults {
			continue
		}
		resp.Sections = append(resp.Sections, h.resultEvidence(sr))
		if !sr.OK && transcripts < maxEvidenceTranscripts {
			if sec, ok := h.transcriptEvidence(ctx, sr.ID); ok {
				resp.Sections = append(resp.Sections, sec)
				transcripts++
			}
		}
	}
	if len(m.stored) > maxEvidenceResults {
		resp.Sections = append(resp.Sections, message.Section{Lines: []string{fmt.Sprintf("%d more results are listed by id below", len(m.stored)-maxEvidenceResults)}})
	}
	resp.Context = "result ids: " + strings.Join(ids, ", ")
	if len(m.stored) > 0 {
		resp.Context += fmt.Sprintf(" · run %d", m.stored[0].RunID)
	}
	resp.Summary = fmt.Sprintf("%s: evidence for %s", m.Relay, plural(len(m.stored), "result"))
	return resp
}

// resultEvidence is one result with everything known about it.
func (h *Handler) resultEvidence(sr storage.StoredResult) message.Section {
	r := sr.Result
	sec := message.Section{Heading: fmt.Sprintf("%s result %d", message.Mark(r.OK), sr.ID)}
	src := r.SourceIP
	if src == "" {
		src = "system default"
	}
	f := []message.Field{
		{Label: "Time", Value: h.exact(r.StartedAt)},
		{Label: "From", Value: src},
		{Label: "MX", Value: fmt.Sprintf("%s (preference %d) %s", r.MX, r.Preference, message.Addr(r))},
	}
	if r.ServerName != "" && !strings.EqualFold(r.ServerName, r.MX) {
		f = append(f, message.Field{Label: "SNI", Value: r.ServerName})
	}
	if r.OK {
		f = append(f, message.Field{Label: "Outcome", Value: "passed"})
	} else {
		out := fmt.Sprintf("%s at stage %s", r.Failure, r.Stage)
		if r.SMTPCode != 0 {
			out += fmt.Sprintf(": %d %s", r.SMTPCode, clip(r.SMTPText))
		}
		f = append(f, message.Field{Label: "Outcome", Value: out})
		if r.Error != "" {
			f = append(f, message.Field{Label: "Error", Value: clipBytes(r.Error, 300)})
		}
	}
	if r.TLS != nil {
		var tls []string
		if v := strings.TrimSpace(r.TLS.Version + " " + r.TLS.Cipher + " " + r.TLS.Group); v != "" {
			tls = append(tls, v)
		}
		if r.TLS.Verified {
			tls = append(tls, "verified")
		}
		if r.TLS.Variant != "" {
			tls = append(tls, "handshake passes with "+r.TLS.Variant)
		}
		if len(tls) > 0 {
			f = append(f, message.Field{Label: "TLS", Value: strings.Join(tls, ", ")})
		}
		if len(r.TLS.PeerCertificates) > 0 {
			f = append(f, message.Field{Label: "Certificate", Value: certEvidence(r.TLS.PeerCertificates[0], r.StartedAt)})
		}
	}
	switch r.Engine {
	case "", probe.EngineNative:
		f = append(f, message.Field{Label: "Engine", Value: "native: gmailtls's own Go crypto/tls, not the relay's TLS library"})
	default:
		f = append(f, message.Field{Label: "Engine", Value: r.Engine + ": the relay's own TLS stack"})
	}
	f = append(f, message.Field{Label: "Timings", Value: fmt.Sprintf("connect %s, banner %s, ehlo %s, starttls %s, handshake %s, total %s (ms)",
		msNum(r.Timings.Connect), msNum(r.Timings.Banner), msNum(r.Timings.EHLO), msNum(r.Timings.StartTLS), msNum(r.Timings.Handshake), msNum(r.Timings.Total))})
	sec.Fields = f
	return sec
}

// certEvidence describes a peer certificate with what is known of it: the
// MTA-stack engines may know the subject and the expiry but not the issuer.
func certEvidence(c probe.Certificate, at time.Time) string {
	parts := []string{cmp.Or(c.Subject, "subject unknown")}
	if c.Issuer != "" {
		parts = append(parts, "issued by "+c.Issuer)
	}
	if !c.NotAfter.IsZero() {
		days := c.DaysLeft
		if days == 0 && !at.IsZero() {
			days = int(c.NotAfter.Sub(at).Hours() / 24)
		}
		switch {
		case days < 0:
			parts = append(parts, fmt.Sprintf("expired %s (%d days ago)", c.NotAfter.Format("2006-01-02"), -days))
		default:
			parts = append(parts, fmt.Sprintf("expires %s (%d days)", c.NotAfter.Format("2006-01-02"), days))
		}
	}
	return strings.Join(parts, ", ")
}

// transcriptEvidence is the end of a failing result's stored transcript,
// as a code section; ok is false when none was kept.
func (h *Handler) transcriptEvidence(ctx context.Context, id int64) (message.Section, bool) {
	full, err := h.store.Result(ctx, id)
	if err != nil || len(full.Transcript) == 0 {
		return message.Section{}, false
	}
	lines := full.Transcript
	if cut := len(lines) - evidenceTranscriptLines; cut > 0 {
		lines = append([]string{fmt.Sprintf("… %d earlier lines (Transcript button for all)", cut)}, lines[cut:]...)
	}
	return message.Section{Heading: fmt.Sprintf("transcript of result %d", id), Lines: lines, Code: true}, true
}

// queueModel reads the relay's Gmail-bound queue from its agent, beside
// the samples stored with its probes.
func (h *Handler) queueModel(ctx context.Context, relayName string, iq relay.InfoQueuer) QueueEvidence {
	var m QueueEvidence
	qctx, cancel := context.WithTimeout(ctx, infoTimeout)
	q, qerr := iq.Queue(qctx)
	cancel()
	now := h.now()
	switch {
	case qerr != nil:
		m.Error, m.askFailed = qerr.Error(), true
	case !q.Available:
		m.Error = cmp.Or(q.Error, "the agent cannot read the queue")
	default:
		m.Available = true
		m.Deferred, m.Recipients, m.TopReason = q.Deferred, q.Recipients, q.TopReason
		m.OldestAgeS = q.OldestAge.Seconds()
	}
	m.Samples = []QueueSampleModel{}
	samples, err := h.store.QueueSamples(ctx, relayName, now.Add(-queueTrendWindow), queueTrendSamples)
	if err != nil {
		h.log.Warn("could not read queue samples", "relay", relayName, "error", err)
	}
	for _, s := range samples {
		m.Samples = append(m.Samples, QueueSampleModel{At: s.At, Deferred: s.Deferred, Recipients: s.Recipients,
			OldestAgeS: s.OldestAge.Seconds(), TopReason: s.TopReason})
	}
	return m
}

// queueSection shows a QueueEvidence: the queue now, and the trend of the
// stored samples.
func (h *Handler) queueSection(q QueueEvidence) message.Section {
	sec := message.Section{Heading: "Gmail-bound queue"}
	if !q.Available {
		sec.Fields = append(sec.Fields, message.Field{Label: "Now", Value: "not available: " + q.Error})
	} else {
		v := fmt.Sprintf("%d deferred (%d Gmail recipients)", q.Deferred, q.Recipients)
		if q.Deferred > 0 {
			v += ", oldest " + shortDuration(seconds(q.OldestAgeS).Round(time.Minute))
		}
		sec.Fields = append(sec.Fields, message.Field{Label: "Now", Value: v})
		if q.TopReason != "" {
			sec.Fields = append(sec.Fields, message.Field{Label: "Top deferral reason", Value: clipBytes(q.TopReason, 300)})
		}
	}
	if len(q.Samples) > 0 {
		first, last := q.Samples[0], q.Samples[len(q.Samples)-1]
		trend := fmt.Sprintf("%d deferred at %s", last.Deferred, h.exact(last.At))
		if len(q.Samples) > 1 {
			span := "less than a minute"
			if d := last.At.Sub(first.At).Round(time.Minute); d > 0 {
				span = shortDuration(d)
			}
			trend = fmt.Sprintf("%d → %d deferred over %s (%d samples, last at %s)", first.Deferred, last.Deferred,
				span, len(q.Samples), h.exact(last.At))
		}
		sec.Fields = append(sec.Fields, message.Field{Label: "Stored samples", Value: trend})
		if q.askFailed && last.TopReason != "" {
			sec.Fields = append(sec.Fields, message.Field{Label: "Top deferral reason", Value: clipBytes(last.TopReason, 300) + " (last sample)"})
		}
	}
	return sec
}

// seconds turns a JSON duration in seconds back into a time.Duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
