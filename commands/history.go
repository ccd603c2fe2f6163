package commands

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/probe"
)

// HistoryModel is what `gmailtls history --json` prints: the stored
// results of the window, newest first.
type HistoryModel struct {
	// Relay is empty for every relay.
	Relay   string                  `json:"relay,omitempty"`
	Since   time.Time               `json:"since"`
	Until   time.Time               `json:"until"`
	Results []monitor.HistoryResult `json:"results"`
}

// chatHistoryLimit bounds the results a chat answer reads; the command
// line reads them all unless told otherwise (--limit).
const chatHistoryLimit = 2000

// runHistory is "history <relay> [window]": the message sums the window up
// run by run; the command line prints a table with one line per result, and
// every field of each result with --json.
func (h *Handler) runHistory(ctx context.Context, c *call) (Reply, error) {
	now, cmd := h.now(), c.cmd
	cli := c.req.Source == message.SourceCLI
	q := monitor.HistoryQuery{Relay: cmd.Relay, Since: now.Add(-cmd.Window), Limit: cmd.Limit, FailuresOnly: cmd.FailuresOnly, WithTranscript: cli}
	if !cli {
		q.Limit = chatHistoryLimit
	}
	results, err := h.svc.History(ctx, q)
	if err != nil {
		return Reply{}, err
	}
	capped := !cli && len(results) == chatHistoryLimit
	m := HistoryModel{Relay: cmd.Relay, Since: q.Since, Until: now, Results: make([]monitor.HistoryResult, 0, len(results))}
	for _, r := range results {
		m.Results = append(m.Results, monitor.NewHistoryResult(r))
	}
	name := cmd.Relay
	if name == "" {
		name = "all relays"
	}
	return Reply{Response: h.historyMessage(c.prefix(), name, cmd.Window, results, capped), Data: m, Table: h.historyTable(results, cmd.Window)}, nil
}

// historyTable is the command line's history: one line per result.
func (h *Handler) historyTable(results []monitor.StoredResult, window time.Duration) *Table {
	t := &Table{Header: []string{"TIME", "RELAY", "OK", "MX", "IP", "SOURCE", "ENGINE", "STAGE", "FAILURE", "TLS", "TOTAL MS", "RUN", "TRIGGER"}}
	if len(results) == 0 {
		t.Empty = fmt.Sprintf("no probe results in the last %s", FormatWindow(window))
	}
	for _, r := range results {
		stage, failure, tlsv, src := "-", "-", "-", "-"
		if !r.OK {
			stage, failure = string(r.Stage), string(r.Failure)
		}
		if r.TLS != nil && r.TLS.Version != "" {
			tlsv = r.TLS.Version
		}
		if r.SourceIP != "" {
			src = r.SourceIP
		}
		ip := r.IP
		if r.Port != 0 && r.Port != 25 {
			ip += ":" + strconv.Itoa(r.Port)
		}
		t.Rows = append(t.Rows, []string{r.StartedAt.In(h.loc).Format("2006-01-02 15:04:05 MST"), r.Relay, message.Mark(r.OK),
			r.MX, ip, src, probe.EngineOf(r.Result), stage, failure, tlsv, msOrDash(r.StageTimings().Total), strconv.FormatInt(r.RunID, 10), string(r.Trigger)})
	}
	return t
}

// historyMessage is "history <relay> [window]": the runs of the window,
// newest first, one line each, with the failures spelled out.
func (h *Handler) historyMessage(prefix, relayName string, window time.Duration, results []monitor.StoredResult, capped bool) message.Response {
	resp := message.Response{
		Title:     fmt.Sprintf("%s: history over %s", relayName, FormatWindow(window)),
		Verdict:   message.VerdictInfo,
		Ephemeral: true,
	}
	if len(results) == 0 {
		resp.Sections = []message.Section{{Lines: []string{fmt.Sprintf("no probe results in the last %s; `%scheck %s` probes it now", FormatWindow(window), prefix, relayName)}}}
		resp.Summary = relayName + ": no results"
		return resp
	}
	type runLine struct {
		id      int64
		at      time.Time
		trigger message.Source
		all     []historyItem
	}
	var runs []*runLine
	byID := map[int64]*runLine{}
	failedTotal := 0
	counts := map[string]int{}
	for _, r := range results {
		rl := byID[r.RunID]
		if rl == nil {
			rl = &runLine{id: r.RunID, at: r.StartedAt, trigger: r.Trigger}
			byID[r.RunID] = rl
			runs = append(runs, rl)
		}
		if r.StartedAt.Before(rl.at) {
			rl.at = r.StartedAt
		}
		rl.all = append(rl.all, historyItem{ok: r.OK, mx: r.MX, ip: message.Addr(r.Result), stage: string(r.Stage), failure: string(r.Failure)})
		if !r.OK {
			failedTotal++
			counts[string(r.Failure)]++
		}
	}
	var lines []string
	failedRuns := 0
	for _, rl := range runs {
		ok := 0
		var fails []string
		for _, p := range rl.all {
			if p.ok {
				ok++
				continue
			}
			fails = append(fails, fmt.Sprintf("%s %s %s at %s", p.failure, p.mx, p.ip, p.stage))
		}
		line := fmt.Sprintf("%s %s run %d · %d/%d passed", message.Mark(len(fails) == 0), h.clock(rl.at), rl.id, ok, len(rl.all))
		if len(fails) > 0 {
			failedRuns++
			line += " · " + joinLimited(fails, 2)
		}
		if rl.trigger != "" && rl.trigger != message.SourceSchedule {
			line += " · " + string(rl.trigger)
		}
		lines = append(lines, line)
	}
	head := fmt.Sprintf("%s, %s, %d failed", plural(len(runs), "run"), plural(len(results), "result"), failedTotal)
	if failedTotal > 0 {
		head += ": " + classCounts(counts)
	}
	if capped {
		head += fmt.Sprintf(" (the newest %d results only)", len(results))
	}
	resp.Sections = append(resp.Sections, message.Section{Lines: []string{head}})
	const maxLines = 30
	shown := lines
	if len(lines) > maxLines {
		shown = lines[:maxLines]
	}
	resp.Sections = append(resp.Sections, chunkLines("Runs, newest first", shown, 30)...)
	if len(lines) > maxLines {
		resp.Sections = append(resp.Sections, message.Section{Lines: []string{fmt.Sprintf("… %d older runs; `gmailtls history %s %s` lists every result", len(lines)-maxLines, relayName, FormatWindow(window))}})
	}
	resp.Summary = fmt.Sprintf("%s: %d of %d runs failed in %s", relayName, failedRuns, len(runs), FormatWindow(window))
	switch {
	case failedRuns == 0:
		resp.Verdict = message.VerdictOK
	case failedRuns*2 > len(runs):
		resp.Verdict = message.VerdictFail
	default:
		resp.Verdict = message.VerdictWarn
	}
	return resp
}

// historyItem is the part of a result a history line shows.
type historyItem struct {
	ok                     bool
	mx, ip, stage, failure string
}
