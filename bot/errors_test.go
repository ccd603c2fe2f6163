package bot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/slack-go/slack"

	"github.com/gmailtls/gmailtls/internal/slackfake"
)

// TestAuthErrorsAreTold: Slack refusing the token or the app's scopes is
// told apart from errors of one message, as the real client reports them
// from the Slack stand-in; ErrorCode names the known codes only.
func TestAuthErrorsAreTold(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, _ := deliveryBot(t, fake, func(c *Config) { c.APIRetries = -1 })
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
		_, err := b.PostPart(ctx, "C1", simple("x"), 0, "")
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
	_, err := b.PostPart(ctx, "C1", simple("x"), 0, "")
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

// TestPartsOneByOne: Parts, PostPart and UpdateMain deliver exactly what
// Post and Update do, one Slack message per call.
func TestPartsOneByOne(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	b, _ := deliveryBot(t, fake, nil)
	ctx := context.Background()
	r := fortyRelays()
	want := RenderMessages(r)
	if n := b.Parts(r); n != 1+len(want.Thread) || n < 2 {
		t.Fatalf("Parts = %d, want %d (and a thread)", n, 1+len(want.Thread))
	}
	if n := b.Parts(simple("short")); n != 1 {
		t.Errorf("Parts of a short message = %d", n)
	}
	ts, err := b.PostPart(ctx, "C1", r, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	for part := 1; part < b.Parts(r); part++ {
		if _, err := b.PostPart(ctx, "C1", r, part, ts); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.PostPart(ctx, "C1", r, b.Parts(r), ts); err == nil {
		t.Error("a part past the last one was posted")
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
	if err := b.UpdateMain(ctx, "C1", ts, r); err != nil {
		t.Fatal(err)
	}
	if up := fake.MessagesBy("chat.update"); len(up) != 1 || up[0].TS != ts || len(up[0].Blocks) != len(want.Main.Blocks) {
		t.Errorf("chat.update %+v", up)
	}
	if n := len(fake.MessagesBy("chat.postMessage")); n != len(posts) {
		t.Errorf("UpdateMain posted %d replies", n-len(posts))
	}
}
