package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/manualclock"
)

func TestOutboxExactlyOnce(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		path := e.fresh(t)
		c := manualclock.New(t0)
		s := e.open(t, path, c)
		alert := OutboxMessage{Key: "alert:relay-1:42", Kind: KindAlert, Channel: "C0456", Payload: []byte(`{"text":"relay-1 investigate"}`)}
		id, created, err := s.Enqueue(ctx, alert)
		if err != nil || !created {
			t.Fatal(created, err)
		}
		// Produced again (e.g. after a restart): no second row.
		id2, created, err := s.Enqueue(ctx, alert)
		if err != nil || created || id2 != id {
			t.Fatalf("second enqueue: id %d created %v err %v", id2, created, err)
		}
		res := OutboxMessage{Key: "resolution:relay-1:42", Kind: KindResolution, Channel: "C0456", ThreadKey: alert.Key, Payload: []byte(`{}`),
			NextAttempt: t0.Add(time.Minute)}
		rid, _, err := s.Enqueue(ctx, res)
		if err != nil {
			t.Fatal(err)
		}
		due, err := s.DueMessages(ctx, t0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) != 1 || due[0].ID != id || string(due[0].Payload) != string(alert.Payload) || due[0].State != OutboxPending || !due[0].CreatedAt.Equal(t0) {
			t.Fatalf("due %+v", due)
		}
		pending, oldest, failed, err := s.OutboxStats(ctx, t0.Add(90*time.Second))
		if err != nil || pending != 2 || oldest != 90*time.Second || failed != 0 {
			t.Fatalf("stats %d %v %d %v", pending, oldest, failed, err)
		}

		// Slack answers 429: retry later; then it is delivered.
		if err := s.MarkRetry(ctx, id, t0.Add(30*time.Second), "rate limited; Retry-After 30s"); err != nil {
			t.Fatal(err)
		}
		if due, _ := s.DueMessages(ctx, t0.Add(10*time.Second), 10); len(due) != 0 {
			t.Fatalf("due during backoff: %+v", due)
		}
		// Pending regardless of the next attempt, in enqueue order.
		if p, err := s.PendingMessages(ctx, 0, 0); err != nil || len(p) != 2 || p[0].ID != id || p[1].ID != rid || !p[0].NextAttempt.Equal(t0.Add(30*time.Second)) {
			t.Fatalf("pending during backoff: %+v %v", p, err)
		}
		if p, _ := s.PendingMessages(ctx, 0, 1); len(p) != 1 || p[0].ID != id {
			t.Fatalf("pending, limit 1: %+v", p)
		}
		if p, _ := s.PendingMessages(ctx, id, 1); len(p) != 1 || p[0].ID != rid {
			t.Fatalf("pending after the first page: %+v", p)
		}
		// The process dies here and restarts: the message is still pending.
		s.Close()
		s = e.open(t, path, c)
		due, _ = s.DueMessages(ctx, t0.Add(time.Minute), 10)
		if len(due) != 2 || due[0].ID != id || due[0].Attempts != 1 || due[0].LastError == "" || due[1].ThreadKey != alert.Key {
			t.Fatalf("due after restart %+v", due)
		}
		if err := s.MarkSent(ctx, id, "1700000000.000100"); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkFailed(ctx, rid, "channel_not_found"); err != nil {
			t.Fatal(err)
		}
		m, ok, err := s.MessageByKey(ctx, alert.Key)
		if err != nil || !ok || m.State != OutboxSent || m.TS != "1700000000.000100" || m.Attempts != 2 || m.LastError != "" {
			t.Fatalf("sent message %+v %v %v", m, ok, err)
		}
		if _, ok, _ := s.MessageByKey(ctx, "nope"); ok {
			t.Error("unknown key found")
		}
		if due, _ := s.DueMessages(ctx, t0.Add(time.Hour), 10); len(due) != 0 {
			t.Fatalf("due after delivery: %+v", due)
		}
		if p, _ := s.PendingMessages(ctx, 0, 10); len(p) != 0 {
			t.Fatalf("pending after delivery: %+v", p)
		}
		// Enqueuing a delivered key again does not resurrect it.
		if _, created, _ := s.Enqueue(ctx, alert); created {
			t.Error("delivered message enqueued again")
		}
		pending, _, failed, _ = s.OutboxStats(ctx, t0.Add(time.Hour))
		if pending != 0 || failed != 1 {
			t.Fatalf("stats after: pending %d failed %d", pending, failed)
		}
		fm, _ := s.FailedMessages(ctx, 0)
		if len(fm) != 1 || fm[0].LastError != "channel_not_found" {
			t.Fatalf("failed messages %+v", fm)
		}
		// Retention removes delivered messages past the rollup retention only.
		st, err := s.Rollup(ctx, t0, t0.Add(time.Second))
		if err != nil || st.MessagesDeleted != 2 {
			t.Fatalf("retention of the outbox: %+v %v", st, err)
		}
		if _, _, err := s.Enqueue(ctx, OutboxMessage{}); err == nil {
			t.Error("message without key accepted")
		}
	})
}

// TestOutboxParts: the parts of a long message that went out are kept
// across a restart: its main message's ts on the still pending message,
// each thread reply as a sent record under ReplyKey; recording a part
// twice keeps one record, and records neither count as pending nor show
// among the pending messages.
func TestOutboxParts(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		path := e.fresh(t)
		c := manualclock.New(t0)
		s := e.open(t, path, c)
		report := OutboxMessage{Key: "report:C1:2026-03-02T09:00Z", Kind: KindReport, Channel: "C1", Payload: []byte(`{}`)}
		id, _, err := s.Enqueue(ctx, report)
		if err != nil {
			t.Fatal(err)
		}
		// Another thread child of the report is not one of its replies.
		if _, _, err := s.Enqueue(ctx, OutboxMessage{Key: report.Key + ":chart", Kind: KindReport, Channel: "C1", ThreadKey: report.Key, Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.RepliesSent(ctx, report.Key); err != nil || n != 0 {
			t.Fatalf("RepliesSent before any = %d, %v", n, err)
		}
		for _, p := range []struct {
			part int
			ts   string
		}{{0, "1700000000.000001"}, {1, "1700000000.000002"}, {2, "1700000000.000003"}, {2, "1700000000.000009"}} {
			if err := s.MarkPartSent(ctx, id, p.part, p.ts); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.MarkPartSent(ctx, 999, 1, "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("MarkPartSent of no message: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = e.open(t, path, c)
		pending, err := s.PendingMessages(ctx, 0, 10)
		if err != nil || len(pending) != 2 || pending[0].Key != report.Key || pending[0].TS != "1700000000.000001" {
			t.Fatalf("pending after a restart %+v, %v", pending, err)
		}
		if n, err := s.RepliesSent(ctx, report.Key); err != nil || n != 2 {
			t.Fatalf("RepliesSent = %d, %v, want 2", n, err)
		}
		r2, ok, err := s.MessageByKey(ctx, ReplyKey(report.Key, 2))
		if err != nil || !ok || r2.State != OutboxSent || r2.TS != "1700000000.000003" || r2.ThreadKey != report.Key || r2.Channel != "C1" {
			t.Errorf("reply 2 record %+v, %v, %v", r2, ok, err)
		}
		if n, _, failed, err := s.OutboxStats(ctx, t0); err != nil || n != 2 || failed != 0 {
			t.Errorf("stats %d pending %d failed (%v), want 2 and 0", n, failed, err)
		}
		if err := s.MarkSent(ctx, id, "1700000000.000001"); err != nil {
			t.Fatal(err)
		}
	})
}
