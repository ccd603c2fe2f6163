package storage

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
)

const (
	mx1 = "gmail-smtp-in.l.google.com"
	mx2 = "alt1.gmail-smtp-in.l.google.com"
)

func TestTranscriptKeptForFailuresAndNewestSuccess(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		s := e.open(t, "", manualclock.New(t0))
		var allIDs []int64
		for i := range 3 {
			at := t0.Add(time.Duration(i) * 5 * time.Minute)
			_, ids, err := s.RecordRun(ctx, Run{Relay: "relay-1", Trigger: message.SourceSchedule, StartedAt: at}, []probe.Result{
				okResult("relay-1", mx1, "192.0.2.1", "", at),
				okResult("relay-1", mx1, "2001:db8::1", "", at.Add(time.Millisecond)),
				failResult("relay-1", mx2, "192.0.2.2", "", at, probe.FailTLSReset),
			})
			if err != nil {
				t.Fatal(err)
			}
			allIDs = append(allIDs, ids...)
		}
		// Only the newest success per relay × MX, and every failure, keeps
		// its transcript.
		for i, id := range allIDs {
			r, err := s.Result(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want := !r.OK || i == len(allIDs)-2
			if got := r.Transcript != nil; got != want {
				t.Errorf("result %d (%s ok=%v): transcript kept=%v, want %v", i, r.IP, r.OK, got, want)
			}
		}
		// A late success older than the newest one does not steal the slot.
		_, ids, err := s.RecordRun(ctx, Run{Relay: "relay-1"}, []probe.Result{okResult("relay-1", mx1, "192.0.2.1", "", t0.Add(-time.Hour))})
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := s.Result(ctx, ids[0]); r.Transcript != nil {
			t.Error("older success took the transcript")
		}
		if r, _ := s.Result(ctx, allIDs[len(allIDs)-2]); r.Transcript == nil {
			t.Error("newest success lost its transcript")
		}
	})
}

func TestLongTranscriptTrimmed(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		var lines []string
		for i := range 1000 {
			lines = append(lines, fmt.Sprintf("S: 250-line %d", i))
		}
		b, err := encodeTranscript(&sync.Pool{}, lines)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeTranscript(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != maxTranscriptLines || got[0] != lines[0] || got[len(got)-1] != lines[len(lines)-1] ||
			!strings.Contains(got[maxTranscriptLines/2], "trimmed") {
			t.Fatalf("trimmed transcript: %d lines, middle %q", len(got), got[maxTranscriptLines/2])
		}
	})
}

func FuzzTranscriptRoundTrip(f *testing.F) {
	f.Add("S: 220 mx.google.com ESMTP\nC: EHLO x\n")
	f.Add("\x00\xff\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		lines := strings.Split(s, "\n")
		b, err := encodeTranscript(&sync.Pool{}, lines)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeTranscript(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) <= maxTranscriptLines && len(got) != len(lines) {
			t.Fatalf("%d lines back, want %d", len(got), len(lines))
		}
		// Arbitrary bytes as a stored blob never panic.
		_, _ = decodeTranscript([]byte(s))
	})
}

// fill records n runs per relay, every 5 minutes from start, each run
// with one result per MX; failing(relay, i) decides failures.
func fill(t testing.TB, s *Store, relays []string, start time.Time, n int, failing func(relay string, i int) bool) {
	t.Helper()
	var batch []RunWithResults
	for i := range n {
		at := start.Add(time.Duration(i) * 5 * time.Minute)
		for _, r := range relays {
			rw := RunWithResults{Run: Run{Relay: r, Trigger: message.SourceSchedule, StartedAt: at}}
			for j, mx := range []string{mx1, mx2} {
				res := okResult(r, mx, fmt.Sprintf("192.0.2.%d", j+1), "", at.Add(time.Duration(j)*time.Millisecond))
				if failing != nil && failing(r, i) {
					res = failResult(r, mx, res.IP, "", res.StartedAt, probe.FailTLSReset)
				}
				rw.Results = append(rw.Results, res)
			}
			batch = append(batch, rw)
		}
	}
	if err := s.RecordRuns(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

func TestHistoryAndRecent(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		s := e.open(t, "", manualclock.New(t0))
		relays := []string{"relay-1", "relay-2"}
		if err := s.SyncRelays(ctx, []RelaySpec{{Name: "relay-1"}, {Name: "relay-2"}}); err != nil {
			t.Fatal(err)
		}
		fill(t, s, relays, t0, 24, func(r string, i int) bool { return r == "relay-2" && i%6 == 0 })

		all, err := s.History(ctx, HistoryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 24*2*2 {
			t.Fatalf("history: %d results", len(all))
		}
		if !slices.IsSortedFunc(all, func(a, b StoredResult) int { return b.StartedAt.Compare(a.StartedAt) }) {
			t.Error("history not newest first")
		}
		h, err := s.History(ctx, HistoryQuery{Relay: "relay-2", FailuresOnly: true, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 3 || h[0].OK || h[0].Relay != "relay-2" || h[0].Failure != probe.FailTLSReset || h[0].Transcript != nil {
			t.Fatalf("failures of relay-2: %+v", h)
		}
		h, _ = s.History(ctx, HistoryQuery{Relay: "relay-1", Since: t0.Add(time.Hour), Until: t0.Add(90 * time.Minute), WithTranscript: true})
		if len(h) != 6*2 {
			t.Fatalf("window: %d results", len(h))
		}
		if h[0].Transcript != nil {
			t.Error("an older success of relay-1 kept its transcript")
		}
		h, _ = s.History(ctx, HistoryQuery{Relay: "relay-1", Limit: 1, WithTranscript: true})
		if len(h) != 1 || h[0].Transcript == nil {
			t.Error("newest success of relay-1 has no transcript with WithTranscript")
		}
		if _, err := s.History(ctx, HistoryQuery{Relay: "nope"}); err == nil || !strings.Contains(err.Error(), `relay "nope"`) {
			t.Errorf("unknown relay: %v", err)
		}

		// Recent: the last 4 runs per relay (2 results each), or everything of
		// the last 30 minutes (6 runs).
		end := t0.Add(24 * 5 * time.Minute)
		rec, err := s.Recent(ctx, end.Add(-30*time.Minute), 4)
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, r := range rec {
			count[r.Relay]++
		}
		if count["relay-1"] != 12 || count["relay-2"] != 12 {
			t.Fatalf("recent counts %v", count)
		}
		if !slices.IsSortedFunc(rec, func(a, b StoredResult) int { return a.StartedAt.Compare(b.StartedAt) }) {
			t.Error("recent not oldest first")
		}
		rec, _ = s.Recent(ctx, end, 3)
		if len(rec) != 12 {
			t.Fatalf("recent by runs: %d results, want 3 runs × 2 results × 2 relays", len(rec))
		}
		// A zero since: the runs alone.
		rec, _ = s.Recent(ctx, time.Time{}, 2)
		if len(rec) != 8 || !rec[0].StartedAt.After(end.Add(-15*time.Minute)) {
			t.Fatalf("last 2 runs per relay: %d results from %v", len(rec), rec[0].StartedAt)
		}
		// Retired relays are left out.
		if err := s.SyncRelays(ctx, []RelaySpec{{Name: "relay-1"}}); err != nil {
			t.Fatal(err)
		}
		rec, _ = s.Recent(ctx, end, 3)
		if len(rec) != 6 || rec[0].Relay != "relay-1" {
			t.Fatalf("recent after retiring relay-2: %+v", rec)
		}
	})
}

// TestConcurrentWritersAndReaders runs writers and readers at once (meant
// for -race) and checks every write landed.
func TestConcurrentWritersAndReaders(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		s := e.open(t, "", manualclock.New(t0))
		var wg sync.WaitGroup
		const writers, runs = 4, 25
		for w := range writers {
			wg.Go(func() {
				relay := fmt.Sprintf("relay-%d", w)
				for i := range runs {
					at := t0.Add(time.Duration(i) * time.Minute)
					if _, _, err := s.RecordRun(ctx, Run{Relay: relay, StartedAt: at},
						[]probe.Result{okResult(relay, mx1, "192.0.2.1", "", at)}); err != nil {
						t.Error(err)
						return
					}
				}
			})
			wg.Go(func() {
				for range runs {
					if _, err := s.Recent(ctx, t0, 5); err != nil {
						t.Error(err)
						return
					}
					if _, err := s.Summary(ctx, t0, t0.Add(time.Hour)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		all, err := s.History(ctx, HistoryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != writers*runs {
			t.Fatalf("%d results, want %d", len(all), writers*runs)
		}
	})
}

// TestRunControlFailedReadBack: a run's ControlFailed comes back on every
// result of the lean reads (Recent, ResultsAfter) and on LastRun's run,
// from a reopened file, and is false for runs stored without it.
func TestRunControlFailedReadBack(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		path := e.fresh(t)
		s := e.open(t, path, manualclock.New(t0))
		for i, failed := range []bool{false, true} {
			at := t0.Add(time.Duration(i) * 5 * time.Minute)
			if _, _, err := s.RecordRun(ctx, Run{Relay: "relay-1", Trigger: message.SourceSchedule, StartedAt: at, ControlFailed: failed},
				[]probe.Result{failResult("relay-1", mx1, "192.0.2.1", "", at, probe.FailTLSReset), okResult("relay-1", mx2, "192.0.2.2", "", at)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = e.open(t, path, manualclock.New(t0))
		recent, err := s.Recent(ctx, time.Time{}, 10)
		if err != nil || len(recent) != 4 {
			t.Fatalf("%d results, %v", len(recent), err)
		}
		after, err := s.ResultsAfter(ctx, 0, 0)
		if err != nil || len(after) != 4 {
			t.Fatalf("%d results, %v", len(after), err)
		}
		for _, rs := range [][]StoredResult{recent, after} {
			for _, r := range rs {
				if want := r.StartedAt.After(t0.Add(time.Minute)); r.ControlFailed != want {
					t.Errorf("result %d of run %d: ControlFailed %v, want %v", r.ID, r.RunID, r.ControlFailed, want)
				}
			}
		}
		run, _, err := s.LastRun(ctx, "relay-1")
		if err != nil || !run.ControlFailed {
			t.Fatalf("last run %+v, %v: want ControlFailed", run, err)
		}
	})
}
