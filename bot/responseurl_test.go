package bot

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/message"
)

func TestResponseURLAllowed(t *testing.T) {
	hosts := []string{"hooks.slack.com", "127.0.0.1:8099", "[::1]:8099"}
	for u, want := range map[string]bool{
		"https://hooks.slack.com/commands/T1/2/abc":          true,
		"https://hooks.slack.com/actions/T1/2/abc":           true,
		"https://HOOKS.slack.com/app/T1/2/abc":               true,
		"https://hooks.slack.com:443/commands/T1/2/abc":      true,
		"https://hooks.slack.com:8443/commands/T1/2/abc":     false,
		"http://hooks.slack.com/commands/T1/2/abc":           false,
		"https://hooks.slack.com.evil.example/commands/T1/2": false,
		"https://evil.example/hooks.slack.com/commands":      false,
		"https://user:pw@hooks.slack.com/commands/T1/2/abc":  false,
		"https://slack.com/api/chat.postMessage":             false,
		"http://127.0.0.1:8099/response/x":                   true,
		"http://127.0.0.1:8098/response/x":                   false,
		"http://127.0.0.1/response/x":                        false,
		"http://[::1]:8099/response/x":                       true,
		"http://10.0.0.8:8099/response/x":                    false,
		"ftp://hooks.slack.com/x":                            false,
		"hooks.slack.com/commands":                           false,
		"":                                                   false,
		"https://":                                           false,
		"javascript:alert(1)":                                false,
	} {
		if got := responseURLAllowed(u, hosts); got != want {
			t.Errorf("responseURLAllowed(%q) = %v, want %v", u, got, want)
		}
	}
	if !responseURLAllowed("https://hooks.slack.com/commands/T1/2/abc", DefaultResponseURLHosts) ||
		responseURLAllowed("http://127.0.0.1:8099/response/x", DefaultResponseURLHosts) {
		t.Error("the default hosts are not Slack's only")
	}
}

// TestResponseURLOutsideAllowedHostsIgnored: a signed slash command and a
// signed button press naming a response_url on a host that is not
// Slack's get their answers through the Web API; nothing reaches that
// host.
func TestResponseURLOutsideAllowedHostsIgnored(t *testing.T) {
	var hits atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer elsewhere.Close()
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	h := &fakeHandler{}
	tb, base := startHTTPBot(t, fake, h)
	ctx := context.Background()

	body := slackfake.Slash{Text: "check relay-2", ResponseURL: elsewhere.URL + "/commands/T1/2/abc"}.Form().Encode()
	req, _ := slackfake.SignedRequest(ctx, base+PathCommands, testSecret, time.Now(), body)
	if status, reply := do(t, req); status != http.StatusOK || !strings.Contains(reply, "probing relay-2") {
		t.Fatalf("signed command: %d %s", status, reply)
	}
	press := slackfake.Action{ActionID: message.ActionRerun, Value: "relay-2", MessageTS: "1795712670.000100",
		ResponseURL: elsewhere.URL + "/actions/T1/2/abc"}.Form().Encode()
	req, _ = slackfake.SignedRequest(ctx, base+PathInteractivity, testSecret, time.Now(), press)
	if status, _ := do(t, req); status != http.StatusOK {
		t.Fatalf("signed press: %d", status)
	}
	waitFor(t, fake, "both answers through the Web API", func() bool {
		return len(fake.MessagesBy("chat.postMessage")) == 1 && len(fake.MessagesBy("chat.update")) == 1
	})
	if err := tb.stop(t); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the bot posted %d times to a response_url that is not Slack's", n)
	}
	if !strings.Contains(tb.logs.String(), "ignored a response_url outside [slack] response_url_hosts") {
		t.Errorf("no warning about the response_url:\n%s", tb.logs.String())
	}
}
