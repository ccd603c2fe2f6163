package storage

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/manualclock"
)

// twoReplicas opens the same fresh database of engine e twice, as two
// serve replicas do, both on clock c.
func twoReplicas(t *testing.T, e engine, c *manualclock.Clock) (a, b *Store) {
	t.Helper()
	loc := e.fresh(t)
	return e.open(t, loc, c), e.open(t, loc, c)
}

func wantLease(t *testing.T, what string, l Lease, holder string, token int64, acquired, expires time.Time) {
	t.Helper()
	if l.Name != "serve" || l.Holder != holder || l.Token != token || !l.Acquired.Equal(acquired) || !l.Expires.Equal(expires) {
		t.Errorf("%s: lease %+v, want serve held by %s under token %d, acquired %s, expiring %s",
			what, l, holder, token, acquired.Format(time.TimeOnly), expires.Format(time.TimeOnly))
	}
}

// TestLeaseLifecycle: the first replica takes the free lease with token 1
// and renews it under that token; the second gets the holder's lease back
// until it expires, then takes it with token 2; the first, back, is a
// follower; a release frees the lease at once and its token keeps growing.
func TestLeaseLifecycle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		c := manualclock.New(t0)
		a, b := twoReplicas(t, e, c)
		const ttl = 10 * time.Second

		if _, held, err := a.CurrentLease(ctx, "serve"); err != nil || held {
			t.Fatalf("a lease never taken is held (%v)", err)
		}
		l, err := a.AcquireLease(ctx, "serve", "a", ttl)
		if err != nil {
			t.Fatal(err)
		}
		wantLease(t, "first acquire", l, "a", 1, t0, t0.Add(ttl))

		c.Advance(2 * time.Second)
		if l, err = a.AcquireLease(ctx, "serve", "a", ttl); err != nil {
			t.Fatal(err)
		}
		wantLease(t, "renewal", l, "a", 1, t0, t0.Add(12*time.Second))

		c.Advance(9 * time.Second) // 11 s: 1 s before a's lease lapses
		if l, err = b.AcquireLease(ctx, "serve", "b", ttl); err != nil {
			t.Fatal(err)
		}
		wantLease(t, "b while a holds it", l, "a", 1, t0, t0.Add(12*time.Second))
		if cur, held, err := b.CurrentLease(ctx, "serve"); err != nil || !held {
			t.Fatalf("a's lease is not held (%v)", err)
		} else {
			wantLease(t, "current", cur, "a", 1, t0, t0.Add(12*time.Second))
		}

		c.Advance(time.Second) // 12 s: a's lease expires now
		if _, held, err := b.CurrentLease(ctx, "serve"); err != nil || held {
			t.Fatalf("an expired lease is held (%v)", err)
		}
		at := c.Now()
		if l, err = b.AcquireLease(ctx, "serve", "b", ttl); err != nil {
			t.Fatal(err)
		}
		wantLease(t, "b takes the expired lease", l, "b", 2, at, at.Add(ttl))

		// a comes back: a follower now; its old fence writes nothing.
		if l, err = a.AcquireLease(ctx, "serve", "a", ttl); err != nil {
			t.Fatal(err)
		}
		wantLease(t, "a after the takeover", l, "b", 2, at, at.Add(ttl))
		if err := a.ReleaseLease(ctx, Fence{Name: "serve", Holder: "a", Token: 1}); err != nil {
			t.Fatal(err)
		}
		if cur, held, _ := a.CurrentLease(ctx, "serve"); !held || cur.Holder != "b" {
			t.Fatalf("a's stale release freed b's lease: %+v held %v", cur, held)
		}

		// b shuts down cleanly: the lease is free at once, for the next token.
		c.Advance(time.Second)
		if err := b.ReleaseLease(ctx, l.Fence()); err != nil {
			t.Fatal(err)
		}
		if _, held, err := a.CurrentLease(ctx, "serve"); err != nil || held {
			t.Fatalf("a released lease is still held (%v)", err)
		}
		at = c.Now()
		if l, err = a.AcquireLease(ctx, "serve", "a", ttl); err != nil {
			t.Fatal(err)
		}
		wantLease(t, "a after b's release", l, "a", 3, at, at.Add(ttl))

		// The holder that let its own lease expire starts a new term.
		c.Advance(ttl)
		at = c.Now()
		if l, err = a.AcquireLease(ctx, "serve", "a", ttl); err != nil {
			t.Fatal(err)
		}
		wantLease(t, "a after its own lease expired", l, "a", 4, at, at.Add(ttl))

		if _, err := a.AcquireLease(ctx, "serve", "a", 0); err == nil {
			t.Error("a lease without a time to live was taken")
		}
		if _, err := a.AcquireLease(ctx, "serve", "", ttl); err == nil {
			t.Error("a lease without a holder was taken")
		}
	})
}

// TestLeaseOneWinner: replicas racing for a free lease from many
// goroutines each get the same single holder and token back.
func TestLeaseOneWinner(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		c := manualclock.New(t0)
		a, b := twoReplicas(t, e, c)
		var wg sync.WaitGroup
		got := make([]Lease, 8)
		for i := range got {
			s, holder := a, "a"
			if i%2 == 1 {
				s, holder = b, "b"
			}
			wg.Go(func() {
				l, err := s.AcquireLease(context.Background(), "serve", holder, 10*time.Second)
				if err != nil {
					t.Error(err)
				}
				got[i] = l
			})
		}
		wg.Wait()
		for _, l := range got[1:] {
			if l.Holder != got[0].Holder || l.Token != 1 || got[0].Token != 1 {
				t.Fatalf("racing replicas saw different leases: %+v", got)
			}
		}
	})
}

// TestClaimMessageFenced: the leader claims a pending message under its
// fence; a deposed leader (the lease taken over, or only expired) gets
// ErrDeposed and the claim is not recorded; a delivered message is not
// claimed again.
func TestClaimMessageFenced(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		c := manualclock.New(t0)
		a, b := twoReplicas(t, e, c)
		id, _, err := a.Enqueue(ctx, OutboxMessage{Key: "alert:relay-1:1", Kind: KindAlert, Channel: "C1", Payload: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		la, err := a.AcquireLease(ctx, "serve", "a", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.ClaimMessage(ctx, id, la.Fence()); err != nil {
			t.Fatalf("the leader's claim: %v", err)
		}
		if h, tok := claimOf(t, a, id); h != "a" || tok != 1 {
			t.Errorf("claim recorded as %s/%d, want a/1", h, tok)
		}
		if err := a.ClaimMessage(ctx, id+100, la.Fence()); !errors.Is(err, ErrNotFound) {
			t.Errorf("claim of a missing message: %v, want ErrNotFound", err)
		}

		// Only expired, not yet taken: a is no longer the leader either.
		c.Advance(10 * time.Second)
		if err := a.ClaimMessage(ctx, id, la.Fence()); !errors.Is(err, ErrDeposed) {
			t.Errorf("claim under an expired lease: %v, want ErrDeposed", err)
		}
		lb, err := b.AcquireLease(ctx, "serve", "b", 10*time.Second)
		if err != nil || lb.Holder != "b" {
			t.Fatal(lb, err)
		}
		err = a.ClaimMessage(ctx, id, la.Fence())
		if !errors.Is(err, ErrDeposed) {
			t.Fatalf("claim by the deposed leader: %v, want ErrDeposed", err)
		}
		t.Logf("deposed: %v", err)
		if h, tok := claimOf(t, a, id); h != "a" || tok != 1 {
			t.Errorf("a refused claim was recorded: %s/%d", h, tok)
		}
		if err := b.ClaimMessage(ctx, id, lb.Fence()); err != nil {
			t.Fatalf("the new leader's claim: %v", err)
		}
		if h, tok := claimOf(t, a, id); h != "b" || tok != 2 {
			t.Errorf("claim recorded as %s/%d, want b/2", h, tok)
		}
		if err := b.MarkSent(ctx, id, "1.0001"); err != nil {
			t.Fatal(err)
		}
		if err := b.ClaimMessage(ctx, id, lb.Fence()); !errors.Is(err, ErrNotPending) {
			t.Errorf("claim of a sent message: %v, want ErrNotPending", err)
		}
	})
}

func claimOf(t *testing.T, s *Store, id int64) (holder string, token int64) {
	t.Helper()
	if err := s.db.QueryRowContext(context.Background(), `SELECT holder, token FROM outbox_claims WHERE message_id = ?`, id).
		Scan(&holder, &token); err != nil {
		t.Fatal(err)
	}
	return holder, token
}
