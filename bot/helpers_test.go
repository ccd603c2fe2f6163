package bot

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/message"
)

// fakeHandler is a hand-written Handler: it records every request and
// answers like the real commands would, in shape.
type fakeHandler struct {
	mu    sync.Mutex
	acks  []message.Request
	runs  []message.Request
	ackFn func(message.Request) (message.Response, bool)
	runFn func(context.Context, message.Request) message.Response
}

func (h *fakeHandler) Acknowledge(ctx context.Context, req message.Request) (message.Response, bool) {
	h.mu.Lock()
	h.acks = append(h.acks, req)
	fn := h.ackFn
	h.mu.Unlock()
	if fn != nil {
		return fn(req)
	}
	return defaultAck(req)
}

func (h *fakeHandler) Run(ctx context.Context, req message.Request) message.Response {
	h.mu.Lock()
	h.runs = append(h.runs, req)
	fn := h.runFn
	h.mu.Unlock()
	if fn != nil {
		return fn(ctx, req)
	}
	return defaultRun(req)
}

func (h *fakeHandler) calls() (acks, runs []message.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]message.Request(nil), h.acks...), append([]message.Request(nil), h.runs...)
}

func defaultAck(req message.Request) (message.Response, bool) {
	switch {
	case req.Source == message.SourceButton && req.Action == message.ActionTranscript:
		return transcriptResponse(), false
	case req.Source == message.SourceButton:
		return message.Response{}, true
	case strings.HasPrefix(req.Text, "check "):
		relay := strings.TrimPrefix(req.Text, "check ")
		return message.Response{Summary: "probing " + relay + " → 5 Gmail MX hosts…"}, true
	case req.Text == "help":
		return helpResponse(), false
	}
	return message.Response{Summary: "unknown command; try /gmailtls help", Ephemeral: true}, false
}

func defaultRun(req message.Request) message.Response {
	r := checkResult()
	if req.Source == message.SourceButton && req.Action == message.ActionRerun {
		r.Title = "relay-2: STARTTLS to Gmail passed"
		r.Verdict = message.VerdictOK
		r.Context = "failed 12:03 → passed 12:05"
		r.ReplaceOriginal = true
	}
	return r
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testBot is a Bot running against a stand-in.
type testBot struct {
	*Bot
	fake   *slackfake.Server
	h      *fakeHandler
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// startBot starts a Bot against fake (socket mode unless mut says
// otherwise) and stops it when the test ends.
func startBot(t testing.TB, fake *slackfake.Server, h *fakeHandler, mut func(*Config)) *testBot {
	t.Helper()
	tb := startBotWith(t, fake, h, mut)
	tb.h = h
	return tb
}

// startBotWith is startBot with any Handler (the real commands.Handler,
// say); the testBot's h is then nil.
func startBotWith(t testing.TB, fake *slackfake.Server, h Handler, mut func(*Config)) *testBot {
	t.Helper()
	logs := &syncBuffer{}
	cfg := Config{
		Mode:     ModeSocket,
		BotToken: slackfake.DefaultBotToken,
		AppToken: slackfake.DefaultAppToken,
		APIURL:   fake.APIURL(),
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		// The stand-in's response_url sink.
		ResponseURLHosts: []string{fakeHost(fake)},
	}
	if mut != nil {
		mut(&cfg)
	}
	b, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb := &testBot{Bot: b, fake: fake, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { tb.done <- b.Run(ctx) }()
	t.Cleanup(func() { tb.stop(t) })
	return tb
}

// fakeHost is the host:port of fake's response_urls.
func fakeHost(fake *slackfake.Server) string {
	return strings.TrimPrefix(fake.URL(), "http://")
}

// stop cancels the bot and waits for Run to return.
func (tb *testBot) stop(t testing.TB) error {
	t.Helper()
	tb.cancel()
	select {
	case err, ok := <-tb.done:
		if ok {
			close(tb.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the bot did not stop within 30 s of cancel")
		return nil
	}
}

// waitReady waits until the bot is connected or listening.
func (tb *testBot) waitReady(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !tb.Ready() {
		select {
		case err := <-tb.done:
			t.Fatalf("the bot stopped: %v", err)
		case <-ctx.Done():
			t.Fatal("the bot did not become ready within 10 s")
		case <-tick.C:
		}
	}
}

// waitFor waits up to 10 s for pred over the stand-in's records.
func waitFor(t testing.TB, fake *slackfake.Server, what string, pred func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fake.WaitFor(ctx, pred); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// messagesTo returns the delivered messages of one response_url id.
func messagesTo(fake *slackfake.Server, responseID string) []slackfake.Message {
	var out []slackfake.Message
	for _, m := range fake.Messages() {
		if m.Method == slackfake.MethodResponseURL && m.ResponseID == responseID {
			out = append(out, m)
		}
	}
	return out
}

// hasAction reports whether blocks carry a button with action_id id.
func hasAction(blocks []map[string]any, id string) bool {
	for _, b := range blocks {
		if b["type"] != "actions" {
			continue
		}
		elems, _ := b["elements"].([]any)
		for _, e := range elems {
			if el, ok := e.(map[string]any); ok && el["action_id"] == id {
				return true
			}
		}
	}
	return false
}

// botGoroutines lists goroutines running bot or slack-go code.
func botGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "testing.tRunner") || strings.Contains(g, "botGoroutines") {
			continue
		}
		if strings.Contains(g, "github.com/slack-go/slack") || strings.Contains(g, "gmailtls/gmailtls/bot.") {
			out = append(out, g)
		}
	}
	return out
}

// The real command handler fits the seam.
var _ Handler = (*commands.Handler)(nil)
