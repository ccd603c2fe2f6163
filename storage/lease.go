package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrDeposed means a fenced write was refused: the lease named by the
// Fence is no longer held by its holder under its token (another replica
// took it, or it expired by the store's clock). The writer is no longer
// the leader and must stop its leader-only work.
var ErrDeposed = errors.New("this replica is no longer the leader (its lease was taken over or expired)")

// ErrNotPending means a claimed outbox message is no longer pending: it
// was delivered or given up meanwhile (by this replica or an earlier
// leader).
var ErrNotPending = errors.New("outbox message is no longer pending")

// Lease is a named lease as stored: who holds it, under which fencing
// token, since when and until when. A lease whose Expires is not after the
// store's clock is free for anyone to take.
type Lease struct {
	Name, Holder string
	// Token grows by one each time the lease is taken (changes hands or
	// is taken again after it expired); it never repeats.
	Token int64
	// Acquired is when the holder took the lease under Token; Expires is
	// when it lapses unless renewed.
	Acquired, Expires time.Time
}

// Fence is what a leader-only write carries to prove that its writer
// still leads: the lease's name, the holder and the token it got.
type Fence struct {
	Name, Holder string
	Token        int64
}

// Fence returns the fence of the lease as held by its holder.
func (l Lease) Fence() Fence { return Fence{Name: l.Name, Holder: l.Holder, Token: l.Token} }

// AcquireLease takes the lease name for holder for ttl, by the store's
// clock, in one write transaction: a lease nobody holds, or whose holder
// let it expire, is taken with the next token; one that holder holds is
// renewed under its token; one that another holder holds is returned as
// it is. The caller leads iff the returned lease's Holder is holder (and,
// to stay in the same term, its Token the one it had).
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (Lease, error) {
	if name == "" || holder == "" {
		return Lease{}, errors.New("storage: acquire lease: no lease name or holder")
	}
	if ttl <= 0 {
		return Lease{}, fmt.Errorf("storage: acquire lease %s: the time to live must be positive, not %s", name, ttl)
	}
	var l Lease
	err := s.write(ctx, "acquire lease "+name, func(tx *sql.Tx) error {
		now := s.now()
		expires := ms(now.Add(ttl))
		cur, found, err := leaseIn(ctx, tx, name)
		if err != nil {
			return err
		}
		switch {
		case !found:
			l = Lease{Name: name, Holder: holder, Token: 1, Acquired: fromMS(ms(now)), Expires: fromMS(expires)}
			_, err = tx.ExecContext(ctx, `INSERT INTO leases (name, holder, token, acquired_at, renewed_at, expires_at)
				VALUES (?, ?, ?, ?, ?, ?)`, name, holder, l.Token, ms(now), ms(now), expires)
			return err
		case cur.Expires.After(now) && cur.Holder != holder:
			l = cur
			return nil
		case cur.Expires.After(now):
			l = cur
			l.Expires = fromMS(expires)
			_, err = tx.ExecContext(ctx, `UPDATE leases SET renewed_at = ?, expires_at = ? WHERE name = ?`,
				ms(now), expires, name)
			return err
		default:
			l = Lease{Name: name, Holder: holder, Token: cur.Token + 1, Acquired: fromMS(ms(now)), Expires: fromMS(expires)}
			_, err = tx.ExecContext(ctx, `UPDATE leases SET holder = ?, token = ?, acquired_at = ?, renewed_at = ?,
				expires_at = ? WHERE name = ?`, holder, l.Token, ms(now), ms(now), expires, name)
			return err
		}
	})
	return l, err
}

// ReleaseLease gives up the lease f names if f's holder still holds it
// under f's token, so that another replica can take it at once; a lease
// held by someone else, or under another token, is left alone. The row
// stays, expired, so that the next holder gets the next token.
func (s *Store) ReleaseLease(ctx context.Context, f Fence) error {
	return s.write(ctx, "release lease "+f.Name, func(tx *sql.Tx) error {
		now := ms(s.now())
		_, err := tx.ExecContext(ctx, `UPDATE leases SET expires_at = ?, renewed_at = ?
			WHERE name = ? AND holder = ? AND token = ? AND expires_at > ?`, now, now, f.Name, f.Holder, f.Token, now)
		return err
	})
}

// CurrentLease returns the lease name as stored; held is true when it has
// a holder whose lease has not expired by the store's clock. A lease never
// taken returns false and a zero Lease.
func (s *Store) CurrentLease(ctx context.Context, name string) (l Lease, held bool, err error) {
	err = s.read(ctx, "read lease "+name, func(tx *sql.Tx) error {
		var found bool
		l, found, err = leaseIn(ctx, tx, name)
		held = found && l.Expires.After(s.now())
		return err
	})
	return l, held, err
}

func leaseIn(ctx context.Context, tx *sql.Tx, name string) (Lease, bool, error) {
	l := Lease{Name: name}
	var acquired, expires int64
	err := tx.QueryRowContext(ctx, `SELECT holder, token, acquired_at, expires_at FROM leases WHERE name = ?`, name).
		Scan(&l.Holder, &l.Token, &acquired, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Lease{}, false, nil
	}
	if err != nil {
		return Lease{}, false, err
	}
	l.Acquired, l.Expires = fromMS(acquired), fromMS(expires)
	return l, true, nil
}

// checkFence returns ErrDeposed unless f's holder holds f's lease under
// f's token and it has not expired by the store's clock. It runs inside
// the write transaction of the fenced write.
func (s *Store) checkFence(ctx context.Context, tx *sql.Tx, f Fence) error {
	l, found, err := leaseIn(ctx, tx, f.Name)
	if err != nil {
		return err
	}
	if !found || l.Holder != f.Holder || l.Token != f.Token || !l.Expires.After(s.now()) {
		return fmt.Errorf("%w: lease %s, replica %s, token %d", ErrDeposed, f.Name, f.Holder, f.Token)
	}
	return nil
}

// ClaimMessage marks the pending outbox message id as being delivered by
// the leader f names, in one write transaction that first checks the
// fence: ErrDeposed when f no longer holds its lease (the caller must not
// post), ErrNotPending when the message was delivered or given up
// meanwhile, ErrNotFound when there is no such message.
func (s *Store) ClaimMessage(ctx context.Context, id int64, f Fence) error {
	return s.write(ctx, "claim message", func(tx *sql.Tx) error {
		if err := s.checkFence(ctx, tx, f); err != nil {
			return err
		}
		var state string
		err := tx.QueryRowContext(ctx, `SELECT state FROM outbox WHERE id = ?`, id).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: outbox message %d", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		if state != OutboxPending {
			return fmt.Errorf("%w: outbox message %d is %s", ErrNotPending, id, state)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO outbox_claims (message_id, holder, token, claimed_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (message_id) DO UPDATE SET holder = excluded.holder, token = excluded.token,
			claimed_at = excluded.claimed_at`, id, f.Holder, f.Token, ms(s.now()))
		return err
	})
}
