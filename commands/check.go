package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/probe"
)

// Bounds that keep each message small (the Slack renderer enforces Slack's
// limits, but a message should not need it).
const (
	// maxRows is the number of result rows in one message; more go to a
	// thread message.
	maxRows = 12
	// maxTranscripts and maxTranscriptLines bound the transcript answer.
	maxTranscripts     = 4
	maxTranscriptLines = 40
	// maxEvidenceResults bounds the results listed as evidence.
	maxEvidenceResults = 10
	// maxEvidenceTranscripts bounds the failing transcripts in evidence,
	// and evidenceTranscriptLines the lines shown of each (the last ones,
	// where the failure is).
	maxEvidenceTranscripts  = 2
	evidenceTranscriptLines = 16
)

// previousRun is what a Re-run button remembers of the run it was on.
type previousRun struct {
	RunID int64
	At    time.Time
	OK    bool
}

// clock formats a time of day in the handler's zone, e.g. "12:03".
func (h *Handler) clock(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	lt := t.In(h.loc)
	now := h.now().In(h.loc)
	if lt.Year() != now.Year() || lt.YearDay() != now.YearDay() {
		return lt.Format("Jan 2 15:04")
	}
	return lt.Format("15:04")
}

// stamp formats a time with its date and zone, e.g. "2026-05-01 12:03:04 CEST".
func (h *Handler) stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.In(h.loc).Format("2006-01-02 15:04:05 MST")
}

// exact formats a time to the millisecond with its offset and zone.
func (h *Handler) exact(t time.Time) string {
	return t.In(h.loc).Format("2006-01-02T15:04:05.000-07:00 (MST)")
}

// msNum writes milliseconds without the unit.
func msNum(ms float64) string { return strings.TrimSuffix(message.Ms(ms), " ms") }

// msOrDash is msNum of a stage timing, "—" for a stage not reached or not
// measured (probe.Result.StageTimings).
func msOrDash(ms *float64) string {
	if ms == nil {
		return "—"
	}
	return msNum(*ms)
}

// showSources reports whether results come from more than one source IP.
func showSources(results []probe.Result) bool {
	var first string
	for i, r := range results {
		if i == 0 {
			first = r.SourceIP
			continue
		}
		if r.SourceIP != first {
			return true
		}
	}
	return false
}

// verdictOf colours a check.
func verdictOf(c monitor.CheckResult) message.Verdict {
	switch {
	case len(c.Report.Results) == 0:
		return message.VerdictWarn
	case c.OK():
		return message.VerdictOK
	case c.AgentOnly():
		return message.VerdictWarn
	}
	return message.VerdictFail
}

// failureCounts is "tls_reset ×3, cert_expired ×1", most frequent first.
func failureCounts(results []probe.Result) string {
	counts := map[string]int{}
	for _, r := range results {
		if !r.OK {
			counts[string(r.Failure)]++
		}
	}
	return classCounts(counts)
}

func classCounts(counts map[string]int) string {
	classes := make([]string, 0, len(counts))
	for c := range counts {
		classes = append(classes, c)
	}
	slices.SortFunc(classes, func(a, b string) int {
		if counts[a] != counts[b] {
			return counts[b] - counts[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(classes))
	for i, c := range classes {
		name := c
		if name == "" {
			name = "unknown"
		}
		parts[i] = fmt.Sprintf("%s ×%d", name, counts[c])
	}
	return strings.Join(parts, ", ")
}

// checkTitle is the header of a check message.
func checkTitle(snap *monitor.Snapshot, c monitor.CheckResult) string {
	target := targetLabel(snap)
	n, failed := len(c.Report.Results), 0
	for _, r := range c.Report.Results {
		if !r.OK {
			failed++
		}
	}
	switch {
	case n == 0:
		return fmt.Sprintf("%s: no probe ran", c.Relay)
	case failed == 0:
		return fmt.Sprintf("%s: STARTTLS to %s passed", c.Relay, target)
	case c.AgentOnly():
		return fmt.Sprintf("%s: the relay's agent did not answer; %s not judged", c.Relay, target)
	case failed == n:
		return fmt.Sprintf("%s: STARTTLS to %s failed", c.Relay, target)
	}
	return fmt.Sprintf("%s: STARTTLS to %s failed on %d of %d probes", c.Relay, target, failed, n)
}

// passedText is "passed" or "failed" for the re-run comparison.
func passedText(ok bool) string {
	if ok {
		return "passed"
	}
	return "failed"
}

// levelText is a level with its scope, e.g. "investigate (one_host)".
func levelText(l escalation.Level, s escalation.Scope) string {
	if l == "" {
		l = escalation.LevelOK
	}
	if s == "" {
		return string(l)
	}
	return string(l) + " (" + string(s) + ")"
}

// CheckResponse is the message for one checked relay: title and verdict,
// one row per MX × IP (× source), hints for the failures, the escalation
// level with scope and advice, and the Re-run, Transcript and Evidence
// buttons. prev, from a Re-run button, adds "failed 12:03 → passed 12:05".
func (h *Handler) CheckResponse(c monitor.CheckResult, prev *previousRun) message.Response {
	return h.checkResponse(h.snapshot(), c, prev)
}

// checkResponse is CheckResponse under the request's snapshot.
func (h *Handler) checkResponse(snap *monitor.Snapshot, c monitor.CheckResult, prev *previousRun) message.Response {
	results := c.Report.Results
	src := showSources(results)
	var rows []string
	for _, r := range results {
		rows = append(rows, message.ResultRow(r, src))
	}
	failed, failedIDs := c.Failed()
	resp := message.Response{
		Title:   checkTitle(snap, c),
		Verdict: verdictOf(c),
	}
	var summary []string
	summary = append(summary, fmt.Sprintf("%s: %d/%d passed", c.Relay, len(results)-len(failed), len(results)))
	if len(failed) > 0 {
		summary = append(summary, failureCounts(results))
	}
	summary = append(summary, "level "+string(escalation.Max(c.State.Level)))
	resp.Summary = strings.Join(summary, " · ")

	if prev != nil {
		resp.Sections = append(resp.Sections, message.Section{Lines: []string{fmt.Sprintf("Re-run: %s %s → %s %s",
			passedText(prev.OK), h.clock(prev.At), passedText(c.OK()), h.clock(c.Report.StartedAt))}})
	}
	shown := rows
	if len(rows) > maxRows {
		shown = rows[:maxRows]
	}
	resultSec := message.Section{Heading: "Results", Lines: slices.Clone(shown)}
	if len(rows) > maxRows {
		resultSec.Lines = append(resultSec.Lines, fmt.Sprintf("… %d more rows in the thread", len(rows)-maxRows))
		resp.Thread = append(resp.Thread, message.Response{
			Title:    fmt.Sprintf("%s: all %d results of run %d", c.Relay, len(rows), c.RunID),
			Verdict:  resp.Verdict,
			Summary:  fmt.Sprintf("%s: %d more results", c.Relay, len(rows)-maxRows),
			Sections: chunkLines("", rows[maxRows:], 25),
		})
	}
	if len(results) == 0 {
		resultSec.Lines = []string{"no results: the target has no MX host the relay could probe"}
	}
	resp.Sections = append(resp.Sections, resultSec)
	if line := controlLine(c); line != "" {
		resp.Sections = append(resp.Sections, message.Section{Heading: "Control", Lines: []string{line}})
	}
	if hints := hintLines(failed); len(hints) > 0 {
		resp.Sections = append(resp.Sections, message.Section{Heading: "What to check", Lines: hints})
	}
	resp.Sections = append(resp.Sections, h.escalationSection(c.State, c.Global))

	rerunLabel := "Re-run"
	resp.Buttons = []message.Button{{Label: rerunLabel, Action: message.ActionRerun, Value: rerunValue(c.Relay, c.RunID, c.Report.StartedAt, c.OK(), mxOpt(c)), Style: "primary"}}
	tIDs := failedIDs
	if len(tIDs) == 0 {
		tIDs = c.ResultIDs
	}
	if len(tIDs) > 0 {
		resp.Buttons = append(resp.Buttons,
			message.Button{Label: "Transcript", Action: message.ActionTranscript, Value: idsValue(c.Relay, c.RunID, tIDs)},
			message.Button{Label: "Evidence", Action: message.ActionEvidence, Value: idsValue(c.Relay, c.RunID, tIDs)})
	}
	resp.Context = h.runContext(c)
	return resp
}

// controlLine says how the control destination ([target] control_mx),
// probed through the same relay at the same time, fared beside Gmail: a
// passing control makes a Gmail failure Gmail-specific, a failing one
// points at the relay's own network. "" without a control.
func controlLine(c monitor.CheckResult) string {
	ctl := c.Control
	if ctl == nil {
		return ""
	}
	hosts := "control " + strings.Join(ctl.MX, ", ")
	switch {
	case ctl.Err != nil:
		return hosts + " not probed: " + UserText(ctl.Err)
	case ctl.Failed() && !c.OK():
		return hosts + " ✗ failed too (" + failureCounts(ctl.Report.Results) + ") — this relay's network, not Gmail"
	case ctl.Failed():
		return hosts + " ✗ failed (" + failureCounts(ctl.Report.Results) + ") while Gmail passed — the control destination's own trouble"
	case !ctl.Report.OK():
		return hosts + " not judged: the relay's agent did not answer"
	case !c.OK():
		return hosts + " ✓ passed — the failure is Gmail-specific"
	}
	return hosts + " ✓ passed"
}

// mxOpt is the --mx of a check, kept on its Re-run button.
func mxOpt(c monitor.CheckResult) string {
	if len(c.Options.MX) == 0 {
		return ""
	}
	return c.Options.MX[0]
}

// runContext is the footer of a check: run id, result ids, exact time,
// who asked.
func (h *Handler) runContext(c monitor.CheckResult) string {
	parts := []string{fmt.Sprintf("run %d", c.RunID)}
	if len(c.ResultIDs) > 0 {
		first, last := slices.Min(c.ResultIDs), slices.Max(c.ResultIDs)
		if first == last {
			parts = append(parts, fmt.Sprintf("result %d", first))
		} else {
			parts = append(parts, fmt.Sprintf("results %d–%d", first, last))
		}
	}
	parts = append(parts, h.stamp(c.Report.StartedAt))
	who := string(c.Trigger)
	if c.RequestedBy != "" && c.RequestedBy != who {
		who = c.RequestedBy + " via " + who
	}
	if who != "" {
		parts = append(parts, who)
	}
	return strings.Join(parts, " · ")
}

// hintLines explains each failure class once (with the probe's own hints,
// such as "passes without the post-quantum key share"), at most 6 lines.
func hintLines(failed []probe.Result) []string {
	var lines []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] && len(lines) < 6 {
			seen[s] = true
			lines = append(lines, s)
		}
	}
	for _, r := range failed {
		if hint := probe.Hint(r.Failure); hint != "" {
			add(string(r.Failure) + ": " + hint)
		}
	}
	for _, r := range failed {
		for _, hint := range r.Hints {
			if hint != probe.Hint(r.Failure) {
				add(hint)
			}
		}
		if r.SMTPText != "" && r.SMTPCode != 0 {
			add(fmt.Sprintf("%s said: %d %s", r.MX, r.SMTPCode, clip(r.SMTPText)))
		}
	}
	return lines
}

// escalationSection shows the relay's level, scope and advice, and the
// level across relays when it is not ok.
func (h *Handler) escalationSection(st, global escalation.RelayState) message.Section {
	sec := message.Section{Heading: "Escalation"}
	sec.Fields = append(sec.Fields, message.Field{Label: "Level", Value: levelText(st.Level, st.Scope)})
	if st.Advice != "" {
		sec.Fields = append(sec.Fields, message.Field{Label: "Advice", Value: st.Advice})
	}
	if st.AgentDown {
		sec.Fields = append(sec.Fields, message.Field{Label: "Agent", Value: "down: its last run gave no usable result"})
	}
	if global.Level.Rank() > escalation.LevelOK.Rank() {
		v := levelText(global.Level, global.Scope)
		if len(global.FailingRelays) > 0 {
			v += ": " + strings.Join(global.FailingRelays, ", ")
		}
		sec.Fields = append(sec.Fields, message.Field{Label: "All relays", Value: v})
		if global.Level == escalation.LevelIncident && global.Advice != "" {
			sec.Fields = append(sec.Fields, message.Field{Label: "Incident advice", Value: global.Advice})
		}
	}
	return sec
}

// chunkLines splits lines into sections of at most n lines; the sections
// after the first are headed "… (continued)".
func chunkLines(heading string, lines []string, n int) []message.Section {
	var out []message.Section
	for i := 0; len(lines) > 0; i++ {
		k := min(n, len(lines))
		h := heading
		if i > 0 && heading != "" {
			h = heading + " (continued)"
		}
		out = append(out, message.Section{Heading: h, Lines: slices.Clone(lines[:k])})
		lines = lines[k:]
	}
	return out
}

// CheckAllResponse is the message for "check all": a compact summary, one
// line per relay, with the full result of each relay that did not pass as a
// thread message (a relay that passed is all in its summary line, and 40
// thread messages would only meet Slack's rate limit). With a single relay
// it is that relay's message.
func (h *Handler) CheckAllResponse(all []monitor.CheckResult, mx string) message.Response {
	return h.checkAllResponse(h.snapshot(), all, mx)
}

// checkAllResponse is CheckAllResponse under the request's snapshot.
func (h *Handler) checkAllResponse(snap *monitor.Snapshot, all []monitor.CheckResult, mx string) message.Response {
	if len(all) == 1 {
		return h.checkResponse(snap, all[0], nil)
	}
	passed, agentDown := 0, 0
	var lines []string
	var global escalation.RelayState
	var started time.Time
	for _, c := range all {
		failed, _ := c.Failed()
		line := fmt.Sprintf("%s %s · %d/%d passed", message.Mark(c.OK()), c.Relay, len(c.Report.Results)-len(failed), len(c.Report.Results))
		if len(failed) > 0 {
			line += " · " + failureCounts(c.Report.Results)
		}
		line += " · level " + levelText(c.State.Level, c.State.Scope)
		lines = append(lines, line)
		switch {
		case c.OK():
			passed++
		case c.AgentOnly():
			agentDown++
		}
		global = c.Global
		if started.IsZero() || c.Report.StartedAt.Before(started) {
			started = c.Report.StartedAt
		}
	}
	target := targetLabel(snap)
	resp := message.Response{
		Title:   fmt.Sprintf("check all: %d of %d relays passed STARTTLS to %s", passed, len(all), target),
		Verdict: message.VerdictOK,
		Summary: fmt.Sprintf("%d/%d relays passed", passed, len(all)),
	}
	if passed < len(all) {
		resp.Verdict = message.VerdictFail
		if passed+agentDown == len(all) {
			resp.Verdict = message.VerdictWarn
		}
	}
	if mx != "" {
		resp.Title += " (" + mx + ")"
	}
	resp.Sections = chunkLines("Relays", lines, 20)
	resp.Sections = append(resp.Sections, message.Section{Heading: "Across relays", Fields: []message.Field{{Label: "Level", Value: levelText(global.Level, global.Scope)}}})
	if global.Advice != "" {
		last := &resp.Sections[len(resp.Sections)-1]
		last.Fields = append(last.Fields, message.Field{Label: "Advice", Value: global.Advice})
	}
	resp.Buttons = []message.Button{{Label: "Re-run all", Action: message.ActionRerun, Value: rerunValue(message.AllRelays, 0, time.Time{}, false, mx), Style: "primary"}}
	if b, ok := checkAllCompare(all); ok {
		resp.Buttons = append(resp.Buttons, b)
	}
	resp.Context = h.stamp(started)
	if passed < len(all) {
		resp.Context += fmt.Sprintf(" · details of the %d relays that did not pass in the thread", len(all)-passed)
		if len(all)-passed == 1 {
			resp.Context = h.stamp(started) + " · details of the relay that did not pass in the thread"
		}
	}
	for _, c := range all {
		if c.OK() {
			continue
		}
		detail := h.checkResponse(snap, c, nil)
		// Keep each thread message to itself: no nested threads.
		resp.Thread = append(resp.Thread, withoutThread(detail)...)
	}
	return resp
}

// withoutThread flattens a response and its thread into a list.
func withoutThread(r message.Response) []message.Response {
	thread := r.Thread
	r.Thread = nil
	out := []message.Response{r}
	for _, t := range thread {
		out = append(out, withoutThread(t)...)
	}
	return out
}

// transcriptResponse shows the SMTP transcripts of the results a
// Transcript button names, as code sections (ephemeral).
func (h *Handler) transcriptResponse(ctx context.Context, b buttonValue) (message.Response, error) {
	if len(b.IDs) == 0 {
		return message.Response{}, errors.New("that button names no results")
	}
	resp := message.Response{
		Title:     fmt.Sprintf("%s: SMTP transcript", b.Relay),
		Verdict:   message.VerdictInfo,
		Ephemeral: true,
	}
	shown := 0
	var missing []string
	for _, id := range b.IDs {
		if shown == maxTranscripts {
			break
		}
		r, found, err := h.svc.Result(ctx, id)
		if err != nil {
			return message.Response{}, err
		}
		if !found {
			missing = append(missing, strconv.FormatInt(id, 10))
			continue
		}
		if r.Relay != b.Relay && b.Relay != message.AllRelays {
			return message.Response{}, fmt.Errorf("result %d does not belong to relay %s", id, b.Relay)
		}
		lines := r.Transcript
		heading := fmt.Sprintf("result %d: %s", r.ID, message.ResultRow(r.Result, r.SourceIP != ""))
		if len(lines) == 0 {
			resp.Sections = append(resp.Sections, message.Section{Heading: heading, Lines: []string{"no transcript kept for this result (only failures and the newest success per MX keep theirs)"}})
			shown++
			continue
		}
		if len(lines) > maxTranscriptLines {
			cut := len(lines) - maxTranscriptLines
			lines = append([]string{fmt.Sprintf("… %d earlier lines left out", cut)}, lines[cut:]...)
		}
		resp.Sections = append(resp.Sections, message.Section{Heading: heading, Lines: lines, Code: true})
		shown++
	}
	if rest := len(b.IDs) - shown - len(missing); rest > 0 {
		resp.Sections = append(resp.Sections, message.Section{Lines: []string{fmt.Sprintf("%d more results; `gmailtls history %s --json` has them all", rest, b.Relay)}})
	}
	if len(missing) > 0 {
		resp.Sections = append(resp.Sections, message.Section{Lines: []string{"results " + strings.Join(missing, ", ") + " are no longer stored (rolled up by retention)"}})
	}
	resp.Summary = fmt.Sprintf("%s: %s", b.Relay, plural(shown, "transcript"))
	return resp, nil
}
