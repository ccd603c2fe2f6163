package schedule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestProbeRound: paused relays are skipped, the others each probed once
// with at most `concurrency` at a time, and one failing or panicking relay
// stops nobody.
func TestProbeRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var relays []string
		for i := range 12 {
			relays = append(relays, fmt.Sprintf("relay-%02d", i+1))
		}
		paused := func(r string) bool { return r == "relay-02" || r == "relay-07" }
		var (
			mu           sync.Mutex
			probed       []string
			running, top atomic.Int32
		)
		check := func(ctx context.Context, r string) error {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				old := top.Load()
				if n <= old || top.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(100 * time.Millisecond) // the servers' delay, in fake time
			mu.Lock()
			probed = append(probed, r)
			mu.Unlock()
			switch r {
			case "relay-03":
				return errors.New("could not store the run: disk full")
			case "relay-09":
				panic("nil runner")
			}
			return nil
		}
		start := time.Now()
		err := ProbeRound(context.Background(), relays, paused, check, 4)
		if took := time.Since(start); took != 300*time.Millisecond {
			t.Errorf("round took %s, want 3 waves of 100ms", took)
		}
		if err == nil {
			t.Fatal("no error for the failing relays")
		}
		for _, want := range []string{"2 of 12 relays failed", "relay relay-03: could not store the run", "relay relay-09: probe panicked: nil runner"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
		slices.Sort(probed)
		want := slices.DeleteFunc(slices.Clone(relays), paused)
		if !slices.Equal(probed, want) {
			t.Errorf("probed %v, want %v", probed, want)
		}
		if top.Load() != 4 {
			t.Errorf("%d probes at once, want the limit 4", top.Load())
		}
	})
}

func TestProbeRoundCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var calls atomic.Int32
	err := ProbeRound(ctx, []string{"a", "b"}, nil, func(context.Context, string) error { calls.Add(1); return nil }, 0)
	if !errors.Is(err, context.Canceled) || calls.Load() != 0 {
		t.Fatalf("err %v after %d calls, want cancelled before any", err, calls.Load())
	}
	if err := ProbeRound(context.Background(), nil, nil, nil, 0); err != nil {
		t.Fatalf("empty round: %v", err)
	}
}
