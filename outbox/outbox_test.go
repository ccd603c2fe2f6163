package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/storage"
)

type clock = manualclock.Clock

func newClock() *clock { return manualclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)) }

func openStore(t *testing.T, path string, now func() time.Time) *storage.Store {
	t.Helper()
	s, err := storage.Open(context.Background(), path, storage.Options{Now: now})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Errors the fake Slack answers with; fakeSender.Classify knows them.
type rateLimited struct{ after time.Duration }

func (e rateLimited) Error() string {
	return fmt.Sprintf("slack: rate limited, retry after %s", e.after)
}

var (
	errServer    = errors.New("slack: server answered 500 Internal Server Error")
	errNoChannel = errors.New("slack: chat.postMessage failed: channel_not_found")
)

// fakePart is a part as fakeSender renders it: the title of the message
// (part 0) or of its n-th thread reply (part n).
type fakePart struct {
	text string
	part int
}

// attempt is one call of the fake sender: a post, an update or an upload.
type attempt struct {
	key      string // the message's key: its title without "message "
	part     int
	channel  string
	threadTS string
	updateTS string
	upload   *Upload
	at       time.Time
	ts       string
	err      error
}

// fakeSender plays Slack: it answers the scripted errors first, then
// succeeds, and hands out increasing ts values. It renders a Response as
// its title and one part per Response of its Thread, and counts renders.
type fakeSender struct {
	mu       sync.Mutex
	now      func() time.Time
	script   []error
	byChan   map[string]error // permanent failures per channel
	attempts []attempt
	renders  int
	seq      int
}

func (f *fakeSender) Render(r message.Response) []Part {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.renders++
	parts := []Part{fakePart{text: r.Title}}
	for i, t := range r.Thread {
		parts = append(parts, fakePart{text: t.Title, part: i + 1})
	}
	return parts
}

func (f *fakeSender) Post(_ context.Context, channel, threadTS string, p Part) (string, error) {
	fp := p.(fakePart)
	return f.call(attempt{key: strings.TrimPrefix(fp.text, "message "), part: fp.part, channel: channel, threadTS: threadTS})
}

func (f *fakeSender) Update(_ context.Context, channel, ts string, p Part) error {
	fp := p.(fakePart)
	_, err := f.call(attempt{key: strings.TrimPrefix(fp.text, "message "), part: fp.part, channel: channel, updateTS: ts})
	return err
}

func (f *fakeSender) Upload(_ context.Context, channel, threadTS string, u Upload) error {
	_, err := f.call(attempt{key: u.Filename, channel: channel, threadTS: threadTS, upload: &u})
	return err
}

func (f *fakeSender) Classify(err error) Class {
	if rl, ok := errors.AsType[rateLimited](err); ok {
		return Class{RateLimited: true, RetryAfter: rl.after}
	}
	return Class{Permanent: errors.Is(err, errNoChannel)}
}

func (f *fakeSender) call(a attempt) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a.at = f.now()
	switch {
	case f.byChan[a.channel] != nil:
		a.err = f.byChan[a.channel]
	case len(f.script) > 0:
		a.err, f.script = f.script[0], f.script[1:]
	case a.updateTS != "":
		a.ts = a.updateTS
	case a.upload == nil:
		f.seq++
		a.ts = fmt.Sprintf("1700000000.%06d", f.seq)
	}
	f.attempts = append(f.attempts, a)
	return a.ts, a.err
}

func (f *fakeSender) renderCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renders
}

// delivered returns the successful deliveries in order.
func (f *fakeSender) delivered() []attempt {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []attempt
	for _, a := range f.attempts {
		if a.err == nil {
			out = append(out, a)
		}
	}
	return out
}

func (f *fakeSender) all() []attempt {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.attempts)
}

func put(t *testing.T, s Enqueuer, m Message) {
	t.Helper()
	if m.Kind == "" {
		m.Kind = storage.KindAlert
	}
	if m.Payload.Title == "" {
		m.Payload.Title = "message " + m.Key
	}
	if _, err := Put(context.Background(), s, m); err != nil {
		t.Fatal(err)
	}
}

// drainUntil drains and advances the clock by step until every message is
// done or rounds run out.
func drainUntil(t *testing.T, w *Worker, s *storage.Store, c *clock, step time.Duration, rounds int) {
	t.Helper()
	ctx := context.Background()
	for range rounds {
		if _, err := w.Drain(ctx); err != nil {
			t.Fatalf("drain: %v", err)
		}
		pending, _, _, err := s.OutboxStats(ctx, c.Now())
		if err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		c.Advance(step)
	}
	t.Fatalf("messages still pending after %d rounds", rounds)
}

// TestDeliveredOnceThroughRateLimitsAndServerErrors: Slack answers 429
// twice, then 500 for a while; every message still arrives exactly once, in
// order, replies in their parent's thread and updates on their message, and
// nothing is tried while the rate limit pause lasts.
func TestDeliveredOnceThroughRateLimitsAndServerErrors(t *testing.T) {
	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	send := &fakeSender{now: c.Now, script: []error{
		rateLimited{after: 30 * time.Second}, rateLimited{after: 30 * time.Second},
		errServer, errServer, errServer, errServer, errServer,
	}}
	var logs bytes.Buffer
	w := &Worker{Store: s, Sender: send, Now: c.Now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), MinBackoff: time.Second, MaxBackoff: 20 * time.Second}

	msgs := []Message{
		{Key: "alert:1", Channel: "C1"},
		{Key: "alert:1:level:incident:note", Channel: "C1", ThreadKey: "alert:1"},
		{Key: "alert:1:level:incident", Kind: storage.KindUpdate, Channel: "C1", UpdateKey: "alert:1"},
		{Key: "report:C2:2026-03-02T09:00Z", Kind: storage.KindReport, Channel: "C2"},
		{Key: "alert:2", Channel: "C1"},
		{Key: "resolution:1", Kind: storage.KindResolution, Channel: "C1", ThreadKey: "alert:1"},
	}
	for _, m := range msgs {
		put(t, s, m)
	}
	// Enqueuing again (a restart re-running the same alerting) is a no-op.
	for _, m := range msgs {
		put(t, s, m)
	}
	drainUntil(t, w, s, c, time.Second, 600)

	got := send.delivered()
	count := map[string]int{}
	ts := map[string]string{}
	for _, a := range got {
		count[a.key]++
		ts[a.key] = a.ts
	}
	for _, m := range msgs {
		if count[m.Key] != 1 {
			t.Errorf("%s delivered %d times, want once", m.Key, count[m.Key])
		}
	}
	if len(got) != len(msgs) {
		t.Errorf("%d deliveries, want %d", len(got), len(msgs))
	}
	// Per channel, in the order enqueued.
	var c1 []string
	for _, a := range got {
		if a.channel == "C1" {
			c1 = append(c1, a.key)
		}
	}
	wantC1 := []string{"alert:1", "alert:1:level:incident:note", "alert:1:level:incident", "alert:2", "resolution:1"}
	if !slices.Equal(c1, wantC1) {
		t.Errorf("C1 order %v, want %v", c1, wantC1)
	}
	for _, a := range got {
		switch a.key {
		case "alert:1:level:incident:note", "resolution:1":
			if a.threadTS != ts["alert:1"] || a.threadTS == "" {
				t.Errorf("%s posted in thread %q, want the alert's ts %q", a.key, a.threadTS, ts["alert:1"])
			}
		case "alert:1:level:incident":
			if a.updateTS != ts["alert:1"] || a.updateTS == "" {
				t.Errorf("update targets %q, want the alert's ts %q", a.updateTS, ts["alert:1"])
			}
		}
	}
	// Nothing was tried while Slack asked to wait.
	all := send.all()
	for i, a := range all {
		if rl, ok := errors.AsType[rateLimited](a.err); ok && i+1 < len(all) {
			if next := all[i+1].at; next.Sub(a.at) < rl.after {
				t.Errorf("attempt %d came %s after a 429 asking for %s", i+1, next.Sub(a.at), rl.after)
			}
		}
	}
	if !strings.Contains(logs.String(), "rate limiting") || !strings.Contains(logs.String(), "will retry") {
		t.Errorf("log lacks the rate limit and retry lines:\n%s", logs.String())
	}
	// The stored row tells the delivered ts.
	m, ok, err := s.MessageByKey(context.Background(), "alert:1")
	if err != nil || !ok || m.State != storage.OutboxSent || m.TS != ts["alert:1"] {
		t.Errorf("stored alert:1 = %+v, %v, %v", m, ok, err)
	}
}

// TestBackoffHoldsItsChannel: a message backing off keeps the later
// messages of its channel waiting (order), not those of other channels.
func TestBackoffHoldsItsChannel(t *testing.T) {
	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	send := &fakeSender{now: c.Now, script: []error{errServer}}
	w := &Worker{Store: s, Sender: send, Now: c.Now, MinBackoff: time.Minute}
	put(t, s, Message{Key: "a", Channel: "C1"})
	put(t, s, Message{Key: "b", Channel: "C1"})
	put(t, s, Message{Key: "c", Channel: "C2"})

	n, err := w.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || keys(send.delivered())[0] != "c" {
		t.Fatalf("first pass delivered %v, want only c", keys(send.delivered()))
	}
	c.Advance(30 * time.Second)
	if n, _ := w.Drain(context.Background()); n != 0 {
		t.Fatalf("b went out while a was still backing off: %v", keys(send.delivered()))
	}
	c.Advance(31 * time.Second)
	if _, err := w.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := keys(send.delivered()); !slices.Equal(got, []string{"c", "a", "b"}) {
		t.Fatalf("delivered %v, want [c a b]", got)
	}
}

// TestBackoffAcrossPages: the worker reads pending messages a page at a
// time; a channel backing off with more pending messages than a page holds
// neither reorders its own messages nor starves the channels behind it,
// and a message due far in the future holds back its channel too.
func TestBackoffAcrossPages(t *testing.T) {
	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	send := &fakeSender{now: c.Now, script: []error{errServer}}
	w := &Worker{Store: s, Sender: send, Now: c.Now, MinBackoff: time.Minute, Batch: 2}
	for _, k := range []string{"a1", "a2", "a3", "a4"} {
		put(t, s, Message{Key: k, Channel: "C1"})
	}
	put(t, s, Message{Key: "b1", Channel: "C2"})
	put(t, s, Message{Key: "b2", Channel: "C2"})
	if _, _, err := s.Enqueue(context.Background(), storage.OutboxMessage{Key: "late", Kind: storage.KindReport, Channel: "C3",
		Payload: []byte(`{"title":"late"}`), NextAttempt: c.Now().AddDate(200, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	put(t, s, Message{Key: "after-late", Channel: "C3"})

	if n, err := w.Drain(context.Background()); err != nil || n != 2 {
		t.Fatalf("first drain delivered %d (%v): %v, want b1 and b2", n, err, keys(send.delivered()))
	}
	c.Advance(61 * time.Second)
	if _, err := w.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := keys(send.delivered()); !slices.Equal(got, []string{"b1", "b2", "a1", "a2", "a3", "a4"}) {
		t.Fatalf("delivered %v, want [b1 b2 a1 a2 a3 a4]", got)
	}
	pending, _, _, err := s.OutboxStats(context.Background(), c.Now())
	if err != nil || pending != 2 {
		t.Fatalf("pending %d (%v), want late and after-late", pending, err)
	}
}

// TestPermanentErrorMarksFailed: channel_not_found gives the message up with
// a log line naming the channel; it counts as failed in the stats and does
// not hold back other messages.
func TestPermanentErrorMarksFailed(t *testing.T) {
	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	send := &fakeSender{now: c.Now, byChan: map[string]error{"CGONE": errNoChannel}}
	var logs bytes.Buffer
	w := &Worker{Store: s, Sender: send, Now: c.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	put(t, s, Message{Key: "lost", Channel: "CGONE"})
	put(t, s, Message{Key: "lost-reply", Channel: "CGONE", ThreadKey: "lost"})
	put(t, s, Message{Key: "fine", Channel: "C1"})
	drainUntil(t, w, s, c, time.Second, 10)

	pending, _, failed, err := s.OutboxStats(context.Background(), c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if pending != 0 || failed != 2 {
		t.Errorf("pending %d failed %d, want 0 and 2", pending, failed)
	}
	if got := keys(send.delivered()); !slices.Equal(got, []string{"fine"}) {
		t.Errorf("delivered %v, want [fine]", got)
	}
	// The reply to a failed parent was tried on its own (no thread).
	for _, a := range send.all() {
		if a.key == "lost-reply" && a.threadTS != "" {
			t.Errorf("reply to a failed parent carried thread ts %q", a.threadTS)
		}
	}
	for _, want := range []string{"given up", "channel=CGONE", "channel_not_found", "invited"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	failedMsgs, err := s.FailedMessages(context.Background(), 10)
	if err != nil || len(failedMsgs) != 2 || !strings.Contains(failedMsgs[0].LastError, "channel_not_found") {
		t.Errorf("FailedMessages = %+v, %v", failedMsgs, err)
	}
}

// TestRestartDeliversOnce: the process dies with messages written but not
// delivered (and one half-way through its retries); a new worker on the
// reopened file delivers each of them once, and nothing already delivered
// again.
func TestRestartDeliversOnce(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "gmailtls.db")
	s1, err := storage.Open(context.Background(), path, storage.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	send := &fakeSender{now: c.Now}
	for i := range 6 {
		put(t, s1, Message{Key: fmt.Sprintf("alert:%d", i), Channel: "C1"})
		put(t, s1, Message{Key: fmt.Sprintf("resolution:%d", i), Channel: "C1", ThreadKey: fmt.Sprintf("alert:%d", i)})
	}
	// The first life delivers three messages, then Slack fails and the
	// process is killed.
	w1 := &Worker{Store: s1, Sender: &limitSender{fakeSender: send, limit: 3}, Now: c.Now}
	if _, err := w1.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(send.delivered()); n != 3 {
		t.Fatalf("first life delivered %d, want 3", n)
	}

	c.Advance(time.Hour)
	s2 := openStore(t, path, c.Now)
	w2 := &Worker{Store: s2, Sender: send, Now: c.Now}
	drainUntil(t, w2, s2, c, time.Second, 10)
	count := map[string]int{}
	for _, a := range send.delivered() {
		count[a.key]++
	}
	if len(count) != 12 {
		t.Errorf("%d distinct messages delivered, want 12", len(count))
	}
	for k, n := range count {
		if n != 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
}

// limitSender succeeds limit times, then fails with server errors.
type limitSender struct {
	*fakeSender
	limit int
	n     int
}

func (l *limitSender) Post(ctx context.Context, channel, threadTS string, p Part) (string, error) {
	if l.n >= l.limit {
		return "", errServer
	}
	l.n++
	return l.fakeSender.Post(ctx, channel, threadTS, p)
}

func keys(as []attempt) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.key
	}
	return out
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		attempts int
		want     time.Duration
	}{{0, 2 * time.Second}, {1, 4 * time.Second}, {3, 16 * time.Second}, {9, 10 * time.Minute}, {200, 10 * time.Minute}} {
		if got := Backoff(tc.attempts, 2*time.Second, 10*time.Minute); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.attempts, got, tc.want)
		}
	}
}

func TestPayloadDecodesAsResponse(t *testing.T) {
	p := Payload{Response: message.Response{Title: "relay-2: incident", Verdict: message.VerdictFail,
		Buttons: []message.Button{{Label: "Acknowledge", Action: message.ActionAcknowledge, Value: "7"}}}}
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodePayload(b)
	if err != nil || back.Title != p.Title || len(back.Buttons) != 1 || back.WithChart {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
	if _, err := DecodePayload([]byte("{")); err == nil {
		t.Fatal("broken JSON decoded")
	}
	// An alert as releases before storage's migration 0008 stored it,
	// with its alert model in "meta": it still decodes, and the model is
	// not carried over when the payload is written again.
	old := []byte(`{"Title":"relay-2 at investigate","Verdict":"fail","meta":{"IncidentID":7,"Level":"investigate"}}`)
	back, err = DecodePayload(old)
	if err != nil || back.Title != "relay-2 at investigate" || back.Verdict != message.VerdictFail {
		t.Fatalf("old alert payload = %+v, %v", back, err)
	}
	if b, err := back.Encode(); err != nil || bytes.Contains(b, []byte("meta")) || bytes.Contains(b, []byte("IncidentID")) {
		t.Errorf("old alert payload encodes again as %s, %v", b, err)
	}
}

// TestRunWakesAndRetries runs the worker loop in a synctest bubble: a
// message enqueued after Notify goes out at once, a failed one is retried
// after its backoff (fake time, no real waiting), and Run ends with ctx.
func TestRunWakesAndRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := storage.Open(ctx, filepath.Join(t.TempDir(), "gmailtls.db"), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		send := &fakeSender{now: time.Now, script: []error{errServer}}
		w := &Worker{Store: s, Sender: send, MinBackoff: 3 * time.Second, Poll: time.Minute}
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()

		start := time.Now()
		put(t, s, Message{Key: "alert:1", Channel: "C1"})
		w.Notify()
		waitFor(t, func() bool { return len(send.all()) == 1 })
		if d := time.Since(start); d != 0 {
			t.Errorf("first attempt after %s, want at once", d)
		}
		waitFor(t, func() bool { return len(send.delivered()) == 1 })
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("retry after %s, want the 3s backoff", d)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	})
}

// waitFor lets fake time pass in small steps until cond holds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 1000 {
		synctest.Wait()
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}
