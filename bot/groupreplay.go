package bot

import (
	"context"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/storage"
)

// groupReplay records the keys of concurrent callers in one write of the
// shared replay memory (a group commit): a burst of Slack commands (every
// envelope id is checked against the database before its ack, so that
// replicas never run one twice) costs a few transactions instead of one
// each, in the single writer's queue. One caller at a time writes; the
// callers that arrive meanwhile wait and are written together next.
type groupReplay struct {
	mem ReplayMemory

	mu      sync.Mutex
	writing bool
	pending []*replayCall
}

// replayCall is one caller's keys and, once its group is written, the
// answer.
type replayCall struct {
	now  time.Time
	keys []storage.SeenKey
	seen []bool
	err  error
	done chan struct{}
}

func newGroupReplay(mem ReplayMemory) *groupReplay { return &groupReplay{mem: mem} }

// RememberSlackRequest records keys with those of the callers waiting
// beside it and reports, key by key, whether each was recorded before.
// It returns only once its keys' write ended, committed or not, so that a
// caller never gives up on keys that are recorded later: each write is
// bounded by replayTimeout, and a caller waits at most for the write under
// way and its own.
func (g *groupReplay) RememberSlackRequest(ctx context.Context, now time.Time, keys ...storage.SeenKey) ([]bool, error) {
	c := &replayCall{now: now, keys: keys, done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if g.writing {
		g.mu.Unlock()
		<-c.done
		return c.seen, c.err
	}
	g.writing = true
	for len(g.pending) > 0 {
		group := g.pending
		g.pending = nil
		g.mu.Unlock()
		g.write(context.WithoutCancel(ctx), group)
		g.mu.Lock()
	}
	g.writing = false
	g.mu.Unlock()
	return c.seen, c.err
}

// write records the keys of group in one call and hands each caller its
// answers.
func (g *groupReplay) write(ctx context.Context, group []*replayCall) {
	var all []storage.SeenKey
	now := group[0].now
	for _, c := range group {
		all = append(all, c.keys...)
		if c.now.After(now) {
			now = c.now
		}
	}
	ctx, cancel := context.WithTimeout(ctx, replayTimeout)
	seen, err := g.mem.RememberSlackRequest(ctx, now, all...)
	cancel()
	for _, c := range group {
		if err != nil {
			c.err = err
		} else {
			c.seen, seen = seen[:len(c.keys):len(c.keys)], seen[len(c.keys):]
		}
		close(c.done)
	}
}
