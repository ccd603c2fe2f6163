// Package retry runs an operation again after a failure that waiting may
// fix. Every retry of gmailtls goes through Do: the bot's Slack Web API
// calls (rate limits, server errors, dropped connections), the replies of a
// long thread, response_url posts, auth.test while Slack cannot be reached
// at start, and a relay agent of an earlier version that refuses a signed
// nonce.
//
// One attempt goes like this:
//
//  1. Do calls the operation; nil ends it.
//  2. When the context has ended, Do returns the error joined with the
//     context's cause.
//  3. The caller's Policy looks at the error and the number of failures so
//     far, and either gives up (with the error, or the error worded for an
//     operator, e.g. when the wait would not fit the caller's deadline) or
//     names the wait before the next attempt; Backoff gives waits that
//     grow.
//  4. Do waits, or returns when the context ends meanwhile.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy decides after a failed attempt. failures counts the failed
// attempts so far (1 after the first). It returns how long to wait before
// the next attempt, or a non-nil giveUp: the error Do returns (err itself,
// or err wrapped to say why there is no next attempt).
type Policy func(err error, failures int) (wait time.Duration, giveUp error)

// Do calls op until it returns nil or policy gives up, waiting between
// attempts as policy says. See the package documentation for the steps.
func Do(ctx context.Context, op func(ctx context.Context) error, policy Policy) error {
	for failures := 1; ; failures++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return errors.Join(err, context.Cause(ctx))
		}
		wait, giveUp := policy(err, failures)
		if giveUp != nil {
			return giveUp
		}
		if wait <= 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// Backoff is a wait that grows: Initial at first, doubled after each Next
// up to Max (no cap when Max is 0), plus a random share of Jitter (in
// [0, Jitter)) when Jitter is positive, so that clients that failed
// together do not all come back at once. The zero value waits nothing.
type Backoff struct {
	Initial, Max, Jitter time.Duration

	next time.Duration
}

// Next returns the wait before the next attempt and doubles the one after.
func (b *Backoff) Next() time.Duration {
	if b.next <= 0 {
		b.next = b.Initial
	}
	d := b.next
	if b.Max > 0 && d > b.Max {
		d = b.Max
	}
	if d < time.Duration(1<<62) {
		b.next = 2 * d
	}
	return d + Jitter(b.Jitter)
}

// Jitter returns a random duration in [0, max), or 0 when max is not
// positive.
func Jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return rand.N(max) // #nosec G404 -- spreading retries needs no cryptographic randomness.
}
