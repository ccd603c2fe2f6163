package monitor

import (
	"context"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/message"
)

// TestRecords: the command layer's reads and writes through the monitor
// reach the real database: history newest first in the monitor's own
// type, a result with its transcript, an unknown relay's empty history and
// a removed result as "not found" rather than errors, relays known by name
// (a retired one too), pauses and the audit log.
func TestRecords(t *testing.T) {
	e := newTestEnv(t, "relay-1", "relay-2")
	ctx := context.Background()
	e.check("relay-1", "ok")
	failed := e.check("relay-1", "tls_reset")

	hist, err := e.m.History(ctx, HistoryQuery{Relay: "relay-1", FailuresOnly: true, WithTranscript: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) == 0 || hist[0].OK || hist[0].Failure != "tls_reset" || hist[0].RunID != failed.RunID || hist[0].Trigger != message.SourceSchedule {
		t.Fatalf("failures of relay-1: %+v", hist)
	}
	all, err := e.m.History(ctx, HistoryQuery{Relay: "relay-1"})
	if err != nil || len(all) <= len(hist) || all[0].StartedAt.Before(all[len(all)-1].StartedAt) {
		t.Fatalf("history of relay-1: %d results, err %v; want more than the %d failures, newest first", len(all), err, len(hist))
	}
	if none, err := e.m.History(ctx, HistoryQuery{Relay: "relay-9"}); err != nil || len(none) != 0 {
		t.Fatalf("history of an unknown relay: %v, %v; want none and no error", none, err)
	}

	r, found, err := e.m.Result(ctx, hist[0].ID)
	if err != nil || !found || r.ID != hist[0].ID || r.Relay != "relay-1" || len(r.Transcript) == 0 {
		t.Fatalf("result %d: %+v found=%v err=%v; want it with its transcript", hist[0].ID, r, found, err)
	}
	if _, found, err := e.m.Result(ctx, 1<<40); err != nil || found {
		t.Fatalf("a missing result: found=%v err=%v; want not found and no error", found, err)
	}

	for name, want := range map[string]bool{"relay-1": true, "relay-2": true, "relay-9": false} {
		if got, err := e.m.KnownRelay(ctx, name); err != nil || got != want {
			t.Errorf("KnownRelay(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	e.cfg.Relays = e.cfg.Relays[:1] // relay-2 retires and keeps its name
	e.restart()
	if got, err := e.m.KnownRelay(ctx, "relay-2"); err != nil || !got {
		t.Errorf("KnownRelay(retired relay-2) = %v, %v; want true", got, err)
	}

	until := e.clock.Now().Add(time.Hour)
	if err := e.m.Pause(ctx, "relay-1", until, "alice"); err != nil {
		t.Fatal(err)
	}
	rels, err := e.store.Relays(ctx, false)
	if err != nil || len(rels) != 1 || !rels[0].PausedUntil.Equal(until) || rels[0].PausedBy != "alice" {
		t.Fatalf("after the pause: %+v, %v", rels, err)
	}
	if err := e.m.Resume(ctx, "relay-1", "bob"); err != nil {
		t.Fatal(err)
	}
	if rels, err = e.store.Relays(ctx, false); err != nil || rels[0].Paused(e.clock.Now()) || rels[0].PausedBy != "bob" {
		t.Fatalf("after the resume: %+v, %v", rels, err)
	}

	a := AuditEntry{UserID: "U1", UserName: "alice", ChannelID: "C1", Text: "pause relay-1 1h", Source: message.SourceSlash, At: e.clock.Now(), Outcome: "ok"}
	if err := e.m.Audit(ctx, a); err != nil {
		t.Fatal(err)
	}
	log, err := e.store.AuditLog(ctx, 10)
	if err != nil || len(log) != 1 || log[0].Text != a.Text || log[0].UserName != a.UserName || log[0].Source != a.Source || log[0].Outcome != a.Outcome {
		t.Fatalf("audit log: %+v, %v; want the entry written", log, err)
	}
}
