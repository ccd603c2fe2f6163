package outbox

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/storage"
)

// TestDeposedWorkerNeverPosts: two replicas' workers on one database, each
// claiming under its own lease's fence. The leader delivers; once another
// replica took the lease, the old leader's worker posts nothing, stops
// with storage.ErrDeposed and leaves the message pending; the new leader
// delivers it, once.
func TestDeposedWorkerNeverPosts(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	path := filepath.Join(t.TempDir(), "gmailtls.db")
	sa, sb := openStore(t, path, c.Now), openStore(t, path, c.Now)
	la, err := sa.AcquireLease(ctx, "serve", "a", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sendA, sendB := &fakeSender{now: c.Now}, &fakeSender{now: c.Now}
	wa := &Worker{Store: sa, Sender: sendA, Now: c.Now, Poll: time.Hour,
		Claim: func(ctx context.Context, id int64) error { return sa.ClaimMessage(ctx, id, la.Fence()) }}
	put(t, sa, Message{Key: "alert:1", Channel: "C1"})
	if n, err := wa.Drain(ctx); n != 1 || err != nil {
		t.Fatalf("the leader delivered %d (%v)", n, err)
	}

	c.Advance(11 * time.Second) // a was paused past its lease
	lb, err := sb.AcquireLease(ctx, "serve", "b", 10*time.Second)
	if err != nil || lb.Holder != "b" {
		t.Fatal(lb, err)
	}
	put(t, sa, Message{Key: "alert:2", Channel: "C1"})
	done := make(chan error, 1)
	go func() { done <- wa.Run(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, storage.ErrDeposed) {
			t.Fatalf("the deposed worker's Run returned %v, want ErrDeposed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the deposed worker did not stop")
	}
	if n := len(sendA.all()); n != 1 {
		t.Fatalf("the deposed leader made %d calls to Slack in all, want only alert:1's", n)
	}
	if m, _, _ := sa.MessageByKey(ctx, "alert:2"); m.State != storage.OutboxPending || m.Attempts != 0 {
		t.Errorf("alert:2 after the deposed worker: %+v", m)
	}

	wb := &Worker{Store: sb, Sender: sendB, Now: c.Now,
		Claim: func(ctx context.Context, id int64) error { return sb.ClaimMessage(ctx, id, lb.Fence()) }}
	if n, err := wb.Drain(ctx); n != 1 || err != nil {
		t.Fatalf("the new leader delivered %d (%v)", n, err)
	}
	if d := sendB.delivered(); len(d) != 1 || d[0].key != "alert:2" {
		t.Errorf("the new leader posted %+v, want alert:2 once", d)
	}
}

// TestClaimSkipsMessageNoLongerPending: a message that the claim finds no
// longer pending (delivered by an earlier leader after this worker read
// it) is not posted, and the later ones are.
func TestClaimSkipsMessageNoLongerPending(t *testing.T) {
	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	send := &fakeSender{now: c.Now}
	put(t, s, Message{Key: "alert:1", Channel: "C1"})
	put(t, s, Message{Key: "alert:2", Channel: "C1"})
	first, _, _ := s.MessageByKey(context.Background(), "alert:1")
	w := &Worker{Store: s, Sender: send, Now: c.Now, Claim: func(ctx context.Context, id int64) error {
		if id == first.ID {
			return storage.ErrNotPending
		}
		return nil
	}}
	if n, err := w.Drain(context.Background()); n != 1 || err != nil {
		t.Fatalf("delivered %d (%v), want 1", n, err)
	}
	if d := send.delivered(); len(d) != 1 || d[0].key != "alert:2" {
		t.Errorf("posted %+v, want alert:2 only", d)
	}
}
