package bot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/probe"
)

// rateLimitedSlack sits in front of a slackfake.Server and limits
// chat.postMessage as Slack does: per channel, a burst of burst posts, then
// one every interval. A post over the limit is answered as Slack answers
// it (429, Retry-After: 1, {"ok":false,"error":"ratelimited"}) and never
// reaches the stand-in; everything else is passed on unchanged.
type rateLimitedSlack struct {
	fake     *slackfake.Server
	srv      *httptest.Server
	burst    float64
	interval time.Duration // 0: no limit
	// afterPost, when set, is called after the n-th post the stand-in
	// accepted (n from 1).
	afterPost func(n int)

	mu      sync.Mutex
	buckets map[string]*tokenBucket
	limited int
	posted  int
}

type tokenBucket struct {
	tokens float64
	at     time.Time
}

func newRateLimitedSlack(t *testing.T, fake *slackfake.Server, burst int, interval time.Duration) *rateLimitedSlack {
	t.Helper()
	target, err := url.Parse(fake.URL())
	if err != nil {
		t.Fatal(err)
	}
	rl := &rateLimitedSlack{fake: fake, burst: float64(burst), interval: interval, buckets: map[string]*tokenBucket{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	rl.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/chat.postMessage" {
			proxy.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		if !rl.take(form.Get("channel")) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"ok":false,"error":"ratelimited"}`)
			return
		}
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		if rec.Code == http.StatusOK && bytes.Contains(rec.Body.Bytes(), []byte(`"ok":true`)) {
			rl.mu.Lock()
			rl.posted++
			n, hook := rl.posted, rl.afterPost
			rl.mu.Unlock()
			if hook != nil {
				hook(n)
			}
		}
	}))
	t.Cleanup(rl.srv.Close)
	return rl
}

// APIURL is the Web API base to give the bot.
func (rl *rateLimitedSlack) APIURL() string { return rl.srv.URL + "/api/" }

// take spends a token of channel's bucket, if there is one.
func (rl *rateLimitedSlack) take(channel string) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.interval <= 0 {
		return true
	}
	now := time.Now()
	b := rl.buckets[channel]
	if b == nil {
		b = &tokenBucket{tokens: rl.burst, at: now}
		rl.buckets[channel] = b
	}
	b.tokens = min(rl.burst, b.tokens+float64(now.Sub(b.at))/float64(rl.interval))
	b.at = now
	if b.tokens < 1 {
		rl.limited++
		return false
	}
	b.tokens--
	return true
}

func (rl *rateLimitedSlack) limitedCount() int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.limited
}

// checkAll40 is the real `check all` answer for 40 relays, every one with a
// failing MX host, from the commands package: a summary message and one
// thread message per relay that did not pass.
func checkAll40() message.Response {
	at := time.Date(2026, 3, 2, 12, 3, 41, 0, time.UTC)
	h := commands.New(commands.Deps{Now: func() time.Time { return at }, Location: time.UTC})
	hosts := []string{"gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com", "alt2.gmail-smtp-in.l.google.com", "alt3.gmail-smtp-in.l.google.com", "alt4.gmail-smtp-in.l.google.com"}
	var all []monitor.CheckResult
	for i := 1; i <= 40; i++ {
		c := monitor.CheckResult{Relay: fmt.Sprintf("relay-%d", i), RunID: int64(i)}
		c.Report.StartedAt = at
		for j, mx := range hosts {
			r := probe.Result{Relay: c.Relay, MX: mx, Preference: uint16(5 + 5*j), IP: fmt.Sprintf("142.250.%d.%d", 100+j, i), Port: 25, StartedAt: at, OK: true,
				TLS: &probe.TLSInfo{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", Verified: true}}
			if j == 1 {
				r.OK, r.Stage, r.Failure, r.TLS = false, probe.StageHandshake, probe.FailTLSReset, nil
			}
			c.Report.Results = append(c.Report.Results, r)
			c.ResultIDs = append(c.ResultIDs, int64(100*i+j))
		}
		all = append(all, c)
	}
	return h.CheckAllResponse(all, "")
}

// threadBot is a Bot (not running) whose Handler answers every command
// with resp, its Web API pointed at apiURL, its log captured.
func threadBot(t *testing.T, apiURL string, resp message.Response) (*Bot, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	b, err := New(Config{
		BotToken: slackfake.DefaultBotToken,
		AppToken: slackfake.DefaultAppToken,
		APIURL:   apiURL,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, &fakeHandler{runFn: func(context.Context, message.Request) message.Response { return resp }})
	if err != nil {
		t.Fatal(err)
	}
	return b, logs
}

// assertThread checks that channel got want's main message, then every
// reply of its thread under it, in order, each exactly once.
func assertThread(t *testing.T, fake *slackfake.Server, channel string, want Rendered) {
	t.Helper()
	var posts []slackfake.Message
	for _, m := range fake.MessagesBy("chat.postMessage") {
		if m.Channel == channel {
			posts = append(posts, m)
		}
	}
	if len(posts) == 0 {
		t.Fatal("nothing was posted")
	}
	if posts[0].ThreadTS != "" || posts[0].Text != want.Main.Text {
		t.Errorf("first post is not the summary: %+v", posts[0])
	}
	got := posts[1:]
	if len(got) != len(want.Thread) {
		t.Errorf("%d of %d thread replies were posted", len(got), len(want.Thread))
	}
	for i := 0; i < len(got) && i < len(want.Thread); i++ {
		if got[i].ThreadTS != posts[0].TS {
			t.Errorf("reply %d is not in the summary's thread (%s): thread_ts %q", i+1, posts[0].TS, got[i].ThreadTS)
		}
		if got[i].Text != want.Thread[i].Text {
			t.Errorf("reply %d is %q, want %q (replies out of order or repeated)", i+1, got[i].Text, want.Thread[i].Text)
		}
	}
}

// TestCheckAllThreadUnderSlackRateLimit is the audit's case: `check all`
// on 40 relays against a Slack that takes 1 post a second per channel
// after a burst of 5 and answers 429 with Retry-After: 1. Every thread
// reply arrives, in order, once. (It takes about 40 s: that is Slack's
// pace.)
func TestCheckAllThreadUnderSlackRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 40 s at Slack's pace of 1 message a second")
	}
	t.Parallel()
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	slack := newRateLimitedSlack(t, fake, 5, time.Second)
	resp := checkAll40()
	want := RenderMessages(resp)
	if len(want.Thread) < 40 {
		t.Fatalf("check all on 40 relays renders %d thread replies, want one per relay", len(want.Thread))
	}
	b, logs := threadBot(t, slack.APIURL(), resp)

	b.runJob(context.Background(), job{
		org: origin{channel: "C0ALL", user: "U1"},
		req: message.Request{Text: "check all", ChannelID: "C0ALL", UserID: "U1"},
		run: true,
	})
	assertThread(t, fake, "C0ALL", want)
	if slack.limitedCount() == 0 {
		t.Error("Slack never rate-limited the thread: the test proves nothing")
	}
	if strings.Contains(logs.String(), "could not deliver") {
		t.Errorf("delivery reported a failure:\n%s", logs)
	}
}

// TestThreadSurvivesConsecutive429s: four 429s in a row in the middle of
// a thread (more than slack-go's own retries) delay the thread; they do not
// drop the rest of it, and each Retry-After is honoured.
func TestThreadSurvivesConsecutive429s(t *testing.T) {
	t.Parallel()
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	slack := newRateLimitedSlack(t, fake, 0, 0)
	slack.afterPost = func(n int) {
		if n == 11 { // the summary and 10 replies are out
			fake.FailNext("chat.postMessage", http.StatusTooManyRequests, time.Second, "", 4)
		}
	}
	resp := checkAll40()
	b, logs := threadBot(t, slack.APIURL(), resp)
	b.runJob(context.Background(), job{org: origin{channel: "C1", user: "U1"}, req: message.Request{Text: "check all"}, run: true})
	assertThread(t, fake, "C1", RenderMessages(resp))
	if strings.Contains(logs.String(), "could not deliver") {
		t.Errorf("delivery reported a failure:\n%s", logs)
	}
	calls := fake.CallsTo("chat.postMessage")
	n429 := 0
	for i, c := range calls {
		if c.Status != http.StatusTooManyRequests {
			continue
		}
		n429++
		if i+1 < len(calls) && calls[i+1].At.Sub(c.At) < time.Second {
			t.Errorf("call %d came %v after a 429 with Retry-After: 1", i+2, calls[i+1].At.Sub(c.At))
		}
	}
	if n429 != 4 {
		t.Errorf("%d 429s answered, want 4", n429)
	}
}

// TestThreadStopsOnPermanentError: a reply Slack refuses for good (the
// channel was archived mid-thread) is not retried, and the error says how
// much of the thread went out.
func TestThreadStopsOnPermanentError(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, _ := threadBot(t, fake.APIURL(), simple("x"))
	ms := RenderMessages(checkAll40()).Thread[:5]
	fake.FailNext("chat.postMessage", 0, 0, "is_archived", 1)
	err := b.postReplies(context.Background(), "C1", "1700000000.000001", ms)
	if !IsPermanent(err) || !strings.Contains(err.Error(), "0 of 5 thread replies") {
		t.Errorf("postReplies: %v", err)
	}
	if n := len(fake.CallsTo("chat.postMessage")); n != 1 {
		t.Errorf("%d calls after a permanent error, want 1", n)
	}
}

// TestThreadDeadlineGrowsWithReplies: a long thread gets more time than a
// short one, and a Retry-After beyond the deadline ends the wait at once
// with an error that says so.
func TestThreadDeadlineGrowsWithReplies(t *testing.T) {
	if deliveryBudget(40) < 40*time.Second+deliveryTimeout || deliveryBudget(0) != deliveryTimeout {
		t.Errorf("deliveryBudget(40) = %v, deliveryBudget(0) = %v", deliveryBudget(40), deliveryBudget(0))
	}
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, _ := threadBot(t, fake.APIURL(), simple("x"))
	fake.FailNext("chat.postMessage", http.StatusTooManyRequests, time.Hour, "", 1)
	start := time.Now()
	err := b.postReplies(context.Background(), "C1", "1700000000.000001", []Message{{Text: "a"}})
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("postReplies with Retry-After: 3600: %v", err)
	}
	if _, ok := IsRateLimited(err); !ok {
		t.Errorf("the error hides the rate limit: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("waited %v for a Retry-After that could not fit", d)
	}
}

// TestDeliveryContextOutlivesShutdownByGrace: a delivery goes on when
// shutdown begins and is cut short grace later; a delivery that ends
// first leaves nothing running.
func TestDeliveryContextOutlivesShutdownByGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, shutdown := context.WithCancel(context.Background())
		dctx, done := deliveryContext(ctx, shutdownGrace)
		defer done()
		shutdown()
		time.Sleep(shutdownGrace - time.Millisecond)
		if dctx.Err() != nil {
			t.Fatalf("delivery cancelled %v after shutdown began, before the grace ended", shutdownGrace-time.Millisecond)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if !errors.Is(context.Cause(dctx), errShutdown) {
			t.Fatalf("after the grace: %v (cause %v)", dctx.Err(), context.Cause(dctx))
		}
	})
	synctest.Test(t, func(t *testing.T) {
		ctx, shutdown := context.WithCancel(context.Background())
		defer shutdown()
		dctx, done := deliveryContext(ctx, shutdownGrace)
		done()
		if dctx.Err() == nil {
			t.Fatal("done did not end the delivery context")
		}
		shutdown()
		synctest.Wait() // no timer left behind
	})
}
