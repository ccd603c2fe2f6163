package bot

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/message"
)

// TestSocketModeEndToEnd drives the whole flow over the stand-in: slash
// command → ack with the Acknowledge reply → full result with buttons on
// the response_url → Re-run pressed → the original message replaced.
func TestSocketModeEndToEnd(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	h := &fakeHandler{}
	tb := startBot(t, fake, h, nil)
	tb.waitReady(t)

	// auth.test came first, with the bot token.
	calls := fake.Calls()
	if len(calls) == 0 || calls[0].Method != "auth.test" || calls[0].Token != slackfake.DefaultBotToken {
		t.Fatalf("first call %+v, want auth.test with the bot token", calls[0])
	}

	id := fake.SendEnvelope(slackfake.EnvelopeSlashCommands, slackfake.Slash{
		Text:        "check relay-2",
		ResponseURL: fake.ResponseURL("cmd-1"),
	}.Payload())
	waitFor(t, fake, "the ack", func() bool { return len(fake.AcksFor(id)) > 0 })
	ack := fake.AcksFor(id)[0]
	var sent time.Time
	for _, e := range fake.Envelopes() {
		if e.ID == id {
			sent = e.SentAt
		}
	}
	if lat := ack.At.Sub(sent); lat > 3*time.Second || lat < 0 {
		t.Errorf("ack latency %v, Slack allows 3 s", lat)
	}
	var payload struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
	}
	if err := json.Unmarshal(ack.Payload, &payload); err != nil {
		t.Fatalf("ack payload %s: %v", ack.Payload, err)
	}
	if payload.Text != "probing relay-2 → 5 Gmail MX hosts…" || payload.ResponseType != "in_channel" {
		t.Errorf("ack payload %s", ack.Payload)
	}

	waitFor(t, fake, "the result on the response_url", func() bool { return len(messagesTo(fake, "cmd-1")) > 0 })
	res := messagesTo(fake, "cmd-1")[0]
	if res.ResponseType != "in_channel" || res.ReplaceOriginal {
		t.Errorf("result response_type %q replace %v", res.ResponseType, res.ReplaceOriginal)
	}
	for _, a := range []string{message.ActionRerun, message.ActionTranscript, message.ActionEvidence} {
		if !hasAction(res.Blocks, a) {
			t.Errorf("result lacks the %s button", a)
		}
	}
	acks, runs := h.calls()
	if len(acks) != 1 || len(runs) != 1 {
		t.Fatalf("handler saw %d acks and %d runs", len(acks), len(runs))
	}
	want := message.Request{Text: "check relay-2", UserID: "U2147483697", UserName: "Steve", ChannelID: "C2147483705", Source: message.SourceSlash}
	if runs[0] != want {
		t.Errorf("Run got %+v, want %+v", runs[0], want)
	}

	// Re-run.
	bid := fake.SendEnvelope(slackfake.EnvelopeInteractive, slackfake.Action{
		ActionID:    message.ActionRerun,
		Value:       "relay-2",
		ChannelID:   "C2147483705",
		MessageTS:   "1700000001.000100",
		ResponseURL: fake.ResponseURL("act-1"),
	}.Payload())
	waitFor(t, fake, "the button ack", func() bool { return len(fake.AcksFor(bid)) > 0 })
	if p := fake.AcksFor(bid)[0].Payload; p != nil {
		t.Errorf("block_actions ack carried a payload: %s", p)
	}
	waitFor(t, fake, "the replaced message", func() bool { return len(messagesTo(fake, "act-1")) > 0 })
	rep := messagesTo(fake, "act-1")[0]
	if !rep.ReplaceOriginal {
		t.Errorf("Re-run did not replace the original message")
	}
	if blocks, _ := json.Marshal(rep.Blocks); !strings.Contains(string(blocks), "failed 12:03 → passed 12:05") {
		t.Errorf("replaced message lacks the transition: %s", blocks)
	}
	_, runs = h.calls()
	if len(runs) != 2 {
		t.Fatalf("%d runs", len(runs))
	}
	wantBtn := message.Request{UserID: "UA8RXUSPL", UserName: "jtorrance", ChannelID: "C2147483705", Source: message.SourceButton, Action: message.ActionRerun, Value: "relay-2"}
	if runs[1] != wantBtn {
		t.Errorf("button Run got %+v, want %+v", runs[1], wantBtn)
	}

	// Transcript: answered by Acknowledge alone, ephemeral.
	tid := fake.SendEnvelope(slackfake.EnvelopeInteractive, slackfake.Action{
		ActionID:    message.ActionTranscript,
		Value:       "r:1842",
		ResponseURL: fake.ResponseURL("act-2"),
	}.Payload())
	waitFor(t, fake, "the transcript", func() bool { return len(messagesTo(fake, "act-2")) > 0 })
	if m := messagesTo(fake, "act-2")[0]; m.ResponseType != "ephemeral" {
		t.Errorf("transcript response_type %q", m.ResponseType)
	}
	waitFor(t, fake, "the transcript ack", func() bool { return len(fake.AcksFor(tid)) > 0 })

	// Every envelope was acked exactly once; hello never.
	for _, e := range fake.Envelopes() {
		if n := len(fake.AcksFor(e.ID)); n != 1 {
			t.Errorf("envelope %s acked %d times", e.ID, n)
		}
	}
	for _, a := range fake.Acks() {
		if a.EnvelopeID == "" {
			t.Errorf("an ack without envelope_id (hello acked?)")
		}
	}

	// Tokens never reach the log.
	logs := tb.logs.String()
	if strings.Contains(logs, slackfake.DefaultBotToken) || strings.Contains(logs, slackfake.DefaultAppToken) {
		t.Errorf("a token was logged")
	}
}

func TestSocketModeReconnects(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	h := &fakeHandler{}
	tb := startBot(t, fake, h, nil)
	tb.waitReady(t)

	sendAndWait := func(what string) {
		t.Helper()
		id := fake.SendEnvelope(slackfake.EnvelopeSlashCommands, slackfake.Slash{Text: "help", ResponseURL: fake.ResponseURL(what)}.Payload())
		waitFor(t, fake, what+" ack", func() bool { return len(fake.AcksFor(id)) == 1 })
	}
	sendAndWait("before")

	fake.SendDisconnect("refresh_requested")
	waitFor(t, fake, "a second connection", func() bool { return fake.Connections() >= 2 && fake.OpenConnections() == 1 })
	sendAndWait("after-disconnect-frame")

	fake.DropConnections()
	waitFor(t, fake, "a third connection", func() bool { return fake.Connections() >= 3 && fake.OpenConnections() == 1 })
	sendAndWait("after-drop")

	if n := len(fake.CallsTo("apps.connections.open")); n < 3 {
		t.Errorf("apps.connections.open called %d times", n)
	}
	acks, runs := h.calls()
	if len(acks) != 3 || len(runs) != 0 {
		t.Errorf("handler: %d acks, %d runs", len(acks), len(runs))
	}
}

func TestSocketModeRedeliveryRunsOnce(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	h := &fakeHandler{}
	tb := startBot(t, fake, h, nil)
	tb.waitReady(t)

	id := fake.SendEnvelope(slackfake.EnvelopeSlashCommands, slackfake.Slash{Text: "check relay-1", ResponseURL: fake.ResponseURL("r")}.Payload())
	waitFor(t, fake, "the ack", func() bool { return len(fake.AcksFor(id)) == 1 })
	fake.ResendEnvelope(id)
	waitFor(t, fake, "the second ack", func() bool { return len(fake.AcksFor(id)) == 2 })
	if p := fake.AcksFor(id)[1].Payload; p != nil {
		t.Errorf("redelivery ack carried a payload: %s", p)
	}
	waitFor(t, fake, "the result", func() bool { return len(messagesTo(fake, "r")) == 1 })
	tb.stop(t)
	acks, runs := h.calls()
	if len(acks) != 1 || len(runs) != 1 {
		t.Errorf("a redelivered envelope ran again: %d acks, %d runs", len(acks), len(runs))
	}
}

func TestSocketModeStopsCleanly(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	release := make(chan struct{})
	h := &fakeHandler{runFn: func(ctx context.Context, req message.Request) message.Response {
		select {
		case <-ctx.Done():
			return message.Response{Summary: "check cancelled: gmailtls is shutting down", Ephemeral: true}
		case <-release:
			return defaultRun(req)
		}
	}}
	defer close(release)
	tb := startBot(t, fake, h, nil)
	tb.waitReady(t)
	id := fake.SendEnvelope(slackfake.EnvelopeSlashCommands, slackfake.Slash{Text: "check relay-1", ResponseURL: fake.ResponseURL("s")}.Payload())
	waitFor(t, fake, "the ack", func() bool { return len(fake.AcksFor(id)) == 1 })
	waitFor(t, fake, "Run to start", func() bool { _, runs := h.calls(); return len(runs) == 1 })

	if err := tb.stop(t); err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
	if tb.Ready() {
		t.Errorf("still ready after stop")
	}
	// The cancelled check still told the user.
	if ms := messagesTo(fake, "s"); len(ms) != 1 || !strings.Contains(ms[0].Text, "shutting down") {
		t.Errorf("messages after shutdown: %+v", ms)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := botGoroutines()
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left after stop:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSocketModePanicsAreContained(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	h := &fakeHandler{runFn: func(ctx context.Context, req message.Request) message.Response {
		if req.Text == "check boom" {
			panic("boom")
		}
		return defaultRun(req)
	}}
	h.ackFn = func(req message.Request) (message.Response, bool) {
		if req.Text == "check ackboom" {
			panic("ack boom")
		}
		return defaultAck(req)
	}
	tb := startBot(t, fake, h, nil)
	tb.waitReady(t)

	a := fake.SendEnvelope(slackfake.EnvelopeSlashCommands, slackfake.Slash{Text: "check ackboom", ResponseURL: fake.ResponseURL("a")}.Payload())
	b := fake.SendEnvelope(slackfake.EnvelopeSlashCommands, slackfake.Slash{Text: "check boom", ResponseURL: fake.ResponseURL("b")}.Payload())
	c := fake.SendEnvelope(slackfake.EnvelopeSlashCommands, slackfake.Slash{Text: "check relay-1", ResponseURL: fake.ResponseURL("c")}.Payload())
	waitFor(t, fake, "three acks", func() bool {
		return len(fake.AcksFor(a)) == 1 && len(fake.AcksFor(b)) == 1 && len(fake.AcksFor(c)) == 1
	})
	if p := string(fake.AcksFor(a)[0].Payload); !strings.Contains(p, "internal error") || !strings.Contains(p, "ephemeral") {
		t.Errorf("a panicking Acknowledge was acked with %s", p)
	}
	waitFor(t, fake, "the error reply and the result", func() bool {
		return len(messagesTo(fake, "b")) == 1 && len(messagesTo(fake, "c")) == 1
	})
	if m := messagesTo(fake, "b")[0]; m.ResponseType != "ephemeral" || !strings.Contains(m.Text, "internal error") {
		t.Errorf("panicking Run answered %+v", m)
	}
	if !strings.Contains(tb.logs.String(), "panicked") {
		t.Errorf("the panic was not logged")
	}
}

func TestRunRejectsBadTokens(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()

	b, err := New(Config{BotToken: "xoxb-wrong", AppToken: slackfake.DefaultAppToken, APIURL: fake.APIURL()}, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Run(context.Background())
	if err == nil || err.Error() != "slack: the bot token was rejected (invalid_auth): check SLACK_BOT_TOKEN" {
		t.Errorf("bad bot token: %v", err)
	}
	if !errors.Is(err, ErrAuth) || !IsPermanent(err) {
		t.Errorf("bad bot token error is not ErrAuth/permanent: %v", err)
	}

	b, err = New(Config{BotToken: slackfake.DefaultBotToken, AppToken: "xapp-wrong", APIURL: fake.APIURL()}, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "app-level token was rejected (invalid_auth)") || !errors.Is(err, ErrAuth) {
		t.Errorf("bad app token: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{AppToken: "xapp-1"}, "bot token is empty"},
		{Config{BotToken: "xoxb-1"}, "needs an app-level token"},
		{Config{BotToken: "xoxb-1", AppToken: "xoxb-2"}, "does not start with xapp-"},
		{Config{BotToken: "xoxb-1", Mode: ModeHTTP}, "signing secret"},
		{Config{BotToken: "xoxb-1", Mode: ModeHTTP, SigningSecret: "s"}, "listen address"},
		{Config{BotToken: "xoxb-1", Mode: "rtm"}, `mode "rtm"`},
		{Config{BotToken: "xoxb-1", AppToken: "xapp-1", APIURL: "ftp://x/"}, "not an http(s) URL"},
		{Config{BotToken: "xoxb-1", AppToken: "xapp-1", Command: "gmailtls"}, "must start with /"},
	} {
		_, err := New(tc.cfg, &fakeHandler{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrConfig) {
			t.Errorf("New(%+v) = %v, want an ErrConfig naming %q", tc.cfg, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "xoxb-1") || strings.Contains(err.Error(), "xapp-1")) {
			t.Errorf("error repeats a token: %v", err)
		}
	}
	b, err := New(Config{BotToken: "xoxb-1", AppToken: "xapp-1", APIURL: "http://127.0.0.1:1/api"}, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	if b.cfg.APIURL != "http://127.0.0.1:1/api/" || b.cfg.Workers != 8 || b.cfg.Command != "/gmailtls" {
		t.Errorf("defaults: %+v", b.cfg)
	}
}

// TestRunWaitsForSlackAtStart: Slack unreachable at start (auth.test
// answering 503) is waited out, with a warning, and the bot then connects;
// it is not an exit that would stop probing and alerts.
func TestRunWaitsForSlackAtStart(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	fake.FailNext("auth.test", 503, 0, "", 3)
	tb := startBot(t, fake, &fakeHandler{}, func(c *Config) {
		c.APIRetries = -1
		c.StartBackoff = 10 * time.Millisecond
	})
	tb.waitReady(t)
	if n := len(fake.CallsTo("auth.test")); n != 4 {
		t.Errorf("%d auth.test calls, want 3 failed and 1 accepted", n)
	}
	if logs := tb.logs.String(); strings.Count(logs, "auth.test failed") != 3 || !strings.Contains(logs, "retrying") {
		t.Errorf("the retries were not logged as such:\n%s", logs)
	}
	// Stopped while still waiting for Slack: a clean stop, no error.
	fake2 := slackfake.New(slackfake.Options{})
	defer fake2.Close()
	fake2.FailNext("auth.test", 503, 0, "", 1000)
	b, err := New(Config{BotToken: slackfake.DefaultBotToken, AppToken: slackfake.DefaultAppToken, APIURL: fake2.APIURL(),
		APIRetries: -1, StartBackoff: 10 * time.Millisecond}, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := b.Run(ctx); err != nil {
		t.Errorf("stopped while waiting for Slack: %v", err)
	}
	if n := len(fake2.CallsTo("auth.test")); n < 2 {
		t.Errorf("%d auth.test calls in 200 ms, want retries", n)
	}
}

// TestRunStopsOnWrongTokenKindAndWrongURL: a token of the wrong kind and an
// API URL that answers 404 end Run at once instead of being retried.
func TestRunStopsOnWrongTokenKindAndWrongURL(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	fake.FailNext("auth.test", 200, 0, "not_allowed_token_type", 1)
	b, err := New(Config{BotToken: slackfake.DefaultBotToken, AppToken: slackfake.DefaultAppToken, APIURL: fake.APIURL(),
		APIRetries: -1, StartBackoff: time.Millisecond}, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Run(ctx); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "not_allowed_token_type") {
		t.Errorf("wrong kind of token: %v", err)
	}
	fake.FailNext("auth.test", 404, 0, "", 1)
	b, err = New(Config{BotToken: slackfake.DefaultBotToken, AppToken: slackfake.DefaultAppToken, APIURL: fake.APIURL(),
		APIRetries: -1, StartBackoff: time.Millisecond}, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Run(ctx); err == nil || !strings.Contains(err.Error(), "api_url") {
		t.Errorf("API URL answering 404: %v", err)
	}
	if n := len(fake.CallsTo("auth.test")); n != 2 {
		t.Errorf("%d auth.test calls, want one per bot", n)
	}
}
