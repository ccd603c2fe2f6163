package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/chart"
	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/outbox"
	"github.com/gmailtls/gmailtls/storage"
	"github.com/slack-go/slack"
)

// The outbox worker delivering through Sender to the Slack stand-in, as
// `gmailtls serve` wires it.

type clock = manualclock.Clock

func newClock() *clock { return manualclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)) }

func openStore(t testing.TB, path string, now func() time.Time) *storage.Store {
	t.Helper()
	s, err := storage.Open(context.Background(), path, storage.Options{Now: now})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// put enqueues m; a message without a title gets "message <key>".
func put(t testing.TB, s outbox.Enqueuer, m outbox.Message) {
	t.Helper()
	if m.Kind == "" {
		m.Kind = storage.KindAlert
	}
	if m.Payload.Title == "" && m.Payload.Upload == nil {
		m.Payload.Title = "message " + m.Key
	}
	if _, err := outbox.Put(context.Background(), s, m); err != nil {
		t.Fatal(err)
	}
}

// drainUntil drains and advances the clock by step until every message is
// done or rounds run out.
func drainUntil(t *testing.T, w *outbox.Worker, s *storage.Store, c *clock, step time.Duration, rounds int) {
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

func newFake(t testing.TB) *slackfake.Server {
	t.Helper()
	fake := slackfake.New(slackfake.Options{})
	t.Cleanup(fake.Close)
	return fake
}

// slackWorker wires a worker to the real bot talking to the Slack stand-in,
// as `gmailtls serve` does. The bot does not retry by itself: the outbox
// does.
func slackWorker(t testing.TB, s *storage.Store, c *clock, fake *slackfake.Server, logs *bytes.Buffer) *outbox.Worker {
	t.Helper()
	return workerWithClient(t, s, c, fake, fake.Client(), logs)
}

// workerWithClient is slackWorker with the bot's HTTP client given.
func workerWithClient(t testing.TB, s *storage.Store, c *clock, fake *slackfake.Server, hc *http.Client, logs *bytes.Buffer) *outbox.Worker {
	t.Helper()
	b, err := New(Config{BotToken: slackfake.DefaultBotToken, AppToken: slackfake.DefaultAppToken,
		APIURL: fake.APIURL(), APIRetries: -1, HTTPClient: hc}, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logs, nil))
	return &outbox.Worker{
		Store:      s,
		Sender:     NewSender(b, nil),
		DrawChart:  chart.RenderJSON,
		Now:        c.Now,
		Logger:     log,
		MinBackoff: time.Second,
		MaxBackoff: 10 * time.Second,
	}
}

// heatmapFigures is a 2-relay, 3-hour heatmap as JSON: as the outbox
// stored a chart before it stored the picture.
const heatmapFigures = `{"Title":"gmailtls — last 3h","Relays":["relay-1","relay-2"],"Start":"2026-03-02T06:00:00Z","Cells":[[{"Attempts":12,"Failures":0},{"Attempts":12,"Failures":0},{"Attempts":12,"Failures":1}],[{"Attempts":12,"Failures":0},{"Attempts":12,"Failures":12},{"Attempts":0,"Failures":0}]]}`

// heatmapSize is the size chart.Render gives heatmapFigures.
func heatmapSize(t *testing.T) (w, h int) {
	t.Helper()
	var hm chart.Heatmap
	if err := json.Unmarshal([]byte(heatmapFigures), &hm); err != nil {
		t.Fatal(err)
	}
	return chart.Size(hm)
}

// chartPayload is a report's chart as schedule enqueues it: drawn.
func chartPayload(t *testing.T) outbox.Payload {
	t.Helper()
	img, title, err := chart.RenderJSON([]byte(heatmapFigures))
	if err != nil {
		t.Fatal(err)
	}
	return outbox.Payload{Upload: &outbox.Upload{Filename: "gmailtls-20260302-0900.png", Title: title, PNG: img}}
}

// TestSlackEndToEnd: alerts, a thread note, an update, a resolution and a
// report with its chart go through the real bot to the Slack stand-in
// while it answers 429 and then 500 for a while: each arrives once, replies
// in the alert's thread, the update on the alert, the chart decodes.
func TestSlackEndToEnd(t *testing.T) {
	fake := newFake(t)
	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	var logs bytes.Buffer
	w := slackWorker(t, s, c, fake, &logs)

	fake.FailNext("chat.postMessage", http.StatusTooManyRequests, 2*time.Second, "", 2)
	fake.FailNext("chat.postMessage", http.StatusInternalServerError, 0, "", 3)
	fake.FailNext("chat.update", http.StatusInternalServerError, 0, "", 1)

	put(t, s, outbox.Message{Key: "alert:1", Channel: "CALERT", Payload: outbox.Payload{Response: message.Response{Title: "relay-2: investigate"}}})
	put(t, s, outbox.Message{Key: "alert:1:level:incident:note", Channel: "CALERT", ThreadKey: "alert:1",
		Payload: outbox.Payload{Response: message.Response{Title: "level rose to incident"}}})
	put(t, s, outbox.Message{Key: "alert:1:level:incident", Kind: storage.KindUpdate, Channel: "CALERT", UpdateKey: "alert:1",
		Payload: outbox.Payload{Response: message.Response{Title: "relay-2: incident"}}})
	put(t, s, outbox.Message{Key: "resolution:1", Kind: storage.KindResolution, Channel: "CALERT", ThreadKey: "alert:1",
		Payload: outbox.Payload{Response: message.Response{Title: "resolved after 42m"}}})
	put(t, s, outbox.Message{Key: "report:CREP:2026-03-02T09:00Z", Kind: storage.KindReport, Channel: "CREP",
		Payload: outbox.Payload{Response: message.Response{Title: "Health summary"}}})
	put(t, s, outbox.Message{Key: "report:CREP:2026-03-02T09:00Z:chart", Kind: storage.KindReport, Channel: "CREP",
		ThreadKey: "report:CREP:2026-03-02T09:00Z", Payload: chartPayload(t)})
	drainUntil(t, w, s, c, time.Second, 300)

	msgs := fake.Messages()
	byText := map[string]slackfake.Message{}
	for _, m := range msgs {
		if _, dup := byText[m.Text]; dup {
			t.Errorf("%q posted twice", m.Text)
		}
		byText[m.Text] = m
	}
	find := func(title string) slackfake.Message {
		for text, m := range byText {
			if strings.Contains(text, title) {
				return m
			}
		}
		t.Fatalf("no message with %q in %+v", title, msgs)
		return slackfake.Message{}
	}
	alert := find("relay-2: investigate")
	if alert.Method != "chat.postMessage" || alert.TS == "" || alert.Channel != "CALERT" {
		t.Fatalf("alert = %+v", alert)
	}
	for _, title := range []string{"level rose to incident", "resolved after 42m"} {
		if m := find(title); m.ThreadTS != alert.TS {
			t.Errorf("%q in thread %q, want %q", title, m.ThreadTS, alert.TS)
		}
	}
	if m := find("relay-2: incident"); m.Method != "chat.update" || m.TS != alert.TS {
		t.Errorf("update = %+v, want chat.update of %s", m, alert.TS)
	}
	if len(msgs) != 5 {
		t.Errorf("%d messages, want 5: %+v", len(msgs), msgs)
	}
	uploads := fake.CallsTo(slackfake.MethodUpload)
	if len(uploads) != 1 {
		t.Fatalf("%d uploads, want 1", len(uploads))
	}
	img, err := png.Decode(bytes.NewReader(uploads[0].Body))
	if err != nil {
		t.Fatalf("uploaded chart does not decode: %v", err)
	}
	wantW, wantH := heatmapSize(t)
	if b := img.Bounds(); b.Dx() != wantW || b.Dy() != wantH {
		t.Errorf("chart is %dx%d, want %dx%d", b.Dx(), b.Dy(), wantW, wantH)
	}
	if !strings.Contains(logs.String(), "rate limiting") {
		t.Errorf("no rate limit in the log:\n%s", logs.String())
	}
}

// TestChartWithoutFilesWrite: without the files:write scope the report's
// text stands alone, and a note says why once per channel.
func TestChartWithoutFilesWrite(t *testing.T) {
	fake := newFake(t)
	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	var logs bytes.Buffer
	w := slackWorker(t, s, c, fake, &logs)
	fake.FailNext("files.getUploadURLExternal", 0, 0, "missing_scope", 10)

	for _, day := range []string{"2026-03-02", "2026-03-03"} {
		key := "report:CREP:" + day + "T09:00Z"
		put(t, s, outbox.Message{Key: key, Kind: storage.KindReport, Channel: "CREP",
			Payload: outbox.Payload{Response: message.Response{Title: "Health summary " + day}}})
		put(t, s, outbox.Message{Key: key + ":chart", Kind: storage.KindReport, Channel: "CREP", ThreadKey: key,
			Payload: chartPayload(t)})
		drainUntil(t, w, s, c, 10*time.Second, 20)
	}
	notes := 0
	var first slackfake.Message
	for _, m := range fake.Messages() {
		if strings.Contains(m.Text, "Health summary 2026-03-02") {
			first = m
		}
	}
	for _, m := range fake.Messages() {
		if strings.Contains(m.Text, "files:write") {
			notes++
			if m.ThreadTS != first.TS {
				t.Errorf("note in thread %q, want the first report's %q", m.ThreadTS, first.TS)
			}
		}
	}
	if notes != 1 {
		t.Errorf("%d notes about files:write, want 1: %+v", notes, fake.Messages())
	}
	if _, _, failed, _ := s.OutboxStats(context.Background(), c.Now()); failed != 0 {
		t.Errorf("%d messages failed; a missing scope must not fail the report", failed)
	}
	if !strings.Contains(logs.String(), "files:write") {
		t.Errorf("log does not say why the chart is missing:\n%s", logs.String())
	}
}

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

// hookedWorker is slackWorker with hookTransport between the bot and the
// stand-in.
func hookedWorker(t *testing.T, s *storage.Store, c *clock, fake *slackfake.Server, logs *bytes.Buffer, after func(int)) *outbox.Worker {
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
	parts := RenderMessages(report)
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
	put(t, s1, outbox.Message{Key: key, Kind: storage.KindReport, Channel: "CREP", Payload: outbox.Payload{Response: report}})
	put(t, s1, outbox.Message{Key: key + ":note", Kind: storage.KindReport, Channel: "CREP", ThreadKey: key,
		Payload: outbox.Payload{Response: message.Response{Title: "note after the report"}}})
	put(t, s1, outbox.Message{Key: "report:CREP:next", Kind: storage.KindReport, Channel: "CREP",
		Payload: outbox.Payload{Response: message.Response{Title: "the next report"}}})

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
	parts := RenderMessages(update)
	put(t, s, outbox.Message{Key: "alert:1", Channel: "CALERT", Payload: outbox.Payload{Response: message.Response{Title: "relay-2: investigate"}}})
	put(t, s, outbox.Message{Key: "alert:1:level:incident", Kind: storage.KindUpdate, Channel: "CALERT", UpdateKey: "alert:1",
		Payload: outbox.Payload{Response: update}})
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
	put(t, s, outbox.Message{Key: "alert:1", Channel: "CALERT"})
	put(t, s, outbox.Message{Key: "alert:2", Channel: "COTHER"})

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
	put(t, s, outbox.Message{Key: "alert:3", Channel: "CALERT"})
	if _, err := w.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := w.PausedUntil().Sub(c.Now()); got != time.Minute {
		t.Errorf("a new refusal paused delivery for %s, want 1m", got)
	}
	c.Advance(time.Minute)
	drainUntil(t, w, s, c, time.Second, 5)
	fake.FailNext("chat.postMessage", 0, 0, "channel_not_found", 1)
	put(t, s, outbox.Message{Key: "alert:4", Channel: "CGONE"})
	put(t, s, outbox.Message{Key: "alert:5", Channel: "CALERT"})
	drainUntil(t, w, s, c, time.Second, 5)
	failed, err := s.FailedMessages(context.Background(), 10)
	if err != nil || len(failed) != 1 || failed[0].Key != "alert:4" || !strings.Contains(failed[0].LastError, "channel_not_found") {
		t.Fatalf("failed messages %+v (%v), want alert:4 with channel_not_found", failed, err)
	}
	if w.PausedUntil().After(c.Now()) {
		t.Errorf("channel_not_found paused delivery until %s", w.PausedUntil())
	}
}

// countingAPI is the bot's Web API client with every call counted.
type countingAPI struct {
	webAPI
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingAPI) count(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[method]++
}

func (c *countingAPI) AuthTestContext(ctx context.Context) (*slack.AuthTestResponse, error) {
	c.count("auth.test")
	return c.webAPI.AuthTestContext(ctx)
}

func (c *countingAPI) PostMessageContext(ctx context.Context, channel string, opts ...slack.MsgOption) (string, string, error) {
	c.count("chat.postMessage")
	return c.webAPI.PostMessageContext(ctx, channel, opts...)
}

func (c *countingAPI) UpdateMessageContext(ctx context.Context, channel, ts string, opts ...slack.MsgOption) (string, string, string, error) {
	c.count("chat.update")
	return c.webAPI.UpdateMessageContext(ctx, channel, ts, opts...)
}

func (c *countingAPI) PostEphemeralContext(ctx context.Context, channel, user string, opts ...slack.MsgOption) (string, error) {
	c.count("chat.postEphemeral")
	return c.webAPI.PostEphemeralContext(ctx, channel, user, opts...)
}

func (c *countingAPI) UploadFileContext(ctx context.Context, p slack.UploadFileParameters) (*slack.FileSummary, error) {
	c.count("files.completeUploadExternal")
	return c.webAPI.UploadFileContext(ctx, p)
}

// TestOneClientServesAllDeliveries: the bot's replies (a long result with
// its thread, an ephemeral answer, a replaced message) and the outbox's
// deliveries (a long report, an update, a chart) all go through the one
// Web API client the bot was built with: every call Slack saw came through
// it, none through a client of its own.
func TestOneClientServesAllDeliveries(t *testing.T) {
	fake := newFake(t)
	b, _ := deliveryBot(t, fake, nil)
	api := &countingAPI{webAPI: b.api, calls: map[string]int{}}
	b.api = api
	ctx := context.Background()

	if err := b.deliver(ctx, origin{channel: "C1", user: "U1"}, fortyRelays()); err != nil {
		t.Fatal(err)
	}
	eph := simple("only you")
	eph.Ephemeral = true
	if err := b.deliver(ctx, origin{channel: "C1", user: "U1"}, eph); err != nil {
		t.Fatal(err)
	}
	rerun := simple("re-run")
	rerun.ReplaceOriginal = true
	if err := b.deliver(ctx, origin{channel: "C1", user: "U1", messageTS: "1700000000.000042"}, rerun); err != nil {
		t.Fatal(err)
	}

	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	w := &outbox.Worker{Store: s, Sender: NewSender(b, nil), Now: c.Now}
	put(t, s, outbox.Message{Key: "report", Kind: storage.KindReport, Channel: "CREP", Payload: outbox.Payload{Response: longReport("Health summary")}})
	put(t, s, outbox.Message{Key: "report:chart", Kind: storage.KindReport, Channel: "CREP", ThreadKey: "report", Payload: chartPayload(t)})
	put(t, s, outbox.Message{Key: "alert", Channel: "CALERT"})
	put(t, s, outbox.Message{Key: "alert:ack", Kind: storage.KindUpdate, Channel: "CALERT", UpdateKey: "alert"})
	drainUntil(t, w, s, c, time.Second, 5)

	for _, method := range []string{"chat.postMessage", "chat.postEphemeral", "chat.update", "files.completeUploadExternal"} {
		seen, through := len(fake.CallsTo(method)), api.calls[method]
		if seen == 0 {
			t.Errorf("no %s call: the test proves nothing for it", method)
		}
		if seen != through {
			t.Errorf("Slack saw %d %s calls, %d of them through the bot's client", seen, method, through)
		}
	}
	if n := len(fake.CallsTo("chat.postMessage")); n < 1+len(RenderMessages(fortyRelays()).Thread)+1+len(RenderMessages(longReport("Health summary")).Thread) {
		t.Errorf("%d posts: the threads did not all go out", n)
	}
}

// TestOldChartPayloadReachesSlack: a report's chart enqueued by the
// previous release (the heatmap's figures, not its picture) and still
// pending after the upgrade is drawn and uploaded to the report's thread
// under its stored file name.
func TestOldChartPayloadReachesSlack(t *testing.T) {
	fake := newFake(t)
	c := newClock()
	s := openStore(t, filepath.Join(t.TempDir(), "gmailtls.db"), c.Now)
	var logs bytes.Buffer
	w := slackWorker(t, s, c, fake, &logs)
	old := `{"Title":"","Verdict":"","Summary":"","Sections":null,"Buttons":null,"Context":"","Ephemeral":false,"ReplaceOriginal":false,"Thread":null,"with_chart":true,"chart":` +
		heatmapFigures + `,"filename":"gmailtls-20260302-0900.png"}`
	put(t, s, outbox.Message{Key: "report", Kind: storage.KindReport, Channel: "CREP", Payload: outbox.Payload{Response: message.Response{Title: "Health summary"}}})
	if _, _, err := s.Enqueue(context.Background(), storage.OutboxMessage{Key: "report:chart", Kind: storage.KindReport,
		Channel: "CREP", ThreadKey: "report", Payload: []byte(old)}); err != nil {
		t.Fatal(err)
	}
	drainUntil(t, w, s, c, time.Second, 5)

	uploads := fake.CallsTo(slackfake.MethodUpload)
	if len(uploads) != 1 {
		t.Fatalf("%d uploads, want 1:\n%s", len(uploads), logs.String())
	}
	img, err := png.Decode(bytes.NewReader(uploads[0].Body))
	if err != nil {
		t.Fatalf("uploaded chart does not decode: %v", err)
	}
	if wantW, wantH := heatmapSize(t); img.Bounds().Dx() != wantW || img.Bounds().Dy() != wantH {
		t.Errorf("chart is %v, want %dx%d", img.Bounds().Size(), wantW, wantH)
	}
	report := fake.MessagesBy("chat.postMessage")[0]
	get, done := fake.CallsTo("files.getUploadURLExternal"), fake.CallsTo("files.completeUploadExternal")
	if len(get) != 1 || get[0].Form.Get("filename") != "gmailtls-20260302-0900.png" {
		t.Errorf("uploaded as %v", get)
	}
	if len(done) != 1 || done[0].Form.Get("thread_ts") != report.TS || !strings.Contains(done[0].Form.Get("files"), "gmailtls — last 3h") {
		t.Errorf("completed as %v, want in the report's thread %s with the heatmap's title", done, report.TS)
	}
}
