package bot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/storage"
)

// countingMemory is a replay memory that counts its writes and can hold
// the first one until released.
type countingMemory struct {
	inner   ReplayMemory
	mu      sync.Mutex
	writes  int
	hold    chan struct{} // the first write waits for it to close
	started chan struct{} // closed when the first write began
	fail    error
}

func (m *countingMemory) RememberSlackRequest(ctx context.Context, now time.Time, keys ...storage.SeenKey) ([]bool, error) {
	m.mu.Lock()
	m.writes++
	first := m.writes == 1
	m.mu.Unlock()
	if first && m.hold != nil {
		close(m.started)
		<-m.hold
	}
	if m.fail != nil {
		return nil, m.fail
	}
	return m.inner.RememberSlackRequest(ctx, now, keys...)
}

func key(s string) storage.SeenKey {
	return storage.SeenKey{Digest: []byte(s), Expires: time.Unix(2e9, 0)}
}

// TestGroupReplayWritesWaitingCallersTogether: while one write is under
// way, the callers that arrive wait and are written in one write; each
// gets its own answers, a key repeated in the group is seen the second
// time, and a key recorded earlier is seen.
func TestGroupReplayWritesWaitingCallersTogether(t *testing.T) {
	mem := &countingMemory{inner: newMemoryReplay(), hold: make(chan struct{}), started: make(chan struct{})}
	g := newGroupReplay(mem)
	ctx := context.Background()
	now := time.Unix(1e9, 0)
	first := make(chan []bool, 1)
	go func() {
		seen, err := g.RememberSlackRequest(ctx, now, key("a"))
		if err != nil {
			t.Error(err)
		}
		first <- seen
	}()
	<-mem.started
	const n = 20
	var wg sync.WaitGroup
	answers := make([][]bool, n)
	for i := range n {
		wg.Go(func() {
			keys := []storage.SeenKey{key(fmt.Sprint("k", i))}
			if i == 0 {
				keys = append(keys, key("a")) // written by the first caller
			}
			if i == 1 || i == 2 {
				keys = []storage.SeenKey{key("dup")} // twice in one group
			}
			seen, err := g.RememberSlackRequest(ctx, now, keys...)
			if err != nil {
				t.Error(err)
			}
			answers[i] = seen
		})
	}
	// Let the callers queue behind the held write.
	deadline := time.Now().Add(5 * time.Second)
	for {
		g.mu.Lock()
		queued := len(g.pending)
		g.mu.Unlock()
		if queued == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(mem.hold)
	wg.Wait()
	if seen := <-first; len(seen) != 1 || seen[0] {
		t.Fatalf("the first caller's key: %v, want [false]", seen)
	}
	if mem.writes != 2 {
		t.Errorf("%d writes for %d callers; want 2 (the first, then the group that waited)", mem.writes, n+1)
	}
	if len(answers[0]) != 2 || answers[0][0] || !answers[0][1] {
		t.Errorf("caller 0: %v, want [false true] (a new key, and the first caller's)", answers[0])
	}
	if dup := []bool{answers[1][0], answers[2][0]}; dup[0] == dup[1] {
		t.Errorf("a key twice in one group: %v, want one new and one seen", dup)
	}
	for i := 3; i < n; i++ {
		if len(answers[i]) != 1 || answers[i][0] {
			t.Errorf("caller %d: %v, want [false]", i, answers[i])
		}
	}
}

// TestGroupReplayErrorReachesEveryCaller: a failed write fails every
// caller of its group, with the memory's error.
func TestGroupReplayErrorReachesEveryCaller(t *testing.T) {
	boom := errors.New("database is down")
	g := newGroupReplay(&countingMemory{inner: newMemoryReplay(), fail: boom})
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			if _, err := g.RememberSlackRequest(context.Background(), time.Unix(1e9, 0), key(fmt.Sprint(i))); !errors.Is(err, boom) {
				t.Errorf("caller %d: %v, want %v", i, err, boom)
			}
		})
	}
	wg.Wait()
}
