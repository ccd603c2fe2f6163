package commands

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/probe"
)

func (h *Handler) runEvidence(ctx context.Context, c *call) (Reply, error) {
	return h.evidenceForRelay(ctx, c, c.cmd.Relay)
}

// evidenceResponse answers an Evidence button: the evidence of the results
// it names.
func (h *Handler) evidenceResponse(ctx context.Context, snap *monitor.Snapshot, b buttonValue) (message.Response, error) {
	m, err := h.svc.Evidence(ctx, snap, evidenceQuery(b.Relay, b.IDs))
	if err != nil {
		return message.Response{}, err
	}
	return h.evidenceMessage(m), nil
}

// evidenceQuery asks for the evidence of a relay's results (its latest
// failing run without ids) with the transcripts the message shows.
func evidenceQuery(relayName string, ids []int64) monitor.EvidenceQuery {
	return monitor.EvidenceQuery{Relay: relayName, IDs: ids, Transcripts: maxEvidenceTranscripts, Within: maxEvidenceResults}
}

// evidenceForRelay is "evidence <relay>": the latest failing run's evidence.
func (h *Handler) evidenceForRelay(ctx context.Context, c *call, relayName string) (Reply, error) {
	m, err := h.svc.Evidence(ctx, c.snap, evidenceQuery(relayName, nil))
	if err != nil {
		return Reply{}, err
	}
	if len(m.Stored) == 0 {
		return Reply{Response: message.Response{
			Title:     fmt.Sprintf("%s: no failing probe in the stored history", relayName),
			Verdict:   message.VerdictOK,
			Summary:   relayName + ": nothing to show",
			Sections:  []message.Section{{Lines: []string{fmt.Sprintf("Run `%scheck %s` to probe it now.", c.prefix(), relayName)}}},
			Ephemeral: true,
		}, Data: m}, nil
	}
	return Reply{Response: h.evidenceMessage(m), Data: m}, nil
}

// evidenceMessage shows an EvidenceModel: the relay host, its queue, then
// per result the source IP, MX host and IP, exact time with zone, stage,
// class, TLS and certificate details, the end of the failing transcripts,
// and the result ids.
func (h *Handler) evidenceMessage(m monitor.EvidenceModel) message.Response {
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
	if m.Skew != 0 {
		host.Fields = append(host.Fields, message.Field{Label: "Clock skew", Value: m.Skew.Round(time.Second).String()})
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
	if m.Policy != nil || m.PolicyError != "" {
		resp.Sections = append(resp.Sections, policySection(m.Policy, m.PolicyError))
	}
	if m.MTASTS != nil || m.MTASTSError != "" {
		resp.Sections = append(resp.Sections, mtastsSection(m.MTASTS, m.MTASTSError))
	}
	if m.Log != nil {
		resp.Sections = append(resp.Sections, h.logSections(*m.Log)...)
	}

	var ids []string
	transcripts := 0
	for i, sr := range m.Stored {
		ids = append(ids, strconv.FormatInt(sr.ID, 10))
		if i >= maxEvidenceResults {
			continue
		}
		resp.Sections = append(resp.Sections, h.resultEvidence(sr))
		if !sr.OK && transcripts < maxEvidenceTranscripts {
			if lines, ok := m.Transcripts[sr.ID]; ok {
				resp.Sections = append(resp.Sections, transcriptEvidence(sr.ID, lines))
				transcripts++
			}
		}
	}
	if len(m.Stored) > maxEvidenceResults {
		resp.Sections = append(resp.Sections, message.Section{Lines: []string{fmt.Sprintf("%d more results are listed by id below", len(m.Stored)-maxEvidenceResults)}})
	}
	resp.Context = "result ids: " + strings.Join(ids, ", ")
	if len(m.Stored) > 0 {
		resp.Context += fmt.Sprintf(" · run %d", m.Stored[0].RunID)
	}
	resp.Summary = fmt.Sprintf("%s: evidence for %s", m.Relay, plural(len(m.Stored), "result"))
	return resp
}

// resultEvidence is one result with everything known about it.
func (h *Handler) resultEvidence(sr monitor.StoredResult) message.Section {
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
	// Every stage of a session, "—" when not reached or not measured; dns
	// only when a lookup was made (a pinned address needs none).
	tm := r.StageTimings()
	stages := fmt.Sprintf("connect %s, banner %s, ehlo %s, starttls %s, handshake %s, post_tls %s (ms)",
		msOrDash(tm.Connect), msOrDash(tm.Banner), msOrDash(tm.EHLO), msOrDash(tm.StartTLS), msOrDash(tm.Handshake), msOrDash(tm.PostTLS))
	if tm.DNS != nil {
		stages = "dns " + msOrDash(tm.DNS) + ", " + stages
	}
	f = append(f, message.Field{Label: "Timings", Value: stages}, message.Field{Label: "Total", Value: message.Ms(r.Timings.Total)})
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
// as a code section.
func transcriptEvidence(id int64, lines []string) message.Section {
	if cut := len(lines) - evidenceTranscriptLines; cut > 0 {
		lines = append([]string{fmt.Sprintf("… %d earlier lines (Transcript button for all)", cut)}, lines[cut:]...)
	}
	return message.Section{Heading: fmt.Sprintf("transcript of result %d", id), Lines: lines, Code: true}
}

// queueSection shows a QueueEvidence: the queue now, and the trend of the
// stored samples.
func (h *Handler) queueSection(q monitor.QueueEvidence) message.Section {
	sec := message.Section{Heading: "Gmail-bound queue"}
	if !q.Available {
		sec.Fields = append(sec.Fields, message.Field{Label: "Now", Value: "not available: " + q.Error})
	} else {
		v := fmt.Sprintf("%d deferred (%d Gmail recipients)", q.Deferred, q.Recipients)
		if q.Deferred > 0 {
			v += ", oldest " + ageText(seconds(q.OldestAgeS))
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
		if q.AskFailed && last.TopReason != "" {
			sec.Fields = append(sec.Fields, message.Field{Label: "Top deferral reason", Value: clipBytes(last.TopReason, 300) + " (last sample)"})
		}
	}
	return sec
}

// seconds turns a JSON duration in seconds back into a time.Duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// ageText writes the age of queued mail as measured: seconds under a
// minute ("27s"), whole minutes from there ("12m", "1h5m"), so young mail
// never reads as "0s".
func ageText(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return shortDuration(d.Round(time.Minute))
}
