package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/bot"
	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/storage"
)

// hookTransport carries the bot's calls to the Slack stand-in and calls
// after with the number of chat.postMessage calls Slack accepted so far, so
// a test can make Slack fail from a given message of a thread on.
type hookTransport struct {
	base  http.RoundTripper
	after func(posted int)

	mu     sync.Mutex
	posted int
}

func (h *hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := h.base.RoundTrip(r)
	if err != nil || r.URL.Path != "/api/chat.postMessage" {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var answer struct {
		OK bool `json:"ok"`
	}
	if json.Unmarshal(body, &answer) == nil && answer.OK {
		h.mu.Lock()
		h.posted++
		n := h.posted
		h.mu.Unlock()
		if h.after != nil {
			h.after(n)
		}
	}
	return resp, nil
}

func newFake(t *testing.T) *slackfake.Server {
	t.Helper()
	fake := slackfake.New(slackfake.Options{})
	t.Cleanup(fake.Close)
	return fake
}

// hookedWorker is slackWorker with hookTransport between the bot and the
// stand-in.
func hookedWorker(t *testing.T, s *storage.Store, c *clock, fake *slackfake.Server, logs *bytes.Buffer, after func(int)) *Worker {
	t.Helper()
	hc := &http.Client{Transport: &hookTransport{base: fake.Client().Transport, after: after}}
	return workerWithClient(t, s, c, fake, hc, logs)
}

// longReport is a 200-line report: Slack gets it as a message and several
// continuation replies in its thread.
func longReport(title string) message.Response {
	r := message.Response{Title: title, Verdict: message.VerdictWarn, Summary: title}
	for i := range 200 {
		sec := message.Section{Heading: fmt.Sprintf("relay-%d", i+1)}
		for j := range 1 {
			sec.Lines = append(sec.Lines, fmt.Sprintf("line %03d: gmail-smtp-in.l.google.com 142.250.%d.%d:25 tls_reset after 201 ms, ClientHello 1,812 bytes, retried without the post-quantum key share: ok", i+j, i, j))
		}
		r.Sections = append(r.Sections, sec)
	}
	return r
}

// TestLongMessageRepliesResumeAfterErrors: a 200-line report whose main
// message went out but whose thread replies then met HTTP 500s, and a
// restart in between, ends with every part posted exactly once, in order,
// in the main message's thread; the message is not delivered (and its
// thread's later messages wait) until its last reply is.
func TestLongMessageRepliesResumeAfterErrors(t *testing.T) {
	fake := newFake(t)
	c := newClock()
	path := filepath.Join(t.TempDir(), "gmailtls.db")
	s1, err := storage.Open(context.Background(), path, storage.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	report := longReport("Health summary")
	parts := bot.RenderMessages(report)
	if len(parts.Thread) < 4 {
		t.Fatalf("the report renders to %d replies; the test needs more", len(parts.Thread))
	}
	// Slack answers 500 from the second reply on, a few times.
	w1 := hookedWorker(t, s1, c, fake, &logs, func(n int) {
		if n == 2 {
			fake.FailNext("chat.postMessage", http.StatusInternalServerError, 0, "", 4)
		}
	})
	key := "report:CREP:2026-03-02T09:00Z"
	put(t, s1, Message{Key: key, Kind: storage.KindReport, Channel: "CREP", Payload: Payload{Response: report}})
	put(t, s1, Message{Key: key + ":note", Kind: storage.KindReport, Channel: "CREP", ThreadKey: key,
		Payload: Payload{Response: message.Response{Title: "note after the report"}}})
	put(t, s1, Message{Key: "report:CREP:next", Kind: storage.KindReport, Channel: "CREP",
		Payload: Payload{Response: message.Response{Title: "the next report"}}})

	if _, err := w1.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, _, err := s1.MessageByKey(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != storage.OutboxPending {
		t.Fatalf("after 2 of %d parts the report is %s, want pending", 1+len(parts.Thread), m.State)
	}
	if got := len(fake.Messages()); got != 2 {
		t.Fatalf("%d messages posted in the first pass, want the report and its first reply", got)
	}
	// The process dies; a new one resumes on the same file.
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, path, c.Now)
	w2 := hookedWorker(t, s2, c, fake, &logs, nil)
	drainUntil(t, w2, s2, c, time.Second, 60)

	posts := fake.MessagesBy("chat.postMessage")
	if want := 1 + len(parts.Thread) + 2; len(posts) != want {
		for _, p := range posts {
			t.Logf("posted %q in thread %q", p.Text, p.ThreadTS)
		}
		t.Fatalf("%d messages posted, want %d: each part of the report once, the note, the next report", len(posts), want)
	}
	main := posts[0]
	if main.Text != parts.Main.Text || main.ThreadTS != "" {
		t.Fatalf("first post %+v, want the report's main message", main)
	}
	for i, want := range parts.Thread {
		if p := posts[1+i]; p.Text != want.Text || p.ThreadTS != main.TS {
			t.Errorf("post %d = %q in thread %q, want %q in %q", 1+i, p.Text, p.ThreadTS, want.Text, main.TS)
		}
	}
	note := posts[1+len(parts.Thread)]
	if !strings.Contains(note.Text, "note after the report") || note.ThreadTS != main.TS {
		t.Errorf("the note came as %q in thread %q, want after every reply in %q", note.Text, note.ThreadTS, main.TS)
	}
	if last := posts[len(posts)-1]; !strings.Contains(last.Text, "the next report") || last.ThreadTS != "" {
		t.Errorf("last post %+v, want the next report", last)
	}
	m, _, err = s2.MessageByKey(context.Background(), key)
	if err != nil || m.State != storage.OutboxSent || m.TS != main.TS {
		t.Errorf("stored report = %s ts %q (%v), want sent with ts %s", m.State, m.TS, err, main.TS)
	}
}

// TestUpdateRepliesPostedOnce: an update whose chat.update went through but
// whose replies then failed does not post the replies that went out again
// when it is retried.
func TestUpdateRepliesPostedOnce(t *testing.T) {
	fake := newFake(t)
	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	var logs bytes.Buffer
	// Posts: 1 the alert, 2 the update's first reply; then 500s.
	w := hookedWorker(t, s, c, fake, &logs, func(n int) {
		if n == 2 {
			fake.FailNext("chat.postMessage", http.StatusInternalServerError, 0, "", 4)
		}
	})
	update := longReport("relay-2: incident")
	parts := bot.RenderMessages(update)
	put(t, s, Message{Key: "alert:1", Channel: "CALERT", Payload: Payload{Response: message.Response{Title: "relay-2: investigate"}}})
	put(t, s, Message{Key: "alert:1:level:incident", Kind: storage.KindUpdate, Channel: "CALERT", UpdateKey: "alert:1",
		Payload: Payload{Response: update}})
	drainUntil(t, w, s, c, time.Second, 60)

	posts := fake.MessagesBy("chat.postMessage")
	if len(posts) != 1+len(parts.Thread) {
		for _, p := range posts {
			t.Logf("posted %q in thread %q", p.Text, p.ThreadTS)
		}
		t.Fatalf("%d posts, want the alert and %d replies once each", len(posts), len(parts.Thread))
	}
	alert := posts[0]
	for i, want := range parts.Thread {
		if p := posts[1+i]; p.Text != want.Text || p.ThreadTS != alert.TS {
			t.Errorf("reply %d = %q in thread %q, want %q in %q", i+1, p.Text, p.ThreadTS, want.Text, alert.TS)
		}
	}
	if up := fake.MessagesBy("chat.update"); len(up) != 1 || up[0].TS != alert.TS {
		t.Errorf("chat.update calls %+v, want one of %s", up, alert.TS)
	}
}

// TestRejectedTokenPausesDelivery: while Slack refuses the bot token (or
// its scopes) every message stays pending and all delivery pauses, from a
// minute doubling to 15 minutes, with an error log that names the fix;
// once the token works again each message is delivered once. A
// channel_not_found still fails only its own message.
func TestRejectedTokenPausesDelivery(t *testing.T) {
	fake := newFake(t)
	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	var logs bytes.Buffer
	w := slackWorker(t, s, c, fake, &logs)
	fake.FailNext("chat.postMessage", 0, 0, "token_revoked", 2)
	fake.FailNext("chat.postMessage", 0, 0, "invalid_auth", 2)
	fake.FailNext("chat.postMessage", 0, 0, "missing_scope", 2)
	put(t, s, Message{Key: "alert:1", Channel: "CALERT"})
	put(t, s, Message{Key: "alert:2", Channel: "COTHER"})

	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute, 15 * time.Minute} {
		if n, err := w.Drain(context.Background()); err != nil || n != 0 {
			t.Fatalf("drain %d: delivered %d (%v) with the token refused", i, n, err)
		}
		if got := w.PausedUntil().Sub(c.Now()); got != want {
			t.Fatalf("refusal %d paused delivery for %s, want %s", i+1, got, want)
		}
		pending, _, failed, err := s.OutboxStats(context.Background(), c.Now())
		if err != nil || pending != 2 || failed != 0 {
			t.Fatalf("refusal %d: %d pending, %d failed (%v), want both messages pending", i+1, pending, failed, err)
		}
		// Nothing is tried while paused.
		calls := len(fake.CallsTo("chat.postMessage"))
		c.Advance(want - time.Second)
		if _, err := w.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := len(fake.CallsTo("chat.postMessage")); n != calls {
			t.Fatalf("refusal %d: %d calls during the pause", i+1, n-calls)
		}
		c.Advance(time.Second)
	}
	drainUntil(t, w, s, c, time.Second, 5)
	for _, key := range []string{"alert:1", "alert:2"} {
		n := 0
		for _, m := range fake.Messages() {
			if strings.Contains(m.Text, key) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s posted %d times, want once", key, n)
		}
	}
	for _, want := range []string{"level=ERROR", "SLACK_BOT_TOKEN", "scope", "token_revoked", "missing_scope"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}

	// After a success the pause starts from a minute again; a message to a
	// channel that does not exist fails alone.
	fake.FailNext("chat.postMessage", 0, 0, "invalid_auth", 1)
	put(t, s, Message{Key: "alert:3", Channel: "CALERT"})
	if _, err := w.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := w.PausedUntil().Sub(c.Now()); got != time.Minute {
		t.Errorf("a new refusal paused delivery for %s, want 1m", got)
	}
	c.Advance(time.Minute)
	drainUntil(t, w, s, c, time.Second, 5)
	fake.FailNext("chat.postMessage", 0, 0, "channel_not_found", 1)
	put(t, s, Message{Key: "alert:4", Channel: "CGONE"})
	put(t, s, Message{Key: "alert:5", Channel: "CALERT"})
	drainUntil(t, w, s, c, time.Second, 5)
	failed, err := s.FailedMessages(context.Background(), 10)
	if err != nil || len(failed) != 1 || failed[0].Key != "alert:4" || !strings.Contains(failed[0].LastError, "channel_not_found") {
		t.Fatalf("failed messages %+v (%v), want alert:4 with channel_not_found", failed, err)
	}
	if w.PausedUntil().After(c.Now()) {
		t.Errorf("channel_not_found paused delivery until %s", w.PausedUntil())
	}
}
