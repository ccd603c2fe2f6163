package bot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/outbox"
)

// TestAuthErrorsAreTold: Slack refusing the token or the app's scopes is
// told apart from errors of one message, as the real client reports them
// from the Slack stand-in; ErrorCode names the known codes only.
func TestAuthErrorsAreTold(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, _ := deliveryBot(t, fake, func(c *Config) { c.APIRetries = -1 })
	s := NewSender(b, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		code            string
		auth, permanent bool
	}{
		{"invalid_auth", true, true},
		{"not_authed", true, true},
		{"account_inactive", true, true},
		{"token_revoked", true, true},
		{"token_expired", true, true},
		{"missing_scope", true, true},
		{"not_allowed_token_type", true, true},
		{"channel_not_found", false, true},
		{"not_in_channel", false, true},
		{"is_archived", false, true},
		{"msg_too_long", false, true},
		{"internal_error", false, false},
	} {
		fake.FailNext("chat.postMessage", 0, 0, tc.code, 1)
		_, err := s.Post(ctx, "C1", "", s.Render(simple("x"))[0])
		if err == nil {
			t.Fatalf("%s: no error", tc.code)
		}
		if got := IsAuth(err); got != tc.auth {
			t.Errorf("IsAuth(%s) = %v, want %v", tc.code, got, tc.auth)
		}
		if got := IsPermanent(err); got != tc.permanent {
			t.Errorf("IsPermanent(%s) = %v, want %v", tc.code, got, tc.permanent)
		}
		want := tc.code
		if tc.code == "internal_error" {
			want = ""
		}
		if got := ErrorCode(err); got != want {
			t.Errorf("ErrorCode(%s) = %q, want %q", tc.code, got, want)
		}
	}
	fake.FailNext("chat.postMessage", http.StatusTooManyRequests, 0, "", 1)
	_, err := s.Post(ctx, "C1", "", s.Render(simple("x"))[0])
	if IsAuth(err) || ErrorCode(err) != "" && ErrorCode(err) != "ratelimited" {
		t.Errorf("429: IsAuth %v, ErrorCode %q", IsAuth(err), ErrorCode(err))
	}
	if IsAuth(nil) || IsAuth(errors.New("dial tcp: connection refused")) || ErrorCode(nil) != "" {
		t.Error("transient errors called auth errors")
	}
	if !IsAuth(fmt.Errorf("start: %w", ErrAuth)) {
		t.Error("ErrAuth is not an auth error")
	}
	if ErrorCode(fmt.Errorf("x: %w", slack.SlackErrorResponse{Err: "some_new_code"})) != "" {
		t.Error("ErrorCode passed an unknown code through")
	}
}

// TestPartsOneByOne: a Response rendered once and posted part by part
// goes out as the bot's own delivery renders it, one Slack message per
// call; an update replaces the main message and posts nothing more.
func TestPartsOneByOne(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, _ := deliveryBot(t, fake, nil)
	s := NewSender(b, nil)
	ctx := context.Background()
	r := fortyRelays()
	want := RenderMessages(r)
	parts := s.Render(r)
	if n := len(parts); n != 1+len(want.Thread) || n < 2 {
		t.Fatalf("%d parts, want %d (and a thread)", n, 1+len(want.Thread))
	}
	if n := len(s.Render(simple("short"))); n != 1 {
		t.Errorf("a short message renders to %d parts", n)
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
	if _, err := s.Post(ctx, "C1", ts, want); err == nil {
		t.Error("a part the Sender did not render was posted")
	}
	posts := fake.MessagesBy("chat.postMessage")
	if len(posts) != 1+len(want.Thread) || posts[0].TS != ts || posts[0].Text != want.Main.Text || posts[0].ThreadTS != "" {
		t.Fatalf("%d posts, main %+v", len(posts), posts[0])
	}
	for i, m := range want.Thread {
		if p := posts[1+i]; p.Text != m.Text || p.ThreadTS != ts || len(p.Blocks) != len(m.Blocks) {
			t.Errorf("part %d = %q (%d blocks) in %q, want %q (%d blocks) in %q", 1+i, p.Text, len(p.Blocks), p.ThreadTS, m.Text, len(m.Blocks), ts)
		}
	}
	if err := s.Update(ctx, "C1", ts, parts[0]); err != nil {
		t.Fatal(err)
	}
	if up := fake.MessagesBy("chat.update"); len(up) != 1 || up[0].TS != ts || len(up[0].Blocks) != len(want.Main.Blocks) {
		t.Errorf("chat.update %+v", up)
	}
	if n := len(fake.MessagesBy("chat.postMessage")); n != len(posts) {
		t.Errorf("Update posted %d replies", n-len(posts))
	}
}

// TestClassifySlackError: each Slack error is sorted for the outbox and
// counted under its own code: Slack's code when the bot knows it, else
// what kind of error it is.
func TestClassifySlackError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want outbox.Class
		code string
	}{
		{"429 with Retry-After", &slack.RateLimitedError{RetryAfter: 7 * time.Second}, outbox.Class{RateLimited: true, RetryAfter: 7 * time.Second}, CodeRateLimited},
		{"429 without", slack.StatusCodeError{Code: http.StatusTooManyRequests}, outbox.Class{RateLimited: true}, CodeRateLimited},
		{"ratelimited", slack.SlackErrorResponse{Err: "ratelimited"}, outbox.Class{RateLimited: true}, CodeRateLimited},
		{"token_revoked", slack.SlackErrorResponse{Err: "token_revoked"}, outbox.Class{Suspended: true}, "token_revoked"},
		{"invalid_auth", webAPIError("chat.update", "C1", slack.SlackErrorResponse{Err: "invalid_auth"}), outbox.Class{Suspended: true}, "invalid_auth"},
		{"missing_scope", slack.SlackErrorResponse{Err: "missing_scope"}, outbox.Class{Suspended: true, MissingScope: true}, "missing_scope"},
		{"ErrAuth", fmt.Errorf("start: %w", ErrAuth), outbox.Class{Suspended: true}, CodeAuth},
		{"channel_not_found", slack.SlackErrorResponse{Err: "channel_not_found"}, outbox.Class{Permanent: true}, "channel_not_found"},
		{"msg_too_long", webAPIError("chat.postMessage", "C1", slack.SlackErrorResponse{Err: "msg_too_long"}), outbox.Class{Permanent: true}, "msg_too_long"},
		{"404", slack.StatusCodeError{Code: http.StatusNotFound, Status: "404 Not Found"}, outbox.Class{Permanent: true}, CodePermanent},
		{"500", slack.StatusCodeError{Code: http.StatusInternalServerError}, outbox.Class{}, CodeServerError},
		{"unknown code", slack.SlackErrorResponse{Err: "internal_error"}, outbox.Class{}, CodeServerError},
		{"network", errors.New("dial tcp 127.0.0.1:1: connection refused"), outbox.Class{}, CodeServerError},
	} {
		c, code := ClassifySlackError(tc.err)
		if c != tc.want || code != tc.code {
			t.Errorf("%s: ClassifySlackError = %+v, %q; want %+v, %q", tc.name, c, code, tc.want, tc.code)
		}
	}
	var counted []string
	s := NewSender(nil, func(code string) { counted = append(counted, code) })
	s.Classify(slack.SlackErrorResponse{Err: "not_in_channel"})
	s.Classify(slack.StatusCodeError{Code: http.StatusBadGateway})
	if len(counted) != 2 || counted[0] != "not_in_channel" || counted[1] != CodeServerError {
		t.Errorf("Sender counted %v, want [not_in_channel server_error]", counted)
	}
}

// TestClassifyNetworkFailures: a Slack call whose host name does not
// resolve is counted as dns_error, one that finds no connection as
// network_error; neither is Slack's server_error. Both are real failures
// of the bot's Web API client, on loopback only.
func TestClassifyNetworkFailures(t *testing.T) {
	noDNS := &net.Dialer{Resolver: &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS in tests")
	}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name, apiURL, want string
	}{
		{"unresolvable", "https://slack.test.invalid/api/", CodeDNSError},
		{"refused", "http://" + closed + "/api/", CodeNetworkError},
	} {
		b, err := New(Config{BotToken: slackfake.DefaultBotToken, AppToken: slackfake.DefaultAppToken, APIURL: tc.apiURL, APIRetries: -1,
			HTTPClient: &http.Client{Transport: &http.Transport{DialContext: noDNS.DialContext}}}, &fakeHandler{})
		if err != nil {
			t.Fatal(err)
		}
		var counted []string
		s := NewSender(b, func(code string) { counted = append(counted, code) })
		_, err = s.Post(context.Background(), "C1", "", Message{Text: "x"})
		if err == nil {
			t.Fatalf("%s: the post succeeded", tc.name)
		}
		if c := s.Classify(err); c != (outbox.Class{}) || len(counted) != 1 || counted[0] != tc.want {
			t.Errorf("%s: %v classified %+v, counted %v; want transient, %s", tc.name, err, c, counted, tc.want)
		}
	}
}
