package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/storage"
)

const historyUsage = `usage: gmailtls history [--config FILE] [--relay NAME] [--since 24h] [--limit N] [--failures] [--json]

Prints stored probe results, newest first, with the failure class and the
stage where a probe stopped. --since takes a Go duration or days ("7d").
--json adds every field of the result, with the transcripts storage keeps
(failures, and the newest success per relay and MX host).

`

// historyResult is one result in history --json: the probe result's own
// fields (as in gmailtls probe --json) plus its storage ids and trigger.
type historyResult struct {
	ID      int64          `json:"id"`
	RunID   int64          `json:"run_id"`
	Trigger message.Source `json:"trigger"`
	probe.WireResult
}

// historyJSON is what history --json prints.
type historyJSON struct {
	Relay   string          `json:"relay,omitempty"`
	Since   time.Time       `json:"since"`
	Until   time.Time       `json:"until"`
	Results []historyResult `json:"results"`
}

func runHistory(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	path, explicit := svcFlags(fs)
	relayName := fs.String("relay", "", "only this relay's results")
	since := fs.String("since", "24h", "how far back: a duration such as 90m, 24h or 7d")
	limit := fs.Int("limit", 0, "print at most `N` results (0: all)")
	failures := fs.Bool("failures", false, "only failed probes")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if code, ok := svcParse(e, fs, historyUsage, args); !ok {
		return code
	}
	window, err := commands.ParseWindow(*since)
	if err != nil || window <= 0 {
		fmt.Fprintf(e.stderr, "gmailtls history: --since %q is not a duration; write e.g. 90m, 24h or 7d\n", *since)
		return exitUsage
	}
	if *limit < 0 {
		fmt.Fprintln(e.stderr, "gmailtls history: --limit must be 0 (all) or more")
		return exitUsage
	}
	if *relayName != "" && !commands.ValidRelayName(*relayName) {
		fmt.Fprintf(e.stderr, "gmailtls history: %q is not a relay name\n", *relayName)
		return exitUsage
	}
	s, code := svcOpen(ctx, e, *path, explicit())
	if s == nil {
		return code
	}
	defer s.Close()
	now := time.Now()
	// The table has no room for transcripts; --json carries the ones
	// storage keeps (failures, and the newest success per relay × MX).
	q := storage.HistoryQuery{Relay: *relayName, Since: now.Add(-window), Limit: *limit, FailuresOnly: *failures, WithTranscript: *asJSON}
	if *relayName != "" {
		if !svcKnownRelay(ctx, s, *relayName) {
			fmt.Fprintf(e.stderr, "gmailtls history: there is no relay %q (gmailtls relays lists them)\n", *relayName)
			return exitUsage
		}
	}
	results, err := s.store.History(ctx, q)
	if err != nil {
		fmt.Fprintf(e.stderr, "gmailtls history: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		out := historyJSON{Relay: *relayName, Since: q.Since, Until: now, Results: []historyResult{}}
		for _, r := range results {
			out.Results = append(out.Results, historyResult{ID: r.ID, RunID: r.RunID, Trigger: r.Trigger, WireResult: r.Result.Wire()})
		}
		if err := writeJSON(e.stdout, out); err != nil {
			fmt.Fprintf(e.stderr, "gmailtls history: %v\n", err)
			return exitFailed
		}
		return exitOK
	}
	if len(results) == 0 {
		fmt.Fprintf(e.stdout, "no probe results in the last %s\n", commands.FormatWindow(window))
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tRELAY\tOK\tMX\tIP\tSOURCE\tSTAGE\tFAILURE\tTLS\tMS\tRUN\tTRIGGER")
	for _, r := range results {
		stage, failure, tlsv := "-", "-", "-"
		if !r.OK {
			stage, failure = string(r.Stage), string(r.Failure)
		}
		if r.TLS != nil && r.TLS.Version != "" {
			tlsv = r.TLS.Version
		}
		src := r.SourceIP
		if src == "" {
			src = "-"
		}
		ok := "✓"
		if !r.OK {
			ok = "✗"
		}
		ip := r.IP
		if r.Port != 0 && r.Port != 25 {
			ip += ":" + strconv.Itoa(r.Port)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%d\t%s\n",
			r.StartedAt.Local().Format("2006-01-02 15:04:05 MST"), r.Relay, ok, r.MX, ip, src, stage, failure, tlsv, r.Timings.Total, r.RunID, r.Trigger)
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(e.stderr, "gmailtls history: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// svcKnownRelay reports whether the relay is configured or has stored
// history (retired relays keep theirs).
func svcKnownRelay(ctx context.Context, s *svc, name string) bool {
	if _, ok := s.cfg.RelayByName(name); ok {
		return true
	}
	rels, err := s.store.Relays(ctx, true)
	if err != nil {
		return false
	}
	for _, r := range rels {
		if r.Name == name {
			return true
		}
	}
	return false
}
