package monitor

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/message"
)

// ErrRateLimited is wrapped by the error of an on-demand check refused
// because its user or one of its relays probed too often ([probing]
// user_burst, user_interval, relay_burst, relay_interval). Its text says
// when to try again; [RetryAfter] tells how long.
var ErrRateLimited = errors.New("rate limited")

// rateLimitError is an ErrRateLimited with the wait.
type rateLimitError struct {
	wait time.Duration
	why  string
}

func (e *rateLimitError) Error() string {
	return fmt.Sprintf("rate limited: try again in %d s (%s; scheduled rounds are not limited)", int(math.Ceil(e.wait.Seconds())), e.why)
}

func (e *rateLimitError) Unwrap() error { return ErrRateLimited }

// RetryAfter is how long a rate-limited check must wait; 0 for any other
// error.
func RetryAfter(err error) time.Duration {
	var rl *rateLimitError
	if errors.As(err, &rl) {
		return rl.wait
	}
	return 0
}

// limited reports whether checks with this trigger are rate limited: the
// ones people start (Slack, buttons, the console, the CLI), not the
// scheduled rounds nor the alerter's confirmations.
func limited(t message.Source) bool {
	return t != message.SourceSchedule && t != message.SourceConfirm
}

// limiter holds token buckets, one per user and one per relay: a bucket
// holds up to burst tokens and gains one every interval; each relay probe
// takes one token from its user's bucket and one from its relay's.
type limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// take takes one token per relay from the user's bucket and one from each
// relay's, all or none. When some bucket is short it takes nothing and
// returns an error saying how long to wait.
func (l *limiter) take(now time.Time, p config.Probing, user string, relays []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	type need struct {
		key      string
		n        float64
		burst    int
		interval time.Duration
		what     string
	}
	var needs []need
	if p.UserBurst > 0 && p.UserInterval.Duration > 0 {
		needs = append(needs, need{"user:" + user, float64(len(relays)), p.UserBurst, p.UserInterval.Duration,
			fmt.Sprintf("each person may start %d relay probes at once, then one every %s", p.UserBurst, p.UserInterval)})
	}
	if p.RelayBurst > 0 && p.RelayInterval.Duration > 0 {
		for _, r := range relays {
			needs = append(needs, need{"relay:" + r, 1, p.RelayBurst, p.RelayInterval.Duration,
				fmt.Sprintf("%s is probed on demand at most %d times at once, then once every %s", r, p.RelayBurst, p.RelayInterval)})
		}
	}
	var wait time.Duration
	var why string
	for _, n := range needs {
		b := l.refill(n.key, now, n.burst, n.interval)
		want := math.Min(n.n, float64(n.burst)) // a full bucket lets any check through
		if b.tokens >= want {
			continue
		}
		if w := time.Duration((want - b.tokens) * float64(n.interval)); w > wait {
			wait, why = w, n.what
		}
	}
	if wait > 0 {
		return &rateLimitError{wait: wait, why: why}
	}
	for _, n := range needs {
		b := l.buckets[n.key]
		b.tokens = math.Max(0, b.tokens-n.n)
	}
	return nil
}

// refill brings the bucket of key up to date at now.
func (l *limiter) refill(key string, now time.Time, burst int, interval time.Duration) *bucket {
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: float64(burst), at: now}
		l.buckets[key] = b
	}
	if now.After(b.at) {
		b.tokens = math.Min(float64(burst), b.tokens+float64(now.Sub(b.at))/float64(interval))
		b.at = now
	}
	return b
}
