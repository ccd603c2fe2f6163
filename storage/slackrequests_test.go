package storage

import (
	"context"
	"crypto/sha256"
	"slices"
	"testing"
	"time"
)

func digest(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

// rows counts the rows of the replay memory, expired or not.
func rows(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM slack_requests`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRememberSlackRequest: a key is new once, seen while unexpired, even
// after the file is reopened; expired keys are forgotten and deleted.
func TestRememberSlackRequest(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		path := e.fresh(t)
		s := e.open(t, path, nil)
		sig, body := digest("sig-1"), digest("body-1")
		keys := []SeenKey{{Digest: sig, Expires: t0.Add(5 * time.Minute)}, {Digest: body, Expires: t0.Add(time.Hour)}}

		seen, err := s.RememberSlackRequest(ctx, t0, keys...)
		if err != nil || !slices.Equal(seen, []bool{false, false}) {
			t.Fatalf("first time: %v %v", seen, err)
		}
		seen, err = s.RememberSlackRequest(ctx, t0.Add(time.Minute), keys...)
		if err != nil || !slices.Equal(seen, []bool{true, true}) {
			t.Fatalf("second time: %v %v", seen, err)
		}

		// The memory outlives the process.
		s.Close()
		s = e.open(t, path, nil)
		seen, err = s.RememberSlackRequest(ctx, t0.Add(2*time.Minute), keys[0], SeenKey{Digest: digest("sig-2"), Expires: t0.Add(7 * time.Minute)})
		if err != nil || !slices.Equal(seen, []bool{true, false}) {
			t.Fatalf("after reopening: %v %v", seen, err)
		}

		// Past its expiry a signature is forgotten (the bot refuses the
		// request as stale by then) and its row is gone; the body's stays.
		seen, err = s.RememberSlackRequest(ctx, t0.Add(6*time.Minute), SeenKey{Digest: digest("sig-3"), Expires: t0.Add(11 * time.Minute)})
		if err != nil || !slices.Equal(seen, []bool{false}) {
			t.Fatalf("a new key: %v %v", seen, err)
		}
		if n := rows(t, s); n != 3 { // body-1, sig-2, sig-3
			t.Errorf("%d rows after pruning, want 3", n)
		}
		seen, err = s.RememberSlackRequest(ctx, t0.Add(6*time.Minute), keys[0])
		if err != nil || !slices.Equal(seen, []bool{false}) {
			t.Fatalf("an expired key: %v %v", seen, err)
		}

		// A key seen again keeps the later expiry.
		if _, err := s.RememberSlackRequest(ctx, t0.Add(6*time.Minute), SeenKey{Digest: body, Expires: t0.Add(10 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		seen, err = s.RememberSlackRequest(ctx, t0.Add(30*time.Minute), SeenKey{Digest: body, Expires: t0.Add(31 * time.Minute)})
		if err != nil || !slices.Equal(seen, []bool{true}) {
			t.Fatalf("body after a shorter re-record: %v %v", seen, err)
		}

		if _, err := s.RememberSlackRequest(ctx, t0, SeenKey{}); err == nil {
			t.Error("an empty digest was accepted")
		}
	})
}
