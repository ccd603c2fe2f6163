package storage

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestOutboxExactlyOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "o.db")
	c := &clock{t0}
	s := openTest(t, path, c)
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
	s = openTest(t, path, c)
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
}
