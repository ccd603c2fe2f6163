package monitor

import (
	"cmp"
	"context"
	"maps"
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
// changes. Guarded by Monitor.evalMu.
type recentCache struct {
	key      string                 // lookback and relays it was loaded for
	loadedAt time.Time              // when it was last read whole
	lastID   int64                  // the highest result id seen
	out      []storage.StoredResult // oldest first (start, then id)
}

// recentReload bounds how long the cache goes without being read whole
// again, so that rows retention deleted from under it (a relay not probed
// for longer than retention.raw) do not outlive it by more than that.
const recentReload = time.Hour

// results returns, like storage.Recent(now-window, runs), every relay's
// results of its last runs runs and of the window before now, oldest first.
// The slice is the cache's own: callers must not change it.
func (c *recentCache) results(ctx context.Context, st *storage.Store, now time.Time, window time.Duration, runs int, relays []string) ([]storage.StoredResult, error) {
	key := window.String() + "/" + strconv.Itoa(runs) + "/" + strings.Join(relays, ",")
	if c.key != key || now.Sub(c.loadedAt) > recentReload || now.Before(c.loadedAt) {
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
		c.key, c.loadedAt, c.lastID, c.out = key, now, maxID, rs
	}
	const batch = 10_000
	found := 0
	for {
		rs, err := st.ResultsAfter(ctx, c.lastID, batch)
		if err != nil {
			return nil, err
		}
		c.add(rs)
		found += len(rs)
		if len(rs) < batch {
			break
		}
	}
	// SQLite hands out the ids of deleted rows again once the highest ones
	// are gone (retention after a long pause in probing): new results then
	// have ids below lastID, none above it, and only a reload sees them.
	// (Ids above lastID, when there are new results, rule that out.)
	if found == 0 {
		maxID, err := st.MaxResultID(ctx)
		if err != nil {
			return nil, err
		}
		if maxID < c.lastID {
			c.key = ""
			return c.results(ctx, st, now, window, runs, relays)
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

// prune keeps what storage.Recent would return: for every relay, the
// results that started at or after the start of its runs-th newest run, or
// since from, whichever is earlier. Runs are ordered by their own start, as
// storage.Recent orders them. (A run without results, which Recent counts
// and the cache cannot see, only makes the cache keep more, never less.)
func (c *recentCache) prune(from time.Time, runs int) {
	if runs <= 0 {
		c.out = slices.DeleteFunc(c.out, func(r storage.StoredResult) bool { return r.StartedAt.Before(from) })
		return
	}
	starts := map[string]map[int64]time.Time{} // relay → run → its start
	for _, r := range c.out {
		m := starts[r.Relay]
		if m == nil {
			m = map[int64]time.Time{}
			starts[r.Relay] = m
		}
		at := r.RunStartedAt
		if at.IsZero() {
			at = r.StartedAt
		}
		if s, ok := m[r.RunID]; !ok || at.Before(s) {
			m[r.RunID] = at
		}
	}
	lower := map[string]time.Time{} // absent: fewer runs than asked, keep all
	for relayName, m := range starts {
		if len(m) < runs {
			continue
		}
		ts := slices.SortedFunc(maps.Values(m), func(a, b time.Time) int { return b.Compare(a) })
		lower[relayName] = ts[runs-1]
	}
	c.out = slices.DeleteFunc(c.out, func(r storage.StoredResult) bool {
		l, ok := lower[r.Relay]
		return ok && r.StartedAt.Before(from) && r.StartedAt.Before(l)
	})
}

func byStart(a, b storage.StoredResult) int {
	if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}
