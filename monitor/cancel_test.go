package monitor

import (
	"context"
	"errors"
	"testing"
)

// TestCancelledChecksStoreNothing: a check or a scheduled round whose
// context ends while the relays probe (Ctrl-C, SIGTERM at shutdown) stores
// no run, evaluates nothing and reports the cancellation, even though the
// cut-short probes came back with results.
func TestCancelledChecksStoreNothing(t *testing.T) {
	e := newTestEnv(t)
	for _, r := range e.runners {
		r.Set("tls_alert")
	}
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"CheckRelay", func(ctx context.Context) error {
			_, err := e.m.CheckRelay(ctx, Check{Relay: "relay-1", Trigger: "console", RequestedBy: "console"})
			return err
		}},
		{"CheckAll", func(ctx context.Context) error {
			_, err := e.m.CheckAll(ctx, Check{Trigger: "console", RequestedBy: "console"})
			return err
		}},
		{"Round", e.m.Round},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started := make(chan string, 3)
			var releases []func()
			for _, r := range e.runners {
				releases = append(releases, r.Hold(started))
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- tc.run(ctx) }()
			<-started
			cancel()
			err := <-done
			for _, release := range releases {
				release()
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v; want the cancellation", err)
			}
			if id, err := e.store.MaxResultID(context.Background()); err != nil || id != 0 {
				t.Errorf("a cancelled check stored results (max id %d, %v)", id, err)
			}
			if n := len(e.evaluations()); n != 0 {
				t.Errorf("a cancelled check was evaluated %d times", n)
			}
		})
	}
}
