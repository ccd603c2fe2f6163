package bot

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/outbox"
)

// deliveryBot is a Bot that is not running: delivery needs only the Web
// API client and the response_url book-keeping.
func deliveryBot(t *testing.T, fake *slackfake.Server, mut func(*Config)) (*Bot, *manualclock.Clock) {
	t.Helper()
	clock := manualclock.New(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC))
	cfg := Config{
		BotToken: slackfake.DefaultBotToken,
		AppToken: slackfake.DefaultAppToken,
		APIURL:   fake.APIURL(),
		Now:      clock.Now,
		// The stand-in's response_url sink.
		ResponseURLHosts: []string{fakeHost(fake)},
	}
	if mut != nil {
		mut(&cfg)
	}
	b, err := New(cfg, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	return b, clock
}

func simple(text string) message.Response {
	return message.Response{Title: text, Verdict: message.VerdictOK}
}

func TestResponseURLUsedAtMostFiveTimes(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, clock := deliveryBot(t, fake, nil)
	ctx := context.Background()
	org := origin{channel: "C1", user: "U1", responseURL: fake.ResponseURL("five")}
	b.urls.register(org.responseURL, clock.Now())
	for i := range 6 {
		if err := b.deliver(ctx, org, simple("result "+string(rune('1'+i)))); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	if n := len(fake.CallsTo(slackfake.MethodResponseURL)); n != 5 {
		t.Errorf("response_url used %d times, want 5", n)
	}
	posts := fake.MessagesBy("chat.postMessage")
	if len(posts) != 1 || posts[0].Channel != "C1" || !strings.Contains(posts[0].Text, "result 6") {
		t.Errorf("6th response: %+v", posts)
	}
}

func TestResponseURLExpiresAfter30Minutes(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, clock := deliveryBot(t, fake, nil)
	ctx := context.Background()
	org := origin{channel: "C1", user: "U1", responseURL: fake.ResponseURL("old")}
	b.urls.register(org.responseURL, clock.Now())

	clock.Advance(29 * time.Minute)
	if err := b.deliver(ctx, org, simple("in time")); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if err := b.deliver(ctx, org, simple("too late")); err != nil {
		t.Fatal(err)
	}
	// Ephemeral answers fall back to chat.postEphemeral.
	eph := simple("private")
	eph.Ephemeral = true
	if err := b.deliver(ctx, org, eph); err != nil {
		t.Fatal(err)
	}
	if ms := messagesTo(fake, "old"); len(ms) != 1 || !strings.Contains(ms[0].Text, "in time") {
		t.Errorf("response_url messages %+v", ms)
	}
	if ms := fake.MessagesBy("chat.postMessage"); len(ms) != 1 || !strings.Contains(ms[0].Text, "too late") {
		t.Errorf("chat.postMessage %+v", ms)
	}
	if ms := fake.MessagesBy("chat.postEphemeral"); len(ms) != 1 || ms[0].User != "U1" || ms[0].Channel != "C1" {
		t.Errorf("chat.postEphemeral %+v", ms)
	}
}

func TestResponseURLHonoursRetryAfter(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, clock := deliveryBot(t, fake, nil)
	org := origin{channel: "C1", responseURL: fake.ResponseURL("rl")}
	b.urls.register(org.responseURL, clock.Now())
	fake.FailNext(slackfake.MethodResponseURL, http.StatusTooManyRequests, time.Second, "", 1)
	if err := b.deliver(context.Background(), org, simple("after 429")); err != nil {
		t.Fatal(err)
	}
	calls := fake.CallsTo(slackfake.MethodResponseURL)
	if len(calls) != 2 || calls[0].Status != http.StatusTooManyRequests || calls[1].Status != http.StatusOK {
		t.Fatalf("calls %+v", calls)
	}
	if gap := calls[1].At.Sub(calls[0].At); gap < time.Second {
		t.Errorf("retried after %v; Retry-After said 1s", gap)
	}
	if len(fake.MessagesBy("chat.postMessage")) != 0 {
		t.Errorf("fell back although the retry succeeded")
	}
}

func TestResponseURLRetries5xx(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, clock := deliveryBot(t, fake, nil)
	org := origin{channel: "C1", responseURL: fake.ResponseURL("5xx")}
	b.urls.register(org.responseURL, clock.Now())
	fake.FailNext(slackfake.MethodResponseURL, http.StatusBadGateway, 0, "", 2)
	if err := b.deliver(context.Background(), org, simple("after 502")); err != nil {
		t.Fatal(err)
	}
	calls := fake.CallsTo(slackfake.MethodResponseURL)
	if len(calls) != 3 || calls[2].Status != http.StatusOK {
		t.Fatalf("calls %+v", calls)
	}
	if g1, g2 := calls[1].At.Sub(calls[0].At), calls[2].At.Sub(calls[1].At); g1 < 200*time.Millisecond || g2 < g1 {
		t.Errorf("no backoff between retries: %v then %v", g1, g2)
	}

	// Persistent 5xx: bounded retries, then chat.postMessage.
	fake.FailNext(slackfake.MethodResponseURL, http.StatusInternalServerError, 0, "", 10)
	if err := b.deliver(context.Background(), org, simple("fallback")); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.CallsTo(slackfake.MethodResponseURL)); n != 3+1+responseURLRetries {
		t.Errorf("%d response_url calls", n)
	}
	if ms := fake.MessagesBy("chat.postMessage"); len(ms) != 1 || !strings.Contains(ms[0].Text, "fallback") {
		t.Errorf("fallback %+v", ms)
	}
}

func TestWebAPIRateLimit(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	ctx := context.Background()

	// With retries (the default), a 429 is waited out.
	b, _ := deliveryBot(t, fake, nil)
	s := NewSender(b, nil)
	fake.FailNext("chat.postMessage", http.StatusTooManyRequests, time.Second, "", 1)
	if _, err := s.Post(ctx, "C1", "", s.Render(simple("alert"))[0]); err != nil {
		t.Fatal(err)
	}
	calls := fake.CallsTo("chat.postMessage")
	if len(calls) != 2 || calls[1].At.Sub(calls[0].At) < time.Second {
		t.Errorf("429 not waited out: %+v", calls)
	}

	// Without retries, the caller (the outbox) gets a classifiable error.
	b, _ = deliveryBot(t, fake, func(c *Config) { c.APIRetries = -1 })
	s = NewSender(b, nil)
	fake.FailNext("chat.postMessage", http.StatusTooManyRequests, 7*time.Second, "", 1)
	_, err := s.Post(ctx, "C1", "", s.Render(simple("alert"))[0])
	ra, ok := IsRateLimited(err)
	if !ok || ra != 7*time.Second || IsPermanent(err) {
		t.Errorf("IsRateLimited(%v) = %v, %v", err, ra, ok)
	}
	if c := s.Classify(err); !c.RateLimited || c.RetryAfter != 7*time.Second || c.Permanent || c.Suspended {
		t.Errorf("Classify(%v) = %+v", err, c)
	}
	fake.FailNext("chat.update", http.StatusServiceUnavailable, 0, "", 1)
	err = s.Update(ctx, "C1", "1.2", s.Render(simple("x"))[0])
	if _, ok := IsRateLimited(err); ok || IsPermanent(err) || err == nil {
		t.Errorf("503: %v", err)
	}
	if c := s.Classify(err); c != (outbox.Class{}) {
		t.Errorf("Classify(503) = %+v, want transient", c)
	}
}

func TestPostErrorsAreClassified(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, _ := deliveryBot(t, fake, nil)
	s := NewSender(b, nil)
	ctx := context.Background()
	for _, code := range []string{"channel_not_found", "not_in_channel", "invalid_auth", "is_archived"} {
		fake.FailNext("chat.postMessage", 0, 0, code, 1)
		_, err := s.Post(ctx, "C404", "", s.Render(simple("x"))[0])
		if !IsPermanent(err) {
			t.Errorf("%s: not permanent: %v", code, err)
		}
		if !strings.Contains(err.Error(), code) || !strings.Contains(err.Error(), "C404") {
			t.Errorf("%s: error does not say what failed: %v", code, err)
		}
	}
	fake.FailNext("chat.postMessage", 0, 0, "not_in_channel", 1)
	_, err := s.Post(ctx, "C404", "", s.Render(simple("x"))[0])
	if !strings.Contains(err.Error(), "/invite @gmailtls") {
		t.Errorf("no hint: %v", err)
	}
	if IsPermanent(nil) || IsPermanent(errors.New("dial tcp: connection refused")) {
		t.Errorf("transient errors called permanent")
	}
}

// TestPartsWithThread: a Response renders to its main message and its
// thread replies, the Response's own Thread last; posted part by part
// they go out in order, the replies in the main message's thread; an
// update replaces the main message only; a part the Sender did not render
// is refused.
func TestPartsWithThread(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, _ := deliveryBot(t, fake, nil)
	s := NewSender(b, nil)
	ctx := context.Background()

	r := fortyRelays()
	r.Thread = []message.Response{{Summary: "escalation evidence", Sections: []message.Section{{Lines: []string{"r:1 r:2"}}}}}
	want := RenderMessages(r)
	parts := s.Render(r)
	if len(parts) != 1+len(want.Thread) {
		t.Fatalf("%d parts, want %d", len(parts), 1+len(want.Thread))
	}
	ts, err := s.Post(ctx, "C1", "", parts[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts[1:] {
		if _, err := s.Post(ctx, "C1", ts, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Post(ctx, "C1", ts, "not a rendered part"); err == nil {
		t.Error("a part the Sender did not render was posted")
	}
	posts := fake.MessagesBy("chat.postMessage")
	if len(posts) != 1+len(want.Thread) || posts[0].TS != ts || posts[0].ThreadTS != "" {
		t.Fatalf("%d posts, main %+v", len(posts), posts[0])
	}
	for i, p := range posts[1:] {
		if p.ThreadTS != ts {
			t.Errorf("reply not in the thread of %s: %+v", ts, p)
		}
		if p.Text != want.Thread[i].Text {
			t.Errorf("reply %d is %q, want %q", i+1, p.Text, want.Thread[i].Text)
		}
	}
	if !strings.Contains(posts[len(posts)-1].Text, "escalation evidence") {
		t.Errorf("the Response's own thread comes last: %q", posts[len(posts)-1].Text)
	}

	// A reply into an existing thread stays there.
	if _, err := s.Post(ctx, "C1", "1700000000.000001", s.Render(simple("recovered"))[0]); err != nil {
		t.Fatal(err)
	}
	posts = fake.MessagesBy("chat.postMessage")
	if last := posts[len(posts)-1]; last.ThreadTS != "1700000000.000001" {
		t.Errorf("threaded post %+v", last)
	}

	if err := s.Update(ctx, "C1", ts, s.Render(simple("updated"))[0]); err != nil {
		t.Fatal(err)
	}
	up := fake.MessagesBy("chat.update")
	if len(up) != 1 || up[0].TS != ts || up[0].Channel != "C1" || len(up[0].Blocks) == 0 {
		t.Errorf("update %+v", up)
	}
}

func TestThreadedResultWithoutChannelAccess(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, clock := deliveryBot(t, fake, nil)
	org := origin{channel: "CPRIV", user: "U1", responseURL: fake.ResponseURL("priv")}
	b.urls.register(org.responseURL, clock.Now())
	fake.FailNext("chat.postMessage", 0, 0, "not_in_channel", 1)
	r := fortyRelays()
	if err := b.deliver(context.Background(), org, r); err != nil {
		t.Fatal(err)
	}
	ms := messagesTo(fake, "priv")
	if len(ms) != 1+len(RenderMessages(r).Thread) {
		t.Errorf("%d messages through the response_url", len(ms))
	}
	for _, m := range ms {
		if m.ResponseType != "in_channel" {
			t.Errorf("response_type %q", m.ResponseType)
		}
	}
}

func TestReplaceFallsBackToChatUpdate(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, clock := deliveryBot(t, fake, nil)
	org := origin{channel: "C1", user: "U1", responseURL: fake.ResponseURL("gone"), messageTS: "1700000000.000042"}
	b.urls.register(org.responseURL, clock.Now())
	clock.Advance(31 * time.Minute)
	r := defaultRun(message.Request{Source: message.SourceButton, Action: message.ActionRerun})
	if err := b.deliver(context.Background(), org, r); err != nil {
		t.Fatal(err)
	}
	up := fake.MessagesBy("chat.update")
	if len(up) != 1 || up[0].TS != org.messageTS || up[0].Channel != "C1" {
		t.Errorf("chat.update %+v", up)
	}
}

func TestUploadPNG(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, _ := deliveryBot(t, fake, nil)
	ctx := context.Background()
	png := []byte("\x89PNG\r\n\x1a\n fake image bytes")
	if err := b.UploadPNG(ctx, "C1", "1700000000.000007", "relays.png", "Gmail TLS, last 24h", png); err != nil {
		t.Fatal(err)
	}
	get := fake.CallsTo("files.getUploadURLExternal")
	up := fake.CallsTo(slackfake.MethodUpload)
	done := fake.CallsTo("files.completeUploadExternal")
	if len(get) != 1 || len(up) != 1 || len(done) != 1 {
		t.Fatalf("calls: %d get, %d upload, %d complete", len(get), len(up), len(done))
	}
	if get[0].Form.Get("filename") != "relays.png" || get[0].Form.Get("length") != strconv.Itoa(len(png)) {
		t.Errorf("getUploadURLExternal form %v", get[0].Form)
	}
	if !bytes.Equal(up[0].Body, png) {
		t.Errorf("uploaded %q", up[0].Body)
	}
	f := done[0].Form
	if f.Get("channel_id") != "C1" || f.Get("thread_ts") != "1700000000.000007" || !strings.Contains(f.Get("files"), "Gmail TLS, last 24h") {
		t.Errorf("completeUploadExternal form %v", f)
	}

	fake.FailNext("files.getUploadURLExternal", 0, 0, "missing_scope", 1)
	err := b.UploadPNG(ctx, "C1", "", "relays.png", "t", png)
	if !IsMissingScope(err) || !IsPermanent(err) || !strings.Contains(err.Error(), "files:write") {
		t.Errorf("missing scope: %v", err)
	}
	if err := b.UploadPNG(ctx, "C1", "", "x.png", "t", nil); err == nil {
		t.Errorf("empty upload accepted")
	}
}

func TestOversizedAckGoesThroughResponseURL(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	h := &fakeHandler{ackFn: func(req message.Request) (message.Response, bool) {
		r := fortyRelays() // folds: too much for an ack
		r.Ephemeral = true
		return r, false
	}}
	tb := startBot(t, fake, h, nil)
	tb.waitReady(t)
	id := fake.SendEnvelope(slackfake.EnvelopeSlashCommands, slackfake.Slash{Text: "status", ResponseURL: fake.ResponseURL("big")}.Payload())
	waitFor(t, fake, "the ack", func() bool { return len(fake.AcksFor(id)) == 1 })
	if p := fake.AcksFor(id)[0].Payload; len(p) > 1024 || !bytes.Contains(p, []byte("37 relays OK")) {
		t.Errorf("ack payload (%d bytes) %.200s", len(p), p)
	}
	n := 1 + len(RenderMessages(fortyRelays()).Thread)
	waitFor(t, fake, "the full answer", func() bool { return len(messagesTo(fake, "big")) == n })
	for _, m := range messagesTo(fake, "big") {
		if m.ResponseType != "ephemeral" {
			t.Errorf("response_type %q", m.ResponseType)
		}
	}
}
