package bot

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/storage"
)

// startHTTPBotWith is startHTTPBot with a replay memory (nil: in memory).
func startHTTPBotWith(t *testing.T, fake *slackfake.Server, h *fakeHandler, replay ReplayMemory) (*testBot, string) {
	t.Helper()
	tb := startBot(t, fake, h, func(c *Config) {
		c.Mode = ModeHTTP
		c.AppToken = ""
		c.SigningSecret = testSecret
		c.Listen = "127.0.0.1:0"
		c.Replay = replay
	})
	tb.waitReady(t)
	return tb, "http://" + tb.Addr().String()
}

// captured is a signed request as someone on the path captured it: sent
// again, it carries the very same headers and body.
type captured struct {
	path, body string
	ts         time.Time
}

func (c captured) request(t *testing.T, base string, mut ...func(*http.Request)) *http.Request {
	t.Helper()
	req, err := slackfake.SignedRequest(context.Background(), base+c.path, testSecret, c.ts, c.body)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mut {
		m(req)
	}
	return req
}

// upperHex spells the same signature with upper-case hex digits: the MAC
// is the same, the header is not.
func upperHex(req *http.Request) {
	sig := req.Header.Get("X-Slack-Signature")
	req.Header.Set("X-Slack-Signature", "v0="+strings.ToUpper(strings.TrimPrefix(sig, "v0=")))
}

// TestHTTPModeRefusesReplays: a captured slash command and a captured
// button press, sent again within Slack's 5-minute window, run nothing:
// not again at once, not in other hex letters, not as a retry Slack
// signed anew, and not after the bot restarted on the same SQLite file.
// Each replay is answered 200 with an empty body.
func TestHTTPModeRefusesReplays(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	path := filepath.Join(t.TempDir(), "gmailtls.db")
	st := openStore(t, path, nil)
	h := &fakeHandler{}
	tb, base := startHTTPBotWith(t, fake, h, st)

	now := time.Now()
	slash := captured{path: PathCommands, ts: now,
		body: slackfake.Slash{Text: "check relay-2", ResponseURL: fake.ResponseURL("r-1")}.Form().Encode()}
	press := captured{path: PathInteractivity, ts: now,
		body: slackfake.Action{ActionID: message.ActionRerun, Value: "relay-2", ResponseURL: fake.ResponseURL("r-2")}.Form().Encode()}

	if status, reply := do(t, slash.request(t, base)); status != http.StatusOK || !strings.Contains(reply, "probing relay-2") {
		t.Fatalf("the original command: %d %q", status, reply)
	}
	if status, reply := do(t, press.request(t, base)); status != http.StatusOK || reply != "" {
		t.Fatalf("the original press: %d %q", status, reply)
	}
	waitFor(t, fake, "both results", func() bool { return len(messagesTo(fake, "r-1")) == 1 && len(messagesTo(fake, "r-2")) == 1 })

	replays := map[string]*http.Request{
		"slash again":        slash.request(t, base),
		"button again":       press.request(t, base),
		"slash in upper hex": slash.request(t, base, upperHex),
		"button upper hex":   press.request(t, base, upperHex),
		// Slack's retry of an accepted request: the same body, signed
		// anew, with X-Slack-Retry-Num.
		"slash retried": captured{path: slash.path, body: slash.body, ts: now.Add(time.Second)}.request(t, base, func(r *http.Request) {
			r.Header.Set("X-Slack-Retry-Num", "1")
			r.Header.Set("X-Slack-Retry-Reason", "http_timeout")
		}),
		"button retried": captured{path: press.path, body: press.body, ts: now.Add(2 * time.Second)}.request(t, base, func(r *http.Request) {
			r.Header.Set("X-Slack-Retry-Num", "2")
		}),
	}
	for name, req := range replays {
		if status, reply := do(t, req); status != http.StatusOK || reply != "" {
			t.Errorf("%s: %d %q, want an empty 200", name, status, reply)
		}
	}
	if err := tb.stop(t); err != nil {
		t.Fatal(err)
	}
	if acks, _ := h.calls(); len(acks) != 2 {
		t.Fatalf("the handler ran %d times for 2 requests and %d replays: %+v", len(acks), len(replays), acks)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart on the same file: the captured requests are still
	// refused (they are still within the window); a new one runs.
	st = openStore(t, path, nil)
	h2 := &fakeHandler{}
	tb2, base2 := startHTTPBotWith(t, fake, h2, st)
	for name, req := range map[string]*http.Request{
		"slash after restart":  slash.request(t, base2),
		"button after restart": press.request(t, base2),
	} {
		if status, reply := do(t, req); status != http.StatusOK || reply != "" {
			t.Errorf("%s: %d %q, want an empty 200", name, status, reply)
		}
	}
	fresh := captured{path: PathCommands, ts: time.Now(), body: slackfake.Slash{Text: "check relay-3", TriggerID: "other.trigger", ResponseURL: fake.ResponseURL("r-3")}.Form().Encode()}
	if status, reply := do(t, fresh.request(t, base2)); status != http.StatusOK || !strings.Contains(reply, "probing relay-3") {
		t.Errorf("a new command after the restart: %d %q", status, reply)
	}
	if err := tb2.stop(t); err != nil {
		t.Fatal(err)
	}
	if acks, _ := h2.calls(); len(acks) != 1 || acks[0].Text != "check relay-3" {
		t.Errorf("after the restart the handler ran %+v, want only the new command", acks)
	}
}

// TestHTTPModeRetryOfUnacceptedRequestRuns: a retry whose original never
// got through (Slack saw a timeout before the bot read it) runs, once.
func TestHTTPModeRetryOfUnacceptedRequestRuns(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	h := &fakeHandler{}
	tb, base := startHTTPBotWith(t, fake, h, nil)
	retry := captured{path: PathCommands, ts: time.Now(), body: slackfake.Slash{Text: "check relay-2"}.Form().Encode()}
	mark := func(r *http.Request) { r.Header.Set("X-Slack-Retry-Num", "1") }
	if status, reply := do(t, retry.request(t, base, mark)); status != http.StatusOK || !strings.Contains(reply, "probing relay-2") {
		t.Fatalf("first retry: %d %q", status, reply)
	}
	if status, reply := do(t, retry.request(t, base, mark)); status != http.StatusOK || reply != "" {
		t.Errorf("the same retry again: %d %q", status, reply)
	}
	if err := tb.stop(t); err != nil {
		t.Fatal(err)
	}
	if acks, _ := h.calls(); len(acks) != 1 {
		t.Errorf("the handler ran %d times, want 1", len(acks))
	}
}

// TestHTTPModeMemoryReplayRefusesEarlierRequests: without a database the
// replay memory does not survive a restart, so a request signed before
// the bot started is refused even within the window.
func TestHTTPModeMemoryReplayRefusesEarlierRequests(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	early := captured{path: PathCommands, ts: time.Now().Add(-2 * time.Second), body: slackfake.Slash{Text: "check relay-2"}.Form().Encode()}
	h := &fakeHandler{}
	tb, base := startHTTPBotWith(t, fake, h, nil)
	if status, _ := do(t, early.request(t, base)); status != http.StatusUnauthorized {
		t.Errorf("a request signed before the start: %d, want 401", status)
	}
	if err := tb.stop(t); err != nil {
		t.Fatal(err)
	}
	if acks, _ := h.calls(); len(acks) != 0 {
		t.Errorf("the handler ran %d times", len(acks))
	}
	if !strings.Contains(tb.logs.String(), "in memory only") {
		t.Errorf("no warning that the replay memory is in memory only:\n%s", tb.logs.String())
	}
}

// failingReplay is a replay memory that cannot record anything (a full
// disk, a locked database).
type failingReplay struct{}

func (failingReplay) RememberSlackRequest(context.Context, time.Time, ...storage.SeenKey) ([]bool, error) {
	return nil, io.ErrShortWrite
}

// TestHTTPModeRefusesWhenReplayMemoryFails: a request that cannot be
// recorded is refused (503) rather than run unprotected.
func TestHTTPModeRefusesWhenReplayMemoryFails(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	h := &fakeHandler{}
	tb, base := startHTTPBotWith(t, fake, h, failingReplay{})
	req := captured{path: PathCommands, ts: time.Now(), body: slackfake.Slash{Text: "check relay-2"}.Form().Encode()}
	if status, _ := do(t, req.request(t, base)); status != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", status)
	}
	if err := tb.stop(t); err != nil {
		t.Fatal(err)
	}
	if acks, _ := h.calls(); len(acks) != 0 {
		t.Errorf("the handler ran %d times", len(acks))
	}
}
