package bot

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/message"
)

const testSecret = "8f742231b10e8888abcd99yyyzzz85a5"

func startHTTPBot(t *testing.T, fake *slackfake.Server, h *fakeHandler) (*testBot, string) {
	t.Helper()
	tb := startBot(t, fake, h, func(c *Config) {
		c.Mode = ModeHTTP
		c.AppToken = ""
		c.SigningSecret = testSecret
		c.Listen = "127.0.0.1:0"
	})
	tb.waitReady(t)
	return tb, "http://" + tb.Addr().String()
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestHTTPModeSignedRequests(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	h := &fakeHandler{}
	tb, base := startHTTPBot(t, fake, h)
	ctx := context.Background()

	body := slackfake.Slash{Text: "check relay-2", ResponseURL: fake.ResponseURL("h-1")}.Form().Encode()
	req, err := slackfake.SignedRequest(ctx, base+PathCommands, testSecret, time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	status, reply := do(t, req)
	if status != http.StatusOK {
		t.Fatalf("signed command: %d %s", status, reply)
	}
	var ack struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
	}
	if err := json.Unmarshal([]byte(reply), &ack); err != nil || ack.Text != "probing relay-2 → 5 Gmail MX hosts…" {
		t.Errorf("reply %s (%v)", reply, err)
	}
	waitFor(t, fake, "the result", func() bool { return len(messagesTo(fake, "h-1")) == 1 })
	if !hasAction(messagesTo(fake, "h-1")[0].Blocks, message.ActionRerun) {
		t.Errorf("result lacks Re-run")
	}

	// Re-run over the interactivity URL.
	body = slackfake.Action{ActionID: message.ActionRerun, Value: "relay-2", ResponseURL: fake.ResponseURL("h-2")}.Form().Encode()
	req, _ = slackfake.SignedRequest(ctx, base+PathInteractivity, testSecret, time.Now(), body)
	if status, reply := do(t, req); status != http.StatusOK || reply != "" {
		t.Fatalf("signed interaction: %d %q", status, reply)
	}
	waitFor(t, fake, "the replacement", func() bool { return len(messagesTo(fake, "h-2")) == 1 })
	if !messagesTo(fake, "h-2")[0].ReplaceOriginal {
		t.Errorf("Re-run did not replace the original")
	}
	_ = tb
}

func TestHTTPModeRejectsBadSignatures(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	h := &fakeHandler{}
	_, base := startHTTPBot(t, fake, h)
	ctx := context.Background()
	body := slackfake.Slash{Text: "check relay-2", ResponseURL: fake.ResponseURL("x")}.Form().Encode()
	action := slackfake.Action{ActionID: message.ActionRerun, Value: "relay-2", ResponseURL: fake.ResponseURL("y")}.Form().Encode()

	cases := map[string]func(path, body string) *http.Request{
		"unsigned": func(path, body string) *http.Request {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return req
		},
		"wrong secret": func(path, body string) *http.Request {
			req, _ := slackfake.SignedRequest(ctx, base+path, "another-secret", time.Now(), body)
			return req
		},
		"stale": func(path, body string) *http.Request {
			req, _ := slackfake.SignedRequest(ctx, base+path, testSecret, time.Now().Add(-6*time.Minute), body)
			return req
		},
		"future": func(path, body string) *http.Request {
			req, _ := slackfake.SignedRequest(ctx, base+path, testSecret, time.Now().Add(6*time.Minute), body)
			return req
		},
		"tampered body": func(path, body string) *http.Request {
			req, _ := slackfake.SignedRequest(ctx, base+path, testSecret, time.Now(), body)
			tampered := strings.Replace(body, "relay-2", "relay-9", 1)
			req.Body = io.NopCloser(strings.NewReader(tampered))
			req.ContentLength = int64(len(tampered))
			return req
		},
		"tampered timestamp": func(path, body string) *http.Request {
			req, _ := slackfake.SignedRequest(ctx, base+path, testSecret, time.Now(), body)
			req.Header.Set("X-Slack-Request-Timestamp", req.Header.Get("X-Slack-Request-Timestamp")+"1")
			return req
		},
		"v1 scheme": func(path, body string) *http.Request {
			req, _ := slackfake.SignedRequest(ctx, base+path, testSecret, time.Now(), body)
			req.Header.Set("X-Slack-Signature", strings.Replace(req.Header.Get("X-Slack-Signature"), "v0=", "v1=", 1))
			return req
		},
	}
	for name, mk := range cases {
		for _, target := range []struct{ path, body string }{{PathCommands, body}, {PathInteractivity, action}} {
			status, _ := do(t, mk(target.path, target.body))
			if status != http.StatusUnauthorized {
				t.Errorf("%s %s: status %d, want 401", name, target.path, status)
			}
		}
	}
	// A body over the cap is refused before anything is parsed.
	big := url.Values{"text": {strings.Repeat("a", maxBodyBytes)}}.Encode()
	req, _ := slackfake.SignedRequest(ctx, base+PathCommands, testSecret, time.Now(), big)
	if status, _ := do(t, req); status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: status %d", status)
	}
	// Only POST is served.
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+PathCommands, nil)
	if status, _ := do(t, req); status != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", status)
	}

	acks, runs := h.calls()
	if len(acks) != 0 || len(runs) != 0 {
		t.Errorf("the handler ran for rejected requests: %d acks, %d runs", len(acks), len(runs))
	}
	if n := len(fake.Messages()); n != 0 {
		t.Errorf("%d messages delivered for rejected requests", n)
	}
}

func TestHTTPModeCommandMismatch(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	h := &fakeHandler{}
	_, base := startHTTPBot(t, fake, h)
	body := slackfake.Slash{Command: "/other", Text: "check relay-2"}.Form().Encode()
	req, _ := slackfake.SignedRequest(context.Background(), base+PathCommands, testSecret, time.Now(), body)
	status, reply := do(t, req)
	if status != http.StatusOK || !strings.Contains(reply, "configured for /gmailtls") || !strings.Contains(reply, "ephemeral") {
		t.Errorf("mismatched command: %d %s", status, reply)
	}
	if acks, _ := h.calls(); len(acks) != 0 {
		t.Errorf("handler called for another command")
	}
}

// TestHTTPModeServerLimits: HTTP mode's server has every timeout and logs
// net/http's own errors.
func TestHTTPModeServerLimits(t *testing.T) {
	b, err := New(Config{Mode: ModeHTTP, BotToken: "xoxb-1", SigningSecret: testSecret, Listen: "127.0.0.1:0"}, &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	srv := b.httpServer(context.Background())
	if srv.ReadHeaderTimeout != httpReadHeaderTimeout || srv.ReadTimeout != httpReadTimeout ||
		srv.WriteTimeout != httpWriteTimeout || srv.IdleTimeout != httpIdleTimeout || srv.ErrorLog == nil {
		t.Errorf("server limits: read header %s, read %s, write %s, idle %s, error log %v",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.ErrorLog != nil)
	}
}
