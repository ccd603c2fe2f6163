package slackfake

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

func TestWebAPIWithTheRealClient(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	ctx := context.Background()
	api := slack.New(DefaultBotToken, slack.OptionAPIURL(s.APIURL()), slack.OptionHTTPClient(s.Client()))

	who, err := api.AuthTestContext(ctx)
	if err != nil || who.UserID != "U0BOT" {
		t.Fatalf("auth.test: %+v %v", who, err)
	}
	_, err = slack.New("xoxb-bad", slack.OptionAPIURL(s.APIURL())).AuthTestContext(ctx)
	if se, ok := errors.AsType[slack.SlackErrorResponse](err); !ok || se.Err != "invalid_auth" {
		t.Errorf("bad token: %v", err)
	}

	_, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("hi", false),
		slack.MsgOptionBlocks(slack.NewDividerBlock()), slack.MsgOptionTS("1.2"))
	if err != nil || ts == "" {
		t.Fatalf("postMessage: %q %v", ts, err)
	}
	m := s.Messages()[0]
	if m.Channel != "C1" || m.Text != "hi" || m.ThreadTS != "1.2" || m.TS != ts || len(m.Blocks) != 1 || m.Blocks[0]["type"] != "divider" {
		t.Errorf("recorded %+v", m)
	}

	// Programmed failures: 429 with Retry-After, 5xx, ok:false.
	s.FailNext("chat.update", http.StatusTooManyRequests, 1500*time.Millisecond, "", 1)
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText("x", false))
	if rl, ok := errors.AsType[*slack.RateLimitedError](err); !ok || rl.RetryAfter != 2*time.Second {
		t.Errorf("429: %v", err)
	}
	s.FailNext("chat.update", http.StatusInternalServerError, 0, "", 1)
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText("x", false))
	if sc, ok := errors.AsType[slack.StatusCodeError](err); !ok || sc.Code != 500 {
		t.Errorf("500: %v", err)
	}
	s.FailNext("chat.update", 0, 0, "cant_update_message", 1)
	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText("x", false))
	if se, ok := errors.AsType[slack.SlackErrorResponse](err); !ok || se.Err != "cant_update_message" {
		t.Errorf("ok:false: %v", err)
	}
	if _, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText("x", false)); err != nil {
		t.Errorf("after the failures ran out: %v", err)
	}
	if calls := s.CallsTo("chat.update"); len(calls) != 4 || calls[0].Status != 429 || calls[3].Status != 200 {
		t.Errorf("recorded %d chat.update calls", len(calls))
	}

	// Files upload v2.
	f, err := api.UploadFileContext(ctx, slack.UploadFileParameters{Reader: strings.NewReader("png"), FileSize: 3, Filename: "a.png", Title: "A", Channel: "C1"})
	if err != nil || f.ID == "" || f.Title != "A" {
		t.Fatalf("upload: %+v %v", f, err)
	}
	if up := s.CallsTo(MethodUpload); len(up) != 1 || string(up[0].Body) != "png" {
		t.Errorf("upload calls %+v", up)
	}
}

func TestResponseURLSink(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	u := s.ResponseURL("r1")
	for i := range 6 {
		err := slack.PostWebhookCustomHTTPContext(context.Background(), u, s.Client(), &slack.WebhookMessage{Text: "m", ResponseType: "ephemeral", ReplaceOriginal: i == 0})
		if i < 5 && err != nil {
			t.Fatalf("post %d: %v", i+1, err)
		}
		if sc, ok := errors.AsType[slack.StatusCodeError](err); i == 5 && (!ok || sc.Code != 404) {
			t.Errorf("6th post: %v, want 404 like Slack", err)
		}
	}
	ms := s.Messages()
	if len(ms) != 5 || ms[0].ResponseID != "r1" || !ms[0].ReplaceOriginal || ms[1].ReplaceOriginal || ms[0].ResponseType != "ephemeral" {
		t.Errorf("messages %+v", ms)
	}
}

func TestPayloadsParseWithSlackGo(t *testing.T) {
	body := Slash{Text: "check relay-2", ResponseURL: "https://hooks.slack.com/x"}.Form().Encode()
	req := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	cmd, err := slack.SlashCommandParse(req)
	if err != nil || cmd.Text != "check relay-2" || cmd.Command != "/gmailtls" || cmd.EnterpriseName != "Globular Construct Inc" {
		t.Errorf("slash: %+v %v", cmd, err)
	}

	body = Action{ActionID: "a1", Value: "v1", MessageTS: "9.9", Ephemeral: true}.Form().Encode()
	req = httptest.NewRequest(http.MethodPost, "/slack/interactivity", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	cb, err := slack.InteractionCallbackParse(req)
	if err != nil || cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) != 1 ||
		cb.ActionCallback.BlockActions[0].ActionID != "a1" || cb.ActionCallback.BlockActions[0].Value != "v1" ||
		cb.Container.MessageTs != "9.9" || !cb.Container.IsEphemeral || cb.User.ID != "UA8RXUSPL" {
		t.Errorf("block_actions: %+v %v", cb, err)
	}
}

func TestSignatureMatchesSlackVerifier(t *testing.T) {
	body := []byte("token=x&text=hello")
	req, err := SignedRequest(context.Background(), "http://127.0.0.1/slack/commands", "s3cret", time.Now(), string(body))
	if err != nil {
		t.Fatal(err)
	}
	sv, err := slack.NewSecretsVerifier(req.Header, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = sv.Write(body)
	if err := sv.Ensure(); err != nil {
		t.Errorf("slack-go rejects the stand-in's signature: %v", err)
	}
	sv, _ = slack.NewSecretsVerifier(req.Header, "other")
	_, _ = sv.Write(body)
	if sv.Ensure() == nil {
		t.Errorf("a wrong secret verified")
	}
}

func TestWaitForEndsWithContext(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WaitFor(ctx, func() bool { return false }); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitFor: %v", err)
	}
	var buf bytes.Buffer
	buf.WriteString(s.URL())
	if !strings.HasPrefix(buf.String(), "http://127.0.0.1:") {
		t.Errorf("not on loopback: %s", s.URL())
	}
}
