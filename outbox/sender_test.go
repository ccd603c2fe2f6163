package outbox

import (
	"bytes"
	"context"
	"image/png"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/bot"
	"github.com/gmailtls/gmailtls/chart"
	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/storage"
)

type noHandler struct{}

func (noHandler) Acknowledge(context.Context, message.Request) (message.Response, bool) {
	return message.Response{}, false
}
func (noHandler) Run(context.Context, message.Request) message.Response { return message.Response{} }

// slackWorker wires a worker to the real bot talking to the Slack stand-in,
// as `gmailtls serve` does. The bot does not retry by itself: the outbox
// does.
func slackWorker(t *testing.T, s *storage.Store, c *clock, fake *slackfake.Server, logs *bytes.Buffer) *Worker {
	t.Helper()
	return workerWithClient(t, s, c, fake, fake.Client(), logs)
}

// workerWithClient is slackWorker with the bot's HTTP client given.
func workerWithClient(t *testing.T, s *storage.Store, c *clock, fake *slackfake.Server, hc *http.Client, logs *bytes.Buffer) *Worker {
	t.Helper()
	b, err := bot.New(bot.Config{BotToken: slackfake.DefaultBotToken, AppToken: slackfake.DefaultAppToken,
		APIURL: fake.APIURL(), APIRetries: -1, HTTPClient: hc}, noHandler{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logs, nil))
	return &Worker{
		Store:  s,
		Sender: &SlackSender{Slack: b, MissingScope: bot.IsMissingScope, Notes: s, Logger: log},
		Classify: func(err error) (time.Duration, bool, bool) {
			ra, limited := bot.IsRateLimited(err)
			return ra, limited, bot.IsPermanent(err)
		},
		Now:        c.Now,
		Logger:     log,
		MinBackoff: time.Second,
		MaxBackoff: 10 * time.Second,
	}
}

func heatmap() *chart.Heatmap {
	return &chart.Heatmap{Title: "gmailtls — last 3h", Relays: []string{"relay-1", "relay-2"},
		Start: time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC),
		Cells: [][]chart.HourFigures{
			{cell(12, 0), cell(12, 0), cell(12, 1)},
			{cell(12, 0), cell(12, 12), cell(0, 0)},
		}}
}

func cell(attempts, failures int) chart.HourFigures {
	return chart.HourFigures{Attempts: attempts, Failures: failures}
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

	put(t, s, Message{Key: "alert:1", Channel: "CALERT", Payload: Payload{Response: message.Response{Title: "relay-2: investigate"}}})
	put(t, s, Message{Key: "alert:1:level:incident:note", Channel: "CALERT", ThreadKey: "alert:1",
		Payload: Payload{Response: message.Response{Title: "level rose to incident"}}})
	put(t, s, Message{Key: "alert:1:level:incident", Kind: storage.KindUpdate, Channel: "CALERT", UpdateKey: "alert:1",
		Payload: Payload{Response: message.Response{Title: "relay-2: incident"}}})
	put(t, s, Message{Key: "resolution:1", Kind: storage.KindResolution, Channel: "CALERT", ThreadKey: "alert:1",
		Payload: Payload{Response: message.Response{Title: "resolved after 42m"}}})
	put(t, s, Message{Key: "report:CREP:2026-03-02T09:00Z", Kind: storage.KindReport, Channel: "CREP",
		Payload: Payload{Response: message.Response{Title: "Health summary"}}})
	put(t, s, Message{Key: "report:CREP:2026-03-02T09:00Z:chart", Kind: storage.KindReport, Channel: "CREP",
		ThreadKey: "report:CREP:2026-03-02T09:00Z", Payload: Payload{WithChart: true, Chart: heatmap()}})
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
	wantW, wantH := chart.Size(*heatmap())
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
		put(t, s, Message{Key: key, Kind: storage.KindReport, Channel: "CREP",
			Payload: Payload{Response: message.Response{Title: "Health summary " + day}}})
		put(t, s, Message{Key: key + ":chart", Kind: storage.KindReport, Channel: "CREP", ThreadKey: key,
			Payload: Payload{WithChart: true, Chart: heatmap()}})
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
