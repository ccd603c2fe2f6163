package commands

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/storage"
)

// recentCache keeps escalation's input (what storage.Recent returns)
// between evaluations and follows new results with storage.ResultsAfter,
// so that the evaluation after one new result reads that one row, not the
// whole window again (BenchmarkEvaluateAfterOneResult). Results stored by
// another process (`gmailtls probe --record`) are picked up the same way.
// It is reloaded from storage.Recent when the lookback or the set of relays
// changes. Guarded by Handler.evalMu.
type recentCache struct {
	key    string                 // lookback and relays it was loaded for
	lastID int64                  // the highest result id seen
	out    []storage.StoredResult // oldest first (start, then id)
}

// results returns, like storage.Recent(now-window, runs), every relay's
// results of its last runs runs and of the window before now, oldest first.
// The slice is the cache's own: callers must not change it.
func (c *recentCache) results(ctx context.Context, st *storage.Store, now time.Time, window time.Duration, runs int, relays []string) ([]storage.StoredResult, error) {
	key := window.String() + "/" + strconv.Itoa(runs) + "/" + strings.Join(relays, ",")
	if c.key != key {
		// The id is read first: what is stored meanwhile comes again from
		// ResultsAfter and is merged once.
		maxID, err := st.MaxResultID(ctx)
		if err != nil {
			return nil, err
		}
		rs, err := st.Recent(ctx, now.Add(-window), runs)
		if err != nil {
			return nil, err
		}
		c.key, c.lastID, c.out = key, maxID, rs
	}
	const batch = 10_000
	for {
		rs, err := st.ResultsAfter(ctx, c.lastID, batch)
		if err != nil {
			return nil, err
		}
		c.add(rs)
		if len(rs) < batch {
			break
		}
	}
	c.prune(now.Add(-window), runs)
	return c.out, nil
}

// add merges new results in order, each once, and advances lastID. New
// results are nearly always the newest, so this is an append.
func (c *recentCache) add(rs []storage.StoredResult) {
	for _, r := range rs {
		c.lastID = max(c.lastID, r.ID)
		i, found := slices.BinarySearchFunc(c.out, r, byStart)
		if !found {
			c.out = slices.Insert(c.out, i, r)
		}
	}
}

// prune keeps what storage.Recent would return: for every relay, its
// results of its last runs runs and those since from.
func (c *recentCache) prune(from time.Time, runs int) {
	if runs <= 0 {
		c.out = slices.DeleteFunc(c.out, func(r storage.StoredResult) bool { return r.StartedAt.Before(from) })
		return
	}
	// Walking newest first, a relay's runs are met in order of their
	// results; the start of its runs-th run bounds it from below.
	type seen struct {
		runs  map[int64]bool
		lower time.Time
		all   bool // fewer than runs runs: keep everything
	}
	relays := map[string]*seen{}
	for i := len(c.out) - 1; i >= 0; i-- {
		r := &c.out[i]
		s := relays[r.Relay]
		if s == nil {
			s = &seen{runs: map[int64]bool{}, all: true}
			relays[r.Relay] = s
		}
		if len(s.runs) < runs || s.runs[r.RunID] {
			s.runs[r.RunID] = true
			s.lower = r.StartedAt
			s.all = len(s.runs) < runs
		}
	}
	c.out = slices.DeleteFunc(c.out, func(r storage.StoredResult) bool {
		s := relays[r.Relay]
		if s.all || !r.StartedAt.Before(from) {
			return false
		}
		return r.StartedAt.Before(s.lower)
	})
}

func byStart(a, b storage.StoredResult) int {
	if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}
