package retry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

var errBusy = errors.New("busy")

// attempts records when each call of op came, in the bubble's fake time.
type attempts struct {
	start time.Time
	at    []time.Duration
	fail  int // the first fail calls fail
}

func (a *attempts) op(context.Context) error {
	a.at = append(a.at, time.Since(a.start))
	if len(a.at) <= a.fail {
		return errBusy
	}
	return nil
}

func TestDoWaitsAsThePolicySays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &attempts{start: time.Now(), fail: 3}
		var seen []int
		err := Do(context.Background(), a.op, func(err error, failures int) (time.Duration, error) {
			if !errors.Is(err, errBusy) {
				t.Errorf("policy got %v", err)
			}
			seen = append(seen, failures)
			return time.Duration(failures) * time.Second, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{0, time.Second, 3 * time.Second, 6 * time.Second}
		if len(a.at) != len(want) {
			t.Fatalf("%d attempts at %v, want %v", len(a.at), a.at, want)
		}
		for i := range want {
			if a.at[i] != want[i] {
				t.Errorf("attempt %d at %v, want %v", i+1, a.at[i], want[i])
			}
		}
		if len(seen) != 3 || seen[0] != 1 || seen[2] != 3 {
			t.Errorf("failures counted %v, want [1 2 3]", seen)
		}
	})
}

func TestDoGivesUpWithThePolicysError(t *testing.T) {
	a := &attempts{start: time.Now(), fail: 10}
	err := Do(context.Background(), a.op, func(err error, failures int) (time.Duration, error) {
		if failures == 2 {
			return 0, errors.Join(errors.New("gave up"), err)
		}
		return 0, nil // a zero wait: again at once
	})
	if !errors.Is(err, errBusy) || !strings.Contains(err.Error(), "gave up") || len(a.at) != 2 {
		t.Errorf("Do = %v after %d attempts, want the policy's error after 2", err, len(a.at))
	}
}

// TestDoStopsWithItsContext: a context that ends during a wait ends Do at
// once with the last error and the cause; one ended before is not waited
// on at all.
func TestDoStopsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		stop := errors.New("shutting down")
		time.AfterFunc(1500*time.Millisecond, func() { cancel(stop) })
		a := &attempts{start: time.Now(), fail: 100}
		err := Do(ctx, a.op, func(error, int) (time.Duration, error) { return time.Second, nil })
		if !errors.Is(err, errBusy) || !errors.Is(err, stop) {
			t.Errorf("Do = %v, want the last error and the cause", err)
		}
		if d := time.Since(a.start); d != 1500*time.Millisecond || len(a.at) != 2 {
			t.Errorf("returned after %v and %d attempts, want 1.5s and 2", d, len(a.at))
		}
		called := false
		err = Do(ctx, a.op, func(error, int) (time.Duration, error) { called = true; return 0, nil })
		if !errors.Is(err, stop) || called {
			t.Errorf("Do on an ended context = %v (policy called: %v)", err, called)
		}
	})
}

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := Backoff{Initial: 250 * time.Millisecond, Max: time.Second}
	var got []time.Duration
	for range 5 {
		got = append(got, b.Next())
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, time.Second, time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	uncapped := Backoff{Initial: time.Hour}
	for range 100 {
		if d := uncapped.Next(); d <= 0 {
			t.Fatalf("an uncapped backoff overflowed to %v", d)
		}
	}
	jittered := Backoff{Initial: time.Second, Max: time.Second, Jitter: 100 * time.Millisecond}
	varied := false
	for range 50 {
		d := jittered.Next()
		if d < time.Second || d >= 1100*time.Millisecond {
			t.Fatalf("jittered wait %v outside [1s, 1.1s)", d)
		}
		varied = varied || d != time.Second
	}
	if !varied {
		t.Error("Jitter added nothing in 50 waits")
	}
	if (&Backoff{}).Next() != 0 || Jitter(0) != 0 {
		t.Error("the zero Backoff waits")
	}
}
