package schedule

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// DefaultConcurrency is how many relays one probing round probes at once.
//
// Each relay's run probes its MX hosts in parallel too (probe.Config's
// Concurrency, probe.DefaultConcurrency by default), so a round over
// relays with five MX hosts each keeps up to 5 × 32 = 160 probes in
// flight. That finishes 200 relays whose servers answer after 100 ms in
// well under 2 s (BenchmarkProbeRound), while a round over the usual
// handful of relays runs them all at once.
const DefaultConcurrency = 32

// ProbeRound runs check for every relay not paused, at most concurrency at
// once (DefaultConcurrency when <= 0). One relay failing (an error or a
// panic) never stops the others: every relay gets its turn and the errors
// come back joined, each naming its relay. A cancelled ctx stops the relays
// not yet started.
func ProbeRound(ctx context.Context, relays []string, paused func(string) bool, check func(ctx context.Context, relay string) error, concurrency int) error {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	var (
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	var g errgroup.Group
	g.SetLimit(concurrency)
	for _, name := range relays {
		if paused != nil && paused(name) {
			continue
		}
		if ctx.Err() != nil {
			fail(fmt.Errorf("relay %s: not probed: %w", name, ctx.Err()))
			continue
		}
		g.Go(func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					fail(fmt.Errorf("relay %s: probe panicked: %v\n%s", name, r, debug.Stack()))
				}
			}()
			if err := check(ctx, name); err != nil {
				fail(fmt.Errorf("relay %s: %w", name, err))
			}
			return nil
		})
	}
	_ = g.Wait() // every task returns nil; errors are collected above
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return fmt.Errorf("schedule: probing round: %d of %d relays failed: %w", len(errs), len(relays), errors.Join(errs...))
	}
	return nil
}
