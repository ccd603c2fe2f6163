// Command release7 made storage/testdata/release7.db: a database at schema
// version 7 written by the release before the alert state moved out of the
// outbox (commit 7b88d0b), through that release's own code. Its alerts
// keep their alert model only in the outbox payloads' meta; migration 0008
// must carry every row and make those models readable.
//
// It is kept for the record and compiles only against that release (the
// go tool skips testdata, so the current code never builds it). To make
// the file again:
//
//	git archive 7b88d0b | tar -x -C /tmp/release7
//	cp -r storage/testdata/release7 /tmp/release7/storage/testdata/
//	cd /tmp/release7 && go run ./storage/testdata/release7 /tmp/release7.db
//
// The scenario, on a manual clock from 2026-03-02 09:00 UTC, with
// PostWatch on: relays relay-1 to relay-3 (local) and relay-4 (agent, with
// queue samples), and relay-old, retired. relay-3 fails three rounds and
// recovers (incident 1, opened at watch, rose to investigate, resolved);
// relay-4 fails once and its re-probe passes (a blip, no incident);
// relay-1 and relay-2 fail three rounds (incidents 2 and 3, opened at
// watch, risen to investigate, and the global incident 4). Incident 2 is
// acknowledged and incident 3 muted with the alert buttons, incident 4 is
// reminded; some messages are delivered, one failed for good, a report
// with its heatmap is pending. The first hour of raw results is rolled up.
package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/gmailtls/gmailtls/alerts"
	"github.com/gmailtls/gmailtls/chart"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/outbox"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/storage"
	_ "modernc.org/sqlite"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: release7 FILE.db")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "release7:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, path string) error {
	clock := manualclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	s, err := storage.Open(ctx, path, storage.Options{Now: clock.Now})
	if err != nil {
		return err
	}
	relays := []storage.RelaySpec{
		{Name: "relay-1", Kind: "local", SourceIPs: []string{"192.0.2.10"}},
		{Name: "relay-2", Kind: "local", SourceIPs: []string{"192.0.2.11", "192.0.2.12"}},
		{Name: "relay-3", Kind: "local"},
		{Name: "relay-4", Kind: "agent", URL: "https://relay-4.example.net:8443"},
	}
	if err := s.SyncRelays(ctx, append(slices.Clone(relays), storage.RelaySpec{Name: "relay-old", Kind: "local"})); err != nil {
		return err
	}
	if _, _, err := s.RecordRun(ctx, storage.Run{Relay: "relay-old", Trigger: storage.TriggerSchedule, StartedAt: clock.Now()},
		results("relay-old", true, clock.Now())); err != nil {
		return err
	}
	if err := s.SyncRelays(ctx, relays); err != nil { // relay-old retires
		return err
	}
	reprobeFails := map[string]bool{"relay-1": true, "relay-2": true, "relay-3": true}
	al := &alerts.Alerter{
		Store: s, Channel: "CALERTS", PostWatch: true, Now: clock.Now, Location: time.UTC,
		Evaluate: evaluator(s, clock.Now),
		Confirm: func(ctx context.Context, relay string, failing []storage.StoredResult) ([]probe.Result, []probe.Result, string, error) {
			again := results(relay, !reprobeFails[relay], clock.Now())
			if _, _, err := s.RecordRun(ctx, storage.Run{Relay: relay, Trigger: storage.TriggerConfirm, RequestedBy: "gmailtls", StartedAt: clock.Now()}, again); err != nil {
				return nil, nil, "", err
			}
			return again, results("relay-4", true, clock.Now()), "relay-4", nil
		},
	}
	round := func(fail ...string) error {
		clock.Advance(5 * time.Minute)
		for _, r := range relays {
			if _, _, err := s.RecordRun(ctx, storage.Run{Relay: r.Name, Trigger: storage.TriggerSchedule, RequestedBy: "schedule", StartedAt: clock.Now()},
				results(r.Name, !slices.Contains(fail, r.Name), clock.Now())); err != nil {
				return err
			}
		}
		if err := s.RecordQueueSample(ctx, storage.QueueSample{Relay: "relay-4", At: clock.Now(), Deferred: 1, OldestAge: 3 * time.Minute,
			Recipients: 2, TopReason: "connection timed out"}); err != nil {
			return err
		}
		return al.Sync(ctx)
	}
	steps := [][]string{
		{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, // 09:05 to 09:55: calm
		{"relay-3"}, {"relay-3"}, {"relay-3"}, {}, {}, // incident 1, resolved
		{"relay-4"}, {}, {}, // a blip
		{"relay-1", "relay-2"}, {"relay-1", "relay-2"}, {"relay-1", "relay-2"}, // incidents 2, 3 and 4
	}
	for _, fail := range steps {
		if err := round(fail...); err != nil {
			return err
		}
	}
	// Someone runs a check from Slack; the alert buttons are pressed.
	if err := s.Audit(ctx, storage.AuditEntry{UserID: "U0OPS", UserName: "ops", ChannelID: "CALERTS", Text: "check relay-1",
		Source: string(message.SourceSlash), Outcome: "ok"}); err != nil {
		return err
	}
	if _, ok := al.HandleButton(ctx, message.Request{Action: message.ActionAcknowledge, Value: "2", UserID: "U0OPS", UserName: "ops",
		ChannelID: "CALERTS", Source: message.SourceButton}); !ok {
		return fmt.Errorf("acknowledge not handled")
	}
	if _, ok := al.HandleButton(ctx, message.Request{Action: message.ActionMute, Value: "3", UserID: "U0NIGHT", UserName: "night",
		ChannelID: "CALERTS", Source: message.SourceButton}); !ok {
		return fmt.Errorf("mute not handled")
	}
	if err := s.PauseRelay(ctx, "relay-2", clock.Now().Add(2*time.Hour), "U0NIGHT"); err != nil {
		return err
	}
	clock.Advance(65 * time.Minute)
	if err := al.Remind(ctx); err != nil {
		return err
	}
	// The outbox worker delivered the first alerts; one message failed.
	pending, err := s.PendingMessages(ctx, 0, 1000)
	if err != nil {
		return err
	}
	for i, m := range pending {
		switch {
		case m.Key == "alert:1" || m.Key == "alert:2":
			ts := fmt.Sprintf("1772442000.%06d", i)
			if err := s.MarkSent(ctx, m.ID, ts); err != nil {
				return err
			}
			id := int64(1)
			if m.Key == "alert:2" {
				id = 2
			}
			if err := s.SetIncidentMessage(ctx, id, "CALERTS", ts); err != nil {
				return err
			}
		case m.Key == "resolution:1":
			if err := s.MarkFailed(ctx, m.ID, "channel_not_found"); err != nil {
				return err
			}
		}
	}
	// A report with its heatmap waits in the outbox.
	sums, err := s.Summary(ctx, clock.Now().Add(-3*time.Hour).Truncate(time.Hour), clock.Now().Truncate(time.Hour).Add(time.Hour))
	if err != nil {
		return err
	}
	hm := chart.Heatmap{Title: "gmailtls: failure share per relay and hour, last 3h"}
	for _, sum := range sums {
		hm.Start = sum.Hourly[0].Hour
		row := make([]chart.Cell, len(sum.Hourly))
		for i, h := range sum.Hourly {
			row[i] = chart.Cell{Attempts: h.Attempts, Failures: h.Failures}
		}
		hm.Relays, hm.Cells = append(hm.Relays, sum.Relay), append(hm.Cells, row)
	}
	if _, err := outbox.Put(ctx, s, outbox.Message{Key: "report:2026-03-02T12", Kind: storage.KindReport, Channel: "CREPORTS",
		Payload: outbox.Payload{Response: message.Response{Title: "gmailtls report", Summary: "3 relays", Verdict: message.VerdictWarn}}}); err != nil {
		return err
	}
	if _, err := outbox.Put(ctx, s, outbox.Message{Key: "report:2026-03-02T12:chart", Kind: storage.KindReport, Channel: "CREPORTS",
		ThreadKey: "report:2026-03-02T12", Payload: outbox.Payload{WithChart: true, Chart: &hm}}); err != nil {
		return err
	}
	if _, err := s.Rollup(ctx, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	// One self-contained, compact file: no WAL beside it.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range []string{"PRAGMA journal_mode = DELETE", "VACUUM"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// results is one run of a relay toward two MX hosts, as the alerts tests
// script them.
func results(relay string, ok bool, at time.Time) []probe.Result {
	var out []probe.Result
	for i, mx := range []string{"gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com"} {
		r := probe.Result{Relay: relay, Engine: probe.EngineNative, SourceIP: "192.0.2.10", MX: mx, Preference: uint16(5 + 5*i),
			IP: fmt.Sprintf("142.250.102.%d", 26+i), Port: 25, StartedAt: at, OK: ok}
		if ok {
			r.TLS = &probe.TLSInfo{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", Verified: true}
			r.Timings = probe.Timings{Connect: 10, Banner: 20, EHLO: 5, StartTLS: 5, Handshake: 40, PostTLS: 5, Total: 85}
		} else {
			r.Stage, r.Failure = probe.StageHandshake, probe.FailTLSReset
			r.Error = "read tcp 192.0.2.10:40000->" + r.IP + ":25: read: connection reset by peer"
			r.Timings = probe.Timings{Connect: 10, Banner: 20, EHLO: 5, StartTLS: 5, Handshake: 3, Total: 43}
			r.Transcript = []string{"S: 220 mx.google.com ESMTP - gsmtp", "C: EHLO relay.example.net",
				"S: 250-mx.google.com at your service", "S: 250-STARTTLS", "C: STARTTLS",
				"S: 220 2.0.0 Ready to start TLS", "!! TLS handshake: connection reset by peer"}
		}
		out = append(out, r)
	}
	return out
}

// evaluator is what commands.Handler.Evaluate does, in small: rebuild the
// assessment from stored history and store each level change as an event.
func evaluator(s *storage.Store, now func() time.Time) func(ctx context.Context) (escalation.Assessment, error) {
	return func(ctx context.Context) (escalation.Assessment, error) {
		stored, err := s.Recent(ctx, now().Add(-24*time.Hour), 1000)
		if err != nil {
			return escalation.Assessment{}, err
		}
		obs := make([]escalation.Observation, len(stored))
		for i, r := range stored {
			obs[i] = escalation.Observation{ID: r.ID, Relay: r.Relay, SourceIP: r.SourceIP, MX: r.MX, IP: r.IP,
				At: r.StartedAt, OK: r.OK, Failure: string(r.Failure), RunID: r.RunID}
		}
		next := escalation.Replay(obs, nil, escalation.DefaultPolicy())
		var prev escalation.Assessment
		announced := func(relay string) escalation.RelayState {
			st := escalation.RelayState{Relay: relay, Level: escalation.LevelOK}
			if ev, ok, _ := s.LastEvent(ctx, relay); ok {
				st.Level = escalation.Level(ev.To)
			}
			return st
		}
		for _, r := range next.Relays {
			prev.Relays = append(prev.Relays, announced(r.Relay))
		}
		prev.Global = announced("")
		for _, c := range escalation.Diff(prev, next, now()) {
			if _, err := s.AddEvent(ctx, storage.Event{Relay: c.Relay, From: string(c.From), To: string(c.To),
				Scope: string(c.Scope), Advice: c.Advice, Evidence: c.Evidence, At: c.At}); err != nil {
				return next, err
			}
		}
		return next, nil
	}
}
