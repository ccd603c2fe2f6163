package leader

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gmailtls/gmailtls/internal/pglab"
	"github.com/gmailtls/gmailtls/storage"
)

// memStore is a lease table in memory with storage's semantics, on the
// runtime clock (which testing/synctest fakes). hang makes every call
// block until its context ends (a database that stopped answering); fail
// makes every call fail.
type memStore struct {
	mu    sync.Mutex
	lease storage.Lease
	hang  bool
	fail  error
	calls int
}

func (m *memStore) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (storage.Lease, error) {
	m.mu.Lock()
	m.calls++
	hang, fail := m.hang, m.fail
	m.mu.Unlock()
	if hang {
		<-ctx.Done()
		return storage.Lease{}, ctx.Err()
	}
	if fail != nil {
		return storage.Lease{}, fail
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	switch {
	case m.lease.Expires.After(now) && m.lease.Holder != holder:
	case m.lease.Expires.After(now):
		m.lease.Expires = now.Add(ttl)
	default:
		m.lease = storage.Lease{Name: name, Holder: holder, Token: m.lease.Token + 1, Acquired: now, Expires: now.Add(ttl)}
	}
	return m.lease, nil
}

func (m *memStore) ReleaseLease(ctx context.Context, f storage.Fence) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hang {
		return errors.New("database not answering")
	}
	if m.lease.Holder == f.Holder && m.lease.Token == f.Token && m.lease.Expires.After(time.Now()) {
		m.lease.Expires = time.Now()
	}
	return nil
}

func (m *memStore) set(f func(m *memStore)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m)
}

func (m *memStore) get() storage.Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease
}

// terms records the terms a lead function ran: start and end, fence.
type terms struct {
	mu   sync.Mutex
	list []term
}

type term struct {
	fence      storage.Fence
	start, end time.Time
}

func (ts *terms) lead(ctx context.Context, f storage.Fence) {
	ts.mu.Lock()
	i := len(ts.list)
	ts.list = append(ts.list, term{fence: f, start: time.Now()})
	ts.mu.Unlock()
	<-ctx.Done()
	ts.mu.Lock()
	ts.list[i].end = time.Now()
	ts.mu.Unlock()
}

func (ts *terms) all() []term {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]term(nil), ts.list...)
}

func logTo(b *syncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestLeadAtOnceAndHandOverOnShutdown: the first replica leads as soon as
// it starts, the second follows and knows who leads; a clean shutdown of
// the leader ends its work, releases the lease, and the follower leads
// within one interval.
func TestMain(m *testing.M) { os.Exit(pglab.Main(m)) }

func TestLeadAtOnceAndHandOverOnShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStore{}
		var logs syncBuffer
		var ta, tb terms
		a := &Elector{Store: st, ID: "a", Logger: logTo(&logs)}
		b := &Elector{Store: st, ID: "b", Logger: logTo(&logs)}
		start := time.Now()
		actx, stopA := context.WithCancel(t.Context())
		aDone := make(chan error)
		go func() { aDone <- a.Run(actx, ta.lead) }()
		synctest.Wait()
		if !a.IsLeader() || len(ta.all()) != 1 || !ta.all()[0].start.Equal(start) {
			t.Fatalf("a does not lead at once: leader %v, terms %+v", a.IsLeader(), ta.all())
		}
		if f := ta.all()[0].fence; f != (storage.Fence{Name: DefaultName, Holder: "a", Token: 1}) {
			t.Errorf("a's fence %+v", f)
		}
		bctx, stopB := context.WithCancel(t.Context())
		defer stopB()
		go func() { _ = b.Run(bctx, tb.lead) }()
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if b.IsLeader() || len(tb.all()) != 0 || !a.IsLeader() || len(ta.all()) != 1 {
			t.Fatalf("after 30 s: a leads %v (%d terms), b leads %v (%d terms)", a.IsLeader(), len(ta.all()), b.IsLeader(), len(tb.all()))
		}
		if s := b.State(); !s.Known || s.Lease.Holder != "a" || s.Lease.Token != 1 || !s.Lease.Acquired.Equal(start) || s.ID != "b" {
			t.Errorf("b's state %+v, want a leading since the start", s)
		}
		if s := a.State(); !s.Leader || s.Lease.Expires.Before(time.Now().Add(DefaultTTL-DefaultInterval)) {
			t.Errorf("a's state %+v: the lease is not renewed", s)
		}

		stopped := time.Now()
		stopA()
		if err := <-aDone; !errors.Is(err, context.Canceled) {
			t.Errorf("a's Run returned %v", err)
		}
		if a.IsLeader() || ta.all()[0].end.IsZero() {
			t.Error("a still leads after its shutdown")
		}
		time.Sleep(DefaultInterval)
		synctest.Wait()
		got := tb.all()
		if !b.IsLeader() || len(got) != 1 || got[0].start.Sub(stopped) > DefaultInterval || got[0].fence.Token != 2 {
			t.Fatalf("b after a's shutdown: leads %v, terms %+v", b.IsLeader(), got)
		}
		for _, want := range []string{`msg="became leader" replica=a lease_token=1`, `msg="leadership released" replica=a lease_token=1`,
			`msg="became leader" replica=b lease_token=2`} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %s:\n%s", want, logs.String())
			}
		}
	})
}

// TestStuckDatabaseStopsLeaderBeforeExpiry: when the database stops
// answering, the leader's work ends at the local deadline, the send time
// of the last successful renew + TTL - margin, before the lease can
// expire for anyone else; once the database answers again, the lease
// having lapsed, a follower takes it under the next token.
func TestStuckDatabaseStopsLeaderBeforeExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStore{}
		var logs syncBuffer
		var ta, tb terms
		a := &Elector{Store: st, ID: "a", Logger: logTo(&logs)}
		go func() { _ = a.Run(t.Context(), ta.lead) }()
		time.Sleep(5 * time.Second) // renewed at 2 s and 4 s
		synctest.Wait()
		lastRenew := time.Now().Add(-time.Second)
		st.set(func(m *memStore) { m.hang = true })
		expires := st.get().Expires
		if !expires.Equal(lastRenew.Add(DefaultTTL)) {
			t.Fatalf("lease expires %s, want 10 s after the renew at 4 s", expires)
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		got := ta.all()
		if len(got) != 1 || got[0].end.IsZero() || a.IsLeader() {
			t.Fatalf("a still leads with the database stuck: %+v", got)
		}
		if want := lastRenew.Add(DefaultTTL - DefaultMargin); !got[0].end.Equal(want) {
			t.Errorf("a's work ended at %s, want the local deadline %s", got[0].end.Sub(lastRenew), want.Sub(lastRenew))
		}
		if !got[0].end.Before(expires) {
			t.Errorf("a's work ended %s, not before its lease expired %s", got[0].end, expires)
		}
		if !strings.Contains(logs.String(), "lost leadership: no successful renew before the local deadline") {
			t.Errorf("log:\n%s", logs.String())
		}

		st.set(func(m *memStore) { m.hang = false })
		b := &Elector{Store: st, ID: "b"}
		go func() { _ = b.Run(t.Context(), tb.lead) }()
		time.Sleep(DefaultInterval)
		synctest.Wait()
		if n := len(ta.all()) + len(tb.all()); n != 2 || st.get().Token != 2 {
			t.Errorf("after the database came back: a %+v, b %+v, lease %+v; want one new term under token 2", ta.all(), tb.all(), st.get())
		}
	})
}

// TestDeposedAndFailedRenew: a leader whose renew finds another holder
// (the lease was taken while this replica was paused) stops at that
// renew; one whose renew fails stops at once and leads again, under the
// same token, when the database answers within the lease.
func TestDeposedAndFailedRenew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStore{}
		var logs syncBuffer
		var ta terms
		a := &Elector{Store: st, ID: "a", Logger: logTo(&logs)}
		go func() { _ = a.Run(t.Context(), ta.lead) }()
		time.Sleep(time.Second)
		st.set(func(m *memStore) { m.fail = errors.New("database is locked by another process") })
		time.Sleep(time.Second) // the renew at 2 s fails
		synctest.Wait()
		if got := ta.all(); len(got) != 1 || got[0].end.IsZero() || a.IsLeader() {
			t.Fatalf("a leads on after a failed renew: %+v", got)
		}
		if !strings.Contains(logs.String(), `lost leadership: the lease could not be renewed" replica=a lease_token=1`) {
			t.Errorf("log:\n%s", logs.String())
		}
		st.set(func(m *memStore) { m.fail = nil })
		time.Sleep(DefaultInterval)
		synctest.Wait()
		if got := ta.all(); len(got) != 2 || got[1].fence.Token != 1 || !a.IsLeader() {
			t.Fatalf("a does not lead again under token 1: %+v", got)
		}

		// Another replica takes the lease (a's lease as if expired while a
		// was paused).
		st.set(func(m *memStore) {
			m.lease = storage.Lease{Name: DefaultName, Holder: "b", Token: 2, Acquired: time.Now(), Expires: time.Now().Add(DefaultTTL)}
		})
		taken := time.Now()
		time.Sleep(DefaultInterval)
		synctest.Wait()
		got := ta.all()
		if len(got) != 2 || got[1].end.IsZero() || got[1].end.Sub(taken) > DefaultInterval || a.IsLeader() {
			t.Fatalf("a leads on when deposed: %+v", got)
		}
		if s := a.State(); s.Lease.Holder != "b" {
			t.Errorf("a's state names %s as the leader", s.Lease.Holder)
		}
		if !strings.Contains(logs.String(), `lost leadership: another replica holds the lease" replica=a lease_token=1 leader=b leader_token=2`) {
			t.Errorf("log:\n%s", logs.String())
		}
	})
}

// TestLeadEndsOnItsOwn: work that ends while the replica leads gives the
// lease up, and the replica tries again.
func TestLeadEndsOnItsOwn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStore{}
		a := &Elector{Store: st, ID: "a"}
		runs := 0
		go func() { _ = a.Run(t.Context(), func(context.Context, storage.Fence) { runs++ }) }()
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if runs != 2 {
			t.Errorf("lead ran %d times in 3 s, want twice (at 0 and at 2 s)", runs)
		}
		if l := st.get(); l.Token != 2 {
			t.Errorf("lease %+v: not released after the first term", l)
		}
	})
}

// TestTwoReplicasOnSQLite: two Electors on one SQLite file, on real time
// with a short lease: one leads; when it stops answering (its process
// frozen), the other takes over after the lease ends, never while the
// first still leads, and the deposed leader's fence is refused by a
// fenced write.
func TestTwoReplicasOnSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leader.db")
	testTwoReplicas(t, func() *storage.Store {
		s, err := storage.Open(t.Context(), path, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestTwoReplicasOnPostgres is TestTwoReplicasOnSQLite on PostgreSQL.
func TestTwoReplicasOnPostgres(t *testing.T) {
	dsn := pglab.NewDatabase(t)
	testTwoReplicas(t, func() *storage.Store {
		s, err := storage.Open(t.Context(), "", storage.Options{Driver: storage.EnginePostgres, DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func testTwoReplicas(t *testing.T, open func() *storage.Store) {
	ctx := t.Context()
	sa, sb := open(), open()
	frozen := &freezable{Store: sa}
	const ttl, interval, margin = 900 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond
	var ta, tb terms
	a := &Elector{Store: frozen, ID: "a", TTL: ttl, Interval: interval, Margin: margin}
	b := &Elector{Store: sb, ID: "b", TTL: ttl, Interval: interval, Margin: margin}
	go func() { _ = a.Run(ctx, ta.lead) }()
	waitFor(t, "a leads", func() bool { return a.IsLeader() && len(ta.all()) > 0 })
	go func() { _ = b.Run(ctx, tb.lead) }()
	time.Sleep(3 * ttl)
	if b.IsLeader() || !a.IsLeader() {
		t.Fatal("b took the lease while a renewed it")
	}
	id, _, err := sa.Enqueue(ctx, storage.OutboxMessage{Key: "alert:1", Kind: storage.KindAlert, Channel: "C1", Payload: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	fa := ta.all()[0].fence
	if err := sa.ClaimMessage(ctx, id, fa); err != nil {
		t.Fatalf("the leader's claim: %v", err)
	}

	frozen.freeze()
	// IsLeader turns true just before lead runs: wait for b's term too.
	waitFor(t, "b leads", func() bool { return b.IsLeader() && len(tb.all()) > 0 })
	aEnd, bStart := ta.all()[0].end, tb.all()[0].start
	if aEnd.IsZero() || !aEnd.Before(bStart) {
		t.Fatalf("a's term ended %s, b's began %s: they overlap", aEnd, bStart)
	}
	t.Logf("a stopped leading %s before b began", bStart.Sub(aEnd).Round(time.Millisecond))
	if err := sa.ClaimMessage(ctx, id, fa); !errors.Is(err, storage.ErrDeposed) {
		t.Errorf("the deposed leader's claim: %v, want ErrDeposed", err)
	}
	if err := sb.ClaimMessage(ctx, id, tb.all()[0].fence); err != nil {
		t.Errorf("the new leader's claim: %v", err)
	}
	if f := tb.all()[0].fence; f.Token != 2 || f.Holder != "b" {
		t.Errorf("b's fence %+v", f)
	}
}

// freezable passes calls to a Store until frozen; then every call hangs
// until its context ends, as for a process stopped with SIGSTOP.
type freezable struct {
	*storage.Store
	mu     sync.Mutex
	frozen bool
}

func (f *freezable) freeze() { f.mu.Lock(); f.frozen = true; f.mu.Unlock() }

func (f *freezable) isFrozen() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.frozen }

func (f *freezable) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (storage.Lease, error) {
	if f.isFrozen() {
		<-ctx.Done()
		return storage.Lease{}, ctx.Err()
	}
	return f.Store.AcquireLease(ctx, name, holder, ttl)
}

func (f *freezable) ReleaseLease(ctx context.Context, fence storage.Fence) error {
	if f.isFrozen() {
		return errors.New("frozen")
	}
	return f.Store.ReleaseLease(ctx, fence)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
