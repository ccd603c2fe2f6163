package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/outbox"
	"github.com/gmailtls/gmailtls/storage"
)

// waitUntil polls cond every 20 ms for up to d.
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeSingleReplicaLeads: a lone serve leads from its start; /readyz,
// gmailtls_leader and status name it; a clean stop releases the lease.
func TestServeSingleReplicaLeads(t *testing.T) {
	f := startServe(t, "socket", "")
	waitUntil(t, "a lone replica leads", time.Second, f.d.elector.IsLeader)
	id := f.d.elector.Replica()
	if body := httpGet(t, f.metrics+"/readyz", 200); body != "ok\nrole: leader\nleader: "+id+"\n" {
		t.Errorf("/readyz = %q", body)
	}
	if body := httpGet(t, f.metrics+"/metrics", 200); !strings.Contains(body, "\ngmailtls_leader 1\n") {
		t.Errorf("/metrics:\n%s", grepLines(body, "gmailtls_leader"))
	}
	st, err := f.d.mon.Status(context.Background(), f.d.mon.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader == nil || st.Leader.Replica != id || st.Leader.Token != 1 || !st.Leader.Expires.After(time.Now()) {
		t.Errorf("status names the leader %+v, want %s", st.Leader, id)
	}
	f.stop(t)
	s, err := storage.Open(context.Background(), filepath.Join(filepath.Dir(f.cfgPath), "serve.db"), storage.Options{Mode: storage.ModeReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if l, held, err := s.CurrentLease(context.Background(), monitor.LeaseName); err != nil || held {
		t.Errorf("after a clean stop the lease is still held: %+v (%v)", l, err)
	}
}

// TestServeDeposedLeaderNeverPosts: once another replica holds the lease
// (taken while this one was paused), this replica posts nothing, though
// its elector has not noticed yet: a message enqueued then stays pending
// and the Slack stand-in gets no chat.postMessage; it turns follower
// (/readyz, gmailtls_leader), and when the lease is free again it leads
// under the next token and delivers the message, once.
func TestServeDeposedLeaderNeverPosts(t *testing.T) {
	f := startServe(t, "socket", "")
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(filepath.Dir(f.cfgPath), "serve.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	far := time.Now().Add(time.Hour).UnixMilli()
	if _, err := db.ExecContext(ctx, `UPDATE leases SET holder = 'intruder:1:ff', token = token + 1, expires_at = ? WHERE name = 'serve'`, far); err != nil {
		t.Fatal(err)
	}
	posts := len(f.slack.CallsTo("chat.postMessage"))
	if _, err := outbox.Put(ctx, f.d.store, outbox.Message{Key: "alert:deposed", Kind: storage.KindAlert, Channel: "C0456EFGH",
		Payload: outbox.Payload{Response: message.Response{Title: "deposed leader's alert"}}}); err != nil {
		t.Fatal(err)
	}
	f.d.worker.Notify()
	waitUntil(t, "the leader notices it was deposed", 5*time.Second, func() bool { return !f.d.elector.IsLeader() })
	time.Sleep(time.Second)
	if n := len(f.slack.CallsTo("chat.postMessage")); n != posts {
		t.Fatalf("the deposed leader posted %d messages", n-posts)
	}
	if m, _, err := f.d.store.MessageByKey(ctx, "alert:deposed"); err != nil || m.State != storage.OutboxPending {
		t.Fatalf("the message is %+v (%v), want pending", m, err)
	}
	if body := httpGet(t, f.metrics+"/readyz", 200); body != "ok\nrole: follower\nleader: intruder:1:ff\n" {
		t.Errorf("/readyz on the deposed replica = %q", body)
	}
	if body := httpGet(t, f.metrics+"/metrics", 200); !strings.Contains(body, "\ngmailtls_leader 0\n") {
		t.Errorf("/metrics:\n%s", grepLines(body, "gmailtls_leader"))
	}

	// The intruder goes away: this replica leads again and delivers.
	if _, err := db.ExecContext(ctx, `UPDATE leases SET expires_at = 1 WHERE name = 'serve'`); err != nil {
		t.Fatal(err)
	}
	f.wait(t, "the alert delivered by the new term", func() bool {
		for _, m := range f.slack.MessagesBy("chat.postMessage") {
			if strings.Contains(m.Text, "deposed leader's alert") || strings.Contains(blocksText(m.Blocks), "deposed leader's alert") {
				return true
			}
		}
		return false
	})
	if !f.d.elector.IsLeader() || f.d.elector.State().Lease.Token != 3 {
		t.Errorf("after the intruder left: leader %v, state %+v; want a new term under token 3", f.d.elector.IsLeader(), f.d.elector.State())
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(f.slack.CallsTo("chat.postMessage")); n != posts+1 {
		t.Errorf("%d posts after the new term, want the alert once", n-posts)
	}
}
