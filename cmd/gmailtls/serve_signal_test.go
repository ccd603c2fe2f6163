package main

import (
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// lockedBuffer is a log sink written from the signal goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestWatchShutdown: the first SIGTERM or SIGINT is logged and starts the
// clean shutdown without exiting; the second is logged and forces the
// exit with 128 + the signal (143 after SIGTERM, 130 after SIGINT, 1 for
// a signal without a number); after done closes nothing more happens.
func TestWatchShutdown(t *testing.T) {
	for _, tc := range []struct {
		name          string
		first, second os.Signal
		want          int
	}{
		{"term then int", syscall.SIGTERM, os.Interrupt, 130},
		{"int then term", os.Interrupt, syscall.SIGTERM, 143},
		{"signal without number", syscall.SIGTERM, fakeSignal{}, exitFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs lockedBuffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			sigs := make(chan os.Signal)
			stopped := make(chan struct{})
			exited := make(chan int, 1)
			returned := make(chan struct{})
			go func() {
				defer close(returned)
				watchShutdown(make(chan struct{}), sigs, log, func() { close(stopped) }, func(code int) { exited <- code })
			}()
			sigs <- tc.first
			<-stopped
			select {
			case code := <-exited:
				t.Fatalf("the first signal forced the exit (%d)", code)
			default:
			}
			if !strings.Contains(logs.String(), "shutdown signal received") || !strings.Contains(logs.String(), "signal="+tc.first.String()) {
				t.Errorf("the first signal is not logged:\n%s", logs.String())
			}
			sigs <- tc.second
			if code := <-exited; code != tc.want {
				t.Errorf("forced exit %d, want %d", code, tc.want)
			}
			<-returned
			if !strings.Contains(logs.String(), "second shutdown signal") {
				t.Errorf("the forced exit is not logged:\n%s", logs.String())
			}
		})
	}

	t.Run("done", func(t *testing.T) {
		done := make(chan struct{})
		returned := make(chan struct{})
		go func() {
			defer close(returned)
			watchShutdown(done, make(chan os.Signal), slog.New(slog.DiscardHandler),
				func() { t.Error("stop without a signal") }, func(int) { t.Error("exit without a signal") })
		}()
		close(done)
		<-returned
	})
}

// fakeSignal is a signal that is no syscall.Signal.
type fakeSignal struct{}

func (fakeSignal) String() string { return "fake" }
func (fakeSignal) Signal()        {}
