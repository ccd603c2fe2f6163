package relay

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// TestReplayRefusedAfterRestart: a request captured on its way to the
// agent still cannot run again once the agent restarts (a new server on
// the same state directory), while fresh requests go on passing.
func TestReplayRefusedAfterRestart(t *testing.T) {
	ca := newCA(t)
	mx, base := target(t, smtptest.Gmail, ca)
	state := t.TempDir()
	t0 := time.Unix(1700000000, 0)
	now := t0
	clock := func() time.Time { return now }
	start := func() (*ReplayCache, string) {
		rc, err := OpenReplayCache(state, now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rc.Close() })
		return rc, plainAgent(t, ServerConfig{Base: base, Now: clock, Replay: rc}).URL
	}
	rc1, url1 := start()
	body := []byte(`{"mx":["127.0.0.1"],"nonce":"n1"}`)
	captured := func(url string) *http.Request {
		return signedRequest(t, testSecret, t0, "POST", url, PathProbe, body)
	}
	if code, msg := send(t, captured(url1)); code != 200 {
		t.Fatalf("genuine request: %d %s", code, msg)
	}
	read := signedRequest(t, testSecret, now, "GET", url1, PathInfo+"?nonce=r1", nil)
	if code, msg := send(t, read); code != 200 {
		t.Fatalf("genuine read: %d %s", code, msg)
	}
	rc1.Close() // the agent stops

	// Two minutes later the agent runs again and the captured requests
	// come back.
	now = now.Add(2 * time.Minute)
	rc2, url2 := start()
	if rc2.Len() != 2 {
		t.Errorf("the restarted agent remembers %d signatures, want 2", rc2.Len())
	}
	if code, msg := send(t, captured(url2)); code != 401 || !strings.Contains(msg, "replay") {
		t.Fatalf("replayed probe after a restart: %d %s", code, msg)
	}
	read = signedRequest(t, testSecret, t0, "GET", url2, PathInfo+"?nonce=r1", nil)
	if code, msg := send(t, read); code != 401 || !strings.Contains(msg, "replay") {
		t.Fatalf("replayed read after a restart: %d %s", code, msg)
	}
	if n := mx.Connections(); n != 1 {
		t.Fatalf("%d probes ran, want 1 (the replay ran)", n)
	}
	// A fresh request passes.
	if code, msg := send(t, signedRequest(t, testSecret, now, "POST", url2, PathProbe, body)); code != 200 {
		t.Fatalf("fresh request after the restart: %d %s", code, msg)
	}

	// Past the skew window, the entries are pruned when the cache opens.
	rc2.Close()
	now = t0.Add(MaxSkew + time.Second) // the first requests expired, the fresh one not
	rc3, err := OpenReplayCache(state, now)
	if err != nil {
		t.Fatal(err)
	}
	defer rc3.Close()
	if rc3.Len() != 1 {
		t.Errorf("%d signatures kept past the window, want 1 (the fresh one)", rc3.Len())
	}
}

func sig(c byte) string { return "v1=" + strings.Repeat(string(c), 64) }

// TestReplayCacheFile: the file is rewritten without expired entries and
// when it grows, skips a torn last line, and holds nothing else.
func TestReplayCacheFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // created on open
	now := time.Unix(1700000000, 0)
	rc, err := OpenReplayCache(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	rc.compactSlack = 4
	for i, c := range []byte("0123456789") {
		if err := rc.check(sig(c), now.Add(time.Duration(i)*time.Second), now); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, ReplayFileName)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("replay file %v %v", fi, err)
	}
	// 10 entries; the file was compacted along the way, never more than
	// twice the entries plus the slack.
	if n := lines(t, path); n > 2*10+4 || n < 10 {
		t.Errorf("%d lines for 10 entries", n)
	}
	// Later entries expire later: at now+5.5s, 0..5 are gone.
	later := now.Add(5500 * time.Millisecond)
	for i := range 20 {
		rc.check(sig(byte('a'+i)), later.Add(time.Minute), later)
	}
	rc.Close()
	// A crash in mid-write leaves half a line.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("1700000300 v1=abc")
	f.Close()
	rc, err = OpenReplayCache(dir, later)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if rc.Len() != 4+20 {
		t.Errorf("%d entries after reopening, want 24", rc.Len())
	}
	if n := lines(t, path); n != 24 {
		t.Errorf("%d lines after reopening, want 24", n)
	}
	if err := rc.check(sig('9'), later.Add(time.Minute), later); err == nil || !strings.Contains(err.Error(), "replay") {
		t.Errorf("a remembered signature: %v", err)
	}
	if err := rc.check(sig('0'), later.Add(time.Minute), later); err != nil {
		t.Errorf("an expired signature is still refused: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestReplayCacheUnwritable: when the signature cannot be saved, the
// request is refused (503) and runs nothing: a restart would forget it.
func TestReplayCacheUnwritable(t *testing.T) {
	ca := newCA(t)
	mx, base := target(t, smtptest.Gmail, ca)
	state := t.TempDir()
	rc, err := OpenReplayCache(state, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	agent := plainAgent(t, ServerConfig{Base: base, Replay: rc})
	// Appending fails (the file is open read-only), and so does rewriting
	// (the folder is gone).
	rc.mu.Lock()
	rc.f.Close()
	rc.f, err = os.Open(filepath.Join(state, ReplayFileName))
	rc.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	code, msg := send(t, signedRequest(t, testSecret, time.Now(), "POST", agent.URL, PathProbe, nil))
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "replay cache") {
		t.Fatalf("%d %s", code, msg)
	}
	if mx.Connections() != 0 {
		t.Fatal("a request whose signature was not saved ran")
	}
	if rc.Len() != 0 {
		t.Errorf("the unsaved signature is remembered (%d entries)", rc.Len())
	}
}

// TestNotBefore: without a state directory, the agent refuses requests
// signed before it started.
func TestNotBefore(t *testing.T) {
	ca := newCA(t)
	mx, base := target(t, smtptest.Gmail, ca)
	now := time.Unix(1700000000, 0)
	agent := plainAgent(t, ServerConfig{Base: base, Now: func() time.Time { return now }, NotBefore: now.Add(-time.Second)})
	code, msg := send(t, signedRequest(t, testSecret, now.Add(-2*time.Second), "POST", agent.URL, PathProbe, nil))
	if code != 401 || !strings.Contains(msg, "before the agent started") {
		t.Fatalf("signed before the start: %d %s", code, msg)
	}
	if mx.Connections() != 0 {
		t.Fatal("a request signed before the start ran")
	}
	if code, msg := send(t, signedRequest(t, testSecret, now.Add(-time.Second), "POST", agent.URL, PathProbe, nil)); code != 200 {
		t.Fatalf("signed at the start: %d %s", code, msg)
	}
}
