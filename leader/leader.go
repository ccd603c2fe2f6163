// Package leader elects one leader among the serve replicas that share a
// database, through a lease row with a fencing token in storage
// (storage.AcquireLease): the leader runs the leader-only work (the
// scheduler, the alert loop, the outbox worker) under a context that ends
// as soon as it may no longer be the leader.
//
// An Elector tries to take the lease at once when it starts and then
// every Interval; the leader renews it every Interval. The lease lives TTL
// by the database's writers' clocks (the replicas keep NTP time). The
// leader stops leading, cancelling the work's context and waiting for it,
// on the first failed renew, when a renew finds the lease held by another
// replica or under another token, or when its local deadline passes
// without a successful renew: the time the last successful renew was sent
// plus TTL minus Margin, measured on the local monotonic clock, so that it
// stops before any other replica can take the lease even if the database
// stopped answering. On a clean shutdown it releases the lease so that a
// follower takes over at once. See docs/architecture.md, "Replicas and the
// leader".
package leader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/storage"
)

// Defaults of the Elector.
const (
	// DefaultName is the lease serve replicas elect their leader with.
	DefaultName = "serve"
	// DefaultTTL is how long a lease lives unless renewed.
	DefaultTTL = 10 * time.Second
	// DefaultInterval is how often the leader renews and a follower
	// tries to take the lease.
	DefaultInterval = 2 * time.Second
	// DefaultMargin is how long before the lease's end, as the leader
	// measures it, the leader stops leading: the bound on the clock skew
	// between replicas and on a leader's delay in noticing.
	DefaultMargin = 2 * time.Second
)

// Store is the part of storage.Store the Elector uses.
type Store interface {
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (storage.Lease, error)
	ReleaseLease(ctx context.Context, f storage.Fence) error
}

// NewID returns a replica id: host name, process id and a random suffix,
// e.g. "bot-1:4242:9f3a1c2e", unique across restarts of the same process
// id.
func NewID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Elector elects this replica the leader or a follower. Set the exported
// fields before Run; the zero values of the optional ones take the
// defaults.
type Elector struct {
	Store Store
	// ID is this replica's id (default NewID()).
	ID string
	// Name is the lease's name (default DefaultName).
	Name string
	// TTL, Interval and Margin: see the package documentation.
	TTL, Interval, Margin time.Duration
	// Now is the clock of the local deadline and of the state's times
	// (default time.Now, whose monotonic reading the deadline uses).
	Now    func() time.Time
	Logger *slog.Logger

	once sync.Once
	mu   sync.Mutex
	st   State
}

// State is what an Elector knows: whether this replica leads, and the
// lease as last seen (the leader's id, since when it leads, until when its
// lease runs).
type State struct {
	// ID is this replica's id.
	ID string
	// Leader is true while this replica leads.
	Leader bool
	// Lease is the lease as last read or written; Known is false before
	// the first answer of the database.
	Lease storage.Lease
	Known bool
}

func (e *Elector) init() {
	e.once.Do(func() {
		if e.ID == "" {
			e.ID = NewID()
		}
		if e.Name == "" {
			e.Name = DefaultName
		}
		if e.TTL <= 0 {
			e.TTL = DefaultTTL
		}
		if e.Interval <= 0 {
			e.Interval = DefaultInterval
		}
		if e.Margin <= 0 {
			e.Margin = DefaultMargin
		}
		if e.Now == nil {
			e.Now = time.Now
		}
		if e.Logger == nil {
			e.Logger = slog.New(slog.DiscardHandler)
		}
		e.st.ID = e.ID
	})
}

// Replica returns this replica's id.
func (e *Elector) Replica() string {
	e.init()
	return e.ID
}

// IsLeader reports whether this replica leads now.
func (e *Elector) IsLeader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.Leader
}

// State returns what the Elector knows now.
func (e *Elector) State() State {
	e.init()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st
}

func (e *Elector) setState(leader bool, l storage.Lease) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.Leader, e.st.Lease, e.st.Known = leader, l, true
}

func (e *Elector) setLeader(leader bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.Leader = leader
}

// Run elects until ctx ends. Whenever this replica becomes the leader it
// runs lead with a context that ends as soon as it may no longer lead,
// and the lease's fence for its fenced writes; it waits for lead to
// return before trying again. When ctx ends it ends lead's context, waits
// for lead and releases the lease. It returns ctx's error.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context, f storage.Fence)) error {
	e.init()
	for {
		sent := e.Now()
		l, err := e.acquire(ctx, sent.Add(e.Interval))
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			e.setLeader(false)
			e.Logger.Warn("leader election: cannot read or take the lease; trying again", "replica", e.ID,
				"retry_in", e.Interval, "err", err)
		case l.Holder == e.ID:
			if !e.term(ctx, l, sent, lead) {
				return ctx.Err()
			}
		default:
			e.setState(false, l)
		}
		if err := sleep(ctx, e.Interval); err != nil {
			return err
		}
	}
}

// acquire takes or renews the lease, giving the database until deadline.
func (e *Elector) acquire(ctx context.Context, deadline time.Time) (storage.Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, deadline.Sub(e.Now()))
	defer cancel()
	return e.Store.AcquireLease(ctx, e.Name, e.ID, e.TTL)
}

type renewal struct {
	sent  time.Time
	lease storage.Lease
	err   error
}

// term leads from lease l, taken by the request sent at sent, until this
// replica may no longer lead or ctx ends; it returns false when ctx ended
// (after releasing the lease).
func (e *Elector) term(ctx context.Context, l storage.Lease, sent time.Time, lead func(context.Context, storage.Fence)) bool {
	fence := l.Fence()
	e.setState(true, l)
	e.Logger.Info("became leader", "replica", e.ID, "lease_token", l.Token, "expires", l.Expires)
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lead(lctx, fence)
	}()
	// deadline is when this replica stops leading unless a renew
	// succeeded: the send time of the last successful one + TTL - Margin.
	until := sent.Add(e.TTL - e.Margin)
	deadline := time.NewTimer(until.Sub(e.Now()))
	defer deadline.Stop()
	tick := time.NewTimer(e.Interval)
	defer tick.Stop()
	var renewed chan renewal // the renew under way, nil when none
	renewCtx, stopRenew := context.WithCancel(ctx)
	defer stopRenew()

	lost := func(reason string, args ...any) {
		cancel()
		e.setLeader(false)
		<-done
		e.Logger.Warn("lost leadership: "+reason, append([]any{"replica", e.ID, "lease_token", fence.Token}, args...)...)
	}
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-done
			e.setLeader(false)
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), e.Interval)
			err := e.Store.ReleaseLease(rctx, fence)
			rcancel()
			if err != nil {
				e.Logger.Warn("leadership not released; a follower takes over once the lease expires", "replica", e.ID,
					"lease_token", fence.Token, "expires_within", e.TTL, "err", err)
			} else {
				e.Logger.Info("leadership released", "replica", e.ID, "lease_token", fence.Token)
			}
			return false
		case <-done:
			// lead gave up on its own: leave the lease to another replica.
			cancel()
			e.setLeader(false)
			rctx, rcancel := context.WithTimeout(ctx, e.Interval)
			_ = e.Store.ReleaseLease(rctx, fence)
			rcancel()
			e.Logger.Warn("lost leadership: the leader's work ended; lease released", "replica", e.ID, "lease_token", fence.Token)
			return true
		case <-deadline.C:
			lost("no successful renew before the local deadline", "deadline", until)
			return true
		case <-tick.C:
			if renewed != nil {
				continue // the renew under way is bounded by the deadline
			}
			renewed = make(chan renewal, 1)
			go func(ch chan<- renewal) {
				r := renewal{sent: e.Now()}
				rctx, rcancel := context.WithTimeout(renewCtx, until.Sub(r.sent))
				defer rcancel()
				r.lease, r.err = e.Store.AcquireLease(rctx, e.Name, e.ID, e.TTL)
				ch <- r
			}(renewed)
		case r := <-renewed:
			renewed = nil
			tick.Reset(e.Interval)
			switch {
			case r.err != nil:
				lost("the lease could not be renewed", "err", r.err)
				return true
			case r.lease.Holder != e.ID:
				e.setState(false, r.lease)
				lost("another replica holds the lease", "leader", r.lease.Holder, "leader_token", r.lease.Token)
				return true
			case r.lease.Token != fence.Token:
				// The lease lapsed and this replica took it again: a new
				// term, which Run starts afresh.
				e.setState(false, r.lease)
				lost("the lease lapsed before it was renewed", "new_token", r.lease.Token)
				return true
			}
			e.setState(true, r.lease)
			until = r.sent.Add(e.TTL - e.Margin)
			deadline.Reset(until.Sub(e.Now()))
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
