package bot

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/message"
)

// remoteMarkup is what a server on the port-25 path answers with: Slack's
// user, channel and broadcast mentions and a link.
const remoteMarkup = "<@U0ADMIN01> <#C0OKCHAN1> <!channel> <!subteam^S0OPS> <https://evil.example|click>"

// liveMarkupRE finds Slack control sequences that are live in a rendered
// payload (escaped text shows them as &lt;…&gt;).
var liveMarkupRE = regexp.MustCompile(`<[@#!]|<https?:`)

// TestRemoteTextPingsNoOne: a loopback STARTTLS server whose greeting,
// EHLO and error replies carry Slack mentions, broadcasts and links. The
// real commands.Handler checks it, and the check result, the transcript
// and the evidence, rendered for Slack, show that text escaped: nothing in
// the payloads is a live mention.
func TestRemoteTextPingsNoOne(t *testing.T) {
	for _, tc := range []struct {
		name     string
		behavior smtptest.Behavior
	}{
		{"rejected EHLO", smtptest.EHLO550}, // 550 5.7.1 Client host rejected <@U0ADMIN01> …
		{"greeting and EHLO", smtptest.ResetAfterReady},
		{"Gmail-like", smtptest.Gmail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, err := smtptest.NewCA()
			if err != nil {
				t.Fatal(err)
			}
			srv := smtptest.StartT(t, smtptest.Options{CA: ca, Behavior: tc.behavior, Remark: remoteMarkup})
			clk := manualclock.New(time.Now().UTC().Truncate(time.Hour))
			e := &realEnv{h: realHandler(t, srv, clk.Now), srv: srv, clk: clk, t0: clk.Now()}

			check := e.do(message.Request{Text: "check relay-1"})
			answers := map[string]realAnswer{"check": check}
			press := func(action string) {
				b := findButton(t, check.resp, action)
				answers[action] = e.do(message.Request{Source: message.SourceButton, Action: b.Action, Value: b.Value})
			}
			press(message.ActionTranscript)
			press(message.ActionEvidence)
			answers["evidence command"] = e.do(message.Request{Text: "evidence relay-1"})
			answers["history"] = e.do(message.Request{Text: "history relay-1"})

			shown := false
			for name, a := range answers {
				for _, r := range []message.Response{a.ack, a.resp} {
					var buf bytes.Buffer
					enc := json.NewEncoder(&buf)
					enc.SetEscapeHTML(false)
					if err := enc.Encode(RenderMessages(r)); err != nil {
						t.Fatal(err)
					}
					payload := buf.String()
					if m := liveMarkupRE.FindAllString(payload, -1); m != nil {
						t.Errorf("%s: live Slack markup %q in the payload:\n%s", name, m, payload)
					}
					shown = shown || strings.Contains(payload, "&lt;@U0ADMIN01&gt; &lt;#C0OKCHAN1&gt; &lt;!channel&gt;")
				}
			}
			if !shown {
				t.Errorf("the server's text reached no payload, so the test proves nothing")
			}
		})
	}
}
