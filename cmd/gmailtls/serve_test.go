package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/message"
)

// serveFixture is a running `gmailtls serve` against a Slack stand-in and
// a STARTTLS test server, all on loopback.
type serveFixture struct {
	slack   *slackfake.Server
	smtp    *smtptest.Server
	d       *daemon
	metrics string // base URL of /metrics etc.
	cfgPath string
	env     map[string]string
	cancel  context.CancelFunc
	done    chan error
}

func (f *serveFixture) getenv(k string) string { return f.env[k] }

// startServe writes a config for mode ("socket" or "http") and starts the
// daemon. extra is appended to the config file.
func startServe(t *testing.T, mode, extra string) *serveFixture {
	t.Helper()
	f := &serveFixture{slack: slackfake.New(slackfake.Options{}), done: make(chan error, 1)}
	t.Cleanup(f.slack.Close)
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	f.smtp = smtptest.StartT(t, smtptest.Options{Behavior: smtptest.Gmail, CA: ca, Hostname: "mx.test.example"})
	dir := t.TempDir()
	if err := ca.WritePEM(filepath.Join(dir, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	f.env = map[string]string{
		"SLACK_BOT_TOKEN":      slackfake.DefaultBotToken,
		"SLACK_APP_TOKEN":      slackfake.DefaultAppToken,
		"SLACK_SIGNING_SECRET": "test-signing-secret",
	}
	cfg := fmt.Sprintf(`[target]
mx = [%q]
servername = "mx.test.example"
ca_file = "ca.pem"
timeout = "5s"

[storage]
path = "serve.db"

[[relay]]
name = "relay-1"

[slack]
mode = %q
api_url = %q
listen = "127.0.0.1:0"
response_url_hosts = [%q]

[probing]
schedule = "off"

[alerts]
channel = "C0456EFGH"

[http]
listen = "127.0.0.1:0"
%s`, f.smtp.Addr(), mode, f.slack.APIURL(), strings.TrimPrefix(f.slack.URL(), "http://"), extra)
	f.cfgPath = filepath.Join(dir, "config.toml")
	if err := os.WriteFile(f.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(f.cfgPath, f.getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RequireSlack(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.metrics = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.d, err = newDaemon(ctx, c, log, daemonOptions{MetricsListener: ln, OutboxPoll: 50 * time.Millisecond})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { f.done <- f.d.run(ctx) }()
	t.Cleanup(func() { f.stop(t) })
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	for !f.d.bot.Ready() {
		select {
		case <-wctx.Done():
			t.Fatal("the bot never became ready")
		case <-time.After(10 * time.Millisecond):
		}
	}
	return f
}

// stop cancels the daemon and waits for it; it is safe to call twice.
func (f *serveFixture) stop(t *testing.T) {
	if f.cancel == nil {
		return
	}
	f.cancel()
	f.cancel = nil
	select {
	case err := <-f.done:
		if err != nil {
			t.Errorf("serve returned %v after a clean stop", err)
		}
	case <-time.After(40 * time.Second):
		t.Error("serve did not stop within 40 s of cancellation")
	}
}

func (f *serveFixture) wait(t *testing.T, what string, pred func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.slack.WaitFor(ctx, pred); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// messageOn returns the newest delivered message on a response_url id.
func (f *serveFixture) messageOn(id string) (slackfake.Message, bool) {
	var last slackfake.Message
	found := false
	for _, m := range f.slack.Messages() {
		if m.Method == slackfake.MethodResponseURL && m.ResponseID == id {
			last, found = m, true
		}
	}
	return last, found
}

// buttonValue finds the value of the first button with actionID in blocks.
func buttonValue(blocks []map[string]any, actionID string) (string, bool) {
	for _, b := range blocks {
		els, _ := b["elements"].([]any)
		for _, e := range els {
			m, _ := e.(map[string]any)
			if id, _ := m["action_id"].(string); strings.TrimSuffix(strings.SplitN(id, "#", 2)[0], "") == actionID {
				v, _ := m["value"].(string)
				return v, true
			}
		}
	}
	return "", false
}

func blocksText(blocks []map[string]any) string {
	b, _ := json.Marshal(blocks)
	return string(b)
}

func TestServeSocketModeCheckAndRerun(t *testing.T) {
	f := startServe(t, "socket", "")

	env := f.slack.SendEnvelope(slackfake.EnvelopeSlashCommands,
		slackfake.Slash{Text: "check relay-1", ResponseURL: f.slack.ResponseURL("r1")}.Payload())
	f.wait(t, "the ack", func() bool { return len(f.slack.AcksFor(env)) > 0 })
	ack := f.slack.AcksFor(env)[0]
	var sent time.Time
	for _, e := range f.slack.Envelopes() {
		if e.ID == env {
			sent = e.SentAt
		}
	}
	if lat := ack.At.Sub(sent); lat > 3*time.Second || lat < 0 {
		t.Errorf("ack took %v; Slack allows 3 s", lat)
	}
	if !strings.Contains(string(ack.Payload), "probing relay-1") {
		t.Errorf("ack payload %s does not say what is being probed", ack.Payload)
	}

	f.wait(t, "the result on the response_url", func() bool { _, ok := f.messageOn("r1"); return ok })
	first, _ := f.messageOn("r1")
	if first.ResponseType != "in_channel" {
		t.Errorf("check result response_type %q, want in_channel", first.ResponseType)
	}
	text := blocksText(first.Blocks)
	for _, want := range []string{"relay-1", "TLS", message.ActionRerun, message.ActionTranscript, message.ActionEvidence} {
		if !strings.Contains(text, want) {
			t.Errorf("result message lacks %q: %s", want, text)
		}
	}
	rerun, ok := buttonValue(first.Blocks, message.ActionRerun)
	if !ok {
		t.Fatal("no Re-run button on the result")
	}

	// The path breaks; Re-run shows it and replaces the message.
	f.smtp.SetBehavior(smtptest.ResetAfterReady)
	f.slack.SendEnvelope(slackfake.EnvelopeInteractive, slackfake.Action{
		ActionID: message.ActionRerun, BlockID: "actions", Value: rerun,
		ResponseURL: f.slack.ResponseURL("r2"), MessageTS: "1795712670.000100",
	}.Payload())
	f.wait(t, "the re-run result replacing the message", func() bool {
		m, ok := f.messageOn("r2")
		return ok && m.ReplaceOriginal && strings.Contains(blocksText(m.Blocks), "tls_reset")
	})
	second, _ := f.messageOn("r2")
	if text := blocksText(second.Blocks); !strings.Contains(text, "passed") || !strings.Contains(text, "failed") {
		t.Errorf("re-run result does not show the blip as passed → failed: %s", text)
	}

	// The probes were counted and the endpoints answer.
	body := httpGet(t, f.metrics+"/metrics", 200)
	if !strings.Contains(body, `gmailtls_probes_total{failure="tls_reset",mx="127.0.0.1",relay="relay-1",result="fail"}`) &&
		!strings.Contains(body, `failure="tls_reset"`) {
		t.Errorf("/metrics does not count the tls_reset probe:\n%s", grepLines(body, "gmailtls_probes_total"))
	}
	httpGet(t, f.metrics+"/healthz", 200)
	httpGet(t, f.metrics+"/readyz", 200)
	if n := f.smtp.Connections(); n < 2 {
		t.Errorf("the test server saw %d connections, want at least 2 (check and re-run)", n)
	}
	f.stop(t)
}

// TestServeHTTPModeCheckAndRerun drives `serve` in HTTP mode as Slack
// would: forged requests are refused with 401 and run nothing; a signed
// slash command is acknowledged in the reply, its result arrives on the
// response_url with its buttons; a signed block_actions press of Re-run
// replaces that message with the new result and the passed → failed line.
func TestServeHTTPModeCheckAndRerun(t *testing.T) {
	f := startServe(t, "http", "")
	base := "http://" + f.d.bot.Addr().String()
	secret := f.env["SLACK_SIGNING_SECRET"]
	form := slackfake.Slash{Text: "check relay-1", ResponseURL: f.slack.ResponseURL("h1")}.Form().Encode()

	post := func(req *http.Request) int {
		t.Helper()
		code, _ := postBody(t, req)
		return code
	}
	ctx := context.Background()
	// Unsigned, wrongly signed, stale and tampered requests: 401, nothing run.
	unsigned, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/slack/commands", strings.NewReader(form))
	wrong, _ := slackfake.SignedRequest(ctx, base+"/slack/commands", "not-the-secret", time.Now(), form)
	stale, _ := slackfake.SignedRequest(ctx, base+"/slack/commands", secret, time.Now().Add(-6*time.Minute), form)
	tampered, _ := slackfake.SignedRequest(ctx, base+"/slack/commands", secret, time.Now(), form)
	tampered.Body = io.NopCloser(strings.NewReader(strings.Replace(form, "relay-1", "relay-2", 1)))
	for name, req := range map[string]*http.Request{"unsigned": unsigned, "wrong": wrong, "stale": stale, "tampered": tampered} {
		if code := post(req); code != http.StatusUnauthorized {
			t.Errorf("%s request answered %d, want 401", name, code)
		}
	}
	if n := f.smtp.Connections(); n != 0 {
		t.Fatalf("a rejected request ran a probe (%d connections)", n)
	}

	// A signed slash command is acknowledged in the HTTP reply itself.
	good, _ := slackfake.SignedRequest(ctx, base+"/slack/commands", secret, time.Now(), form)
	code, reply := postBody(t, good)
	if code != http.StatusOK {
		t.Fatalf("signed request answered %d %s", code, reply)
	}
	var ack struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
	}
	if err := json.Unmarshal([]byte(reply), &ack); err != nil {
		t.Fatalf("the ack is not Slack's JSON message: %v: %s", err, reply)
	}
	if want := "probing relay-1 → 1 Gmail MX host…"; ack.Text != want {
		t.Errorf("ack text %q, want %q", ack.Text, want)
	}

	// The result follows on the response_url, in the channel, with its
	// three buttons.
	f.wait(t, "the result on the response_url", func() bool { _, ok := f.messageOn("h1"); return ok })
	msg, _ := f.messageOn("h1")
	if msg.ReplaceOriginal || msg.ResponseType != "in_channel" {
		t.Errorf("result: response_type %q, replace_original %v; want a new in_channel message", msg.ResponseType, msg.ReplaceOriginal)
	}
	text := blocksText(msg.Blocks)
	for _, want := range []string{"relay-1", "passed", "TLS"} {
		if !strings.Contains(text, want) {
			t.Errorf("HTTP-mode result lacks %q: %s", want, text)
		}
	}
	buttons := map[string]string{message.ActionRerun: "Re-run", message.ActionTranscript: "Transcript", message.ActionEvidence: "Evidence"}
	for action, label := range buttons {
		if got, ok := buttonLabel(msg.Blocks, action); !ok || got != label {
			t.Errorf("button %s: label %q (present %v), want %q", action, got, ok, label)
		}
	}
	rerun, ok := buttonValue(msg.Blocks, message.ActionRerun)
	if !ok || rerun == "" {
		t.Fatalf("no Re-run button value on the result: %s", text)
	}

	// The path breaks; Re-run is pressed. A press with its payload
	// tampered after signing is refused and runs nothing.
	f.smtp.SetBehavior(smtptest.ResetAfterReady)
	before := f.smtp.Connections()
	press := slackfake.Action{
		ActionID: message.ActionRerun, BlockID: "gmailtls_actions", Value: rerun, Text: "Re-run",
		UserID: "U2147483697", UserName: "Steve", ChannelID: "C2147483705",
		MessageTS: "1795712670.000100", ResponseURL: f.slack.ResponseURL("h2"),
	}.Form().Encode()
	forged, _ := slackfake.SignedRequest(ctx, base+"/slack/interactivity", secret, time.Now(), press)
	forged.Body = io.NopCloser(strings.NewReader(strings.Replace(press, "relay-1", "relay-9", 1)))
	if code := post(forged); code != http.StatusUnauthorized {
		t.Errorf("tampered block_actions answered %d, want 401", code)
	}
	pressed, _ := slackfake.SignedRequest(ctx, base+"/slack/interactivity", secret, time.Now(), press)
	if code, body := postBody(t, pressed); code != http.StatusOK || body != "" {
		t.Fatalf("signed block_actions answered %d %q, want an empty 200", code, body)
	}
	f.wait(t, "the re-run result replacing the message", func() bool {
		m, ok := f.messageOn("h2")
		return ok && m.ReplaceOriginal
	})
	second, _ := f.messageOn("h2")
	text = blocksText(second.Blocks)
	if !rerunLine.MatchString(text) {
		t.Errorf("the replaced message does not show passed → failed with both times: %s", text)
	}
	if !strings.Contains(text, "tls_reset") {
		t.Errorf("the replaced message does not name the failure: %s", text)
	}
	if again, ok := buttonValue(second.Blocks, message.ActionRerun); !ok || again == rerun {
		t.Errorf("the replaced message's Re-run button (%q, %v) does not carry the new run", again, ok)
	}
	if n := f.smtp.Connections(); n <= before {
		t.Errorf("Re-run probed nothing (%d connections before, %d after)", before, n)
	}
	for _, m := range f.slack.Messages() {
		if m.Method != slackfake.MethodResponseURL {
			t.Errorf("HTTP mode answered through %s instead of the response_url: %+v", m.Method, m)
		}
	}
}

// rerunLine is the Re-run comparison of commands.CheckResponse, e.g.
// "Re-run: passed 12:03 → failed 12:05" (a date precedes a time of
// another day).
var rerunLine = regexp.MustCompile(`Re-run: passed ([A-Z][a-z]{2} \d{1,2} )?\d{2}:\d{2} → failed ([A-Z][a-z]{2} \d{1,2} )?\d{2}:\d{2}`)

// postBody sends req (its Content-Type set as Slack sets it) and returns
// the status and body.
func postBody(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// buttonLabel finds the label of the first button with actionID in blocks.
func buttonLabel(blocks []map[string]any, actionID string) (string, bool) {
	for _, b := range blocks {
		els, _ := b["elements"].([]any)
		for _, e := range els {
			m, _ := e.(map[string]any)
			if id, _ := m["action_id"].(string); strings.SplitN(id, "#", 2)[0] == actionID {
				txt, _ := m["text"].(map[string]any)
				label, _ := txt["text"].(string)
				return label, true
			}
		}
	}
	return "", false
}

func TestServeReloadKeepsOldConfigOnError(t *testing.T) {
	f := startServe(t, "socket", "")
	ctx := context.Background()
	good, err := os.ReadFile(f.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// A broken file is rejected; the relays stay.
	if err := os.WriteFile(f.cfgPath, append(good, []byte("\n[[relay]]\nname = \"Bad Name\"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	f.d.reload(ctx, f.cfgPath, f.getenv)
	if _, ok := f.d.config().RelayByName("relay-1"); !ok || len(f.d.config().Relays) != 1 {
		t.Fatalf("a bad reload changed the relays: %+v", f.d.config().Relays)
	}
	// A good file adds a relay without dropping the Slack connection.
	conns := f.slack.Connections()
	if err := os.WriteFile(f.cfgPath, append(good, []byte("\n[[relay]]\nname = \"relay-2\"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	f.d.reload(ctx, f.cfgPath, f.getenv)
	if _, ok := f.d.config().RelayByName("relay-2"); !ok {
		t.Fatal("reload did not add relay-2")
	}
	rs, err := f.d.store.Relays(ctx, false)
	if err != nil || len(rs) != 2 {
		t.Fatalf("stored relays after reload: %v %v", rs, err)
	}
	if f.slack.Connections() != conns {
		t.Error("reload reconnected to Slack")
	}
	env := f.slack.SendEnvelope(slackfake.EnvelopeSlashCommands,
		slackfake.Slash{Text: "relays", ResponseURL: f.slack.ResponseURL("rl")}.Payload())
	f.wait(t, "the relays answer", func() bool {
		if len(f.slack.AcksFor(env)) == 0 {
			return false
		}
		_, ok := f.messageOn("rl")
		return ok || strings.Contains(string(f.slack.AcksFor(env)[0].Payload), "relay-2")
	})
}

func TestServeRefusesWithoutTokens(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte("[probing]\nschedule = \"off\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := svcTestRun(t, "", "serve", "--config", path)
	if code != exitUsage || !strings.Contains(stderr, "SLACK_BOT_TOKEN") {
		t.Errorf("serve without tokens: exit %d, stderr %q; want 2 naming SLACK_BOT_TOKEN", code, stderr)
	}
}

func httpGet(t *testing.T, u string, want int) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d %s, want %d", u, resp.StatusCode, b, want)
	}
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestServeAlertsLifecycle: probing rounds against a path that breaks and
// heals post exactly one confirmed alert, take an Acknowledge, and post one
// resolution in the alert's thread — with Slack rate-limiting and failing
// for a while.
func TestServeAlertsLifecycle(t *testing.T) {
	// Acknowledging an alert is for admins ([access] admins).
	f := startServe(t, "socket", "\n[access]\nadmins = [\"UOPS\"]\n")
	ctx := context.Background()
	alertsIn := func() []slackfake.Message {
		var out []slackfake.Message
		for _, m := range f.slack.Messages() {
			if m.Method == "chat.postMessage" && m.Channel == "C0456EFGH" {
				out = append(out, m)
			}
		}
		return out
	}
	round := func() {
		t.Helper()
		if err := f.d.mon.Round(ctx); err != nil {
			t.Fatalf("probe round: %v", err)
		}
	}

	f.smtp.SetBehavior(smtptest.ResetAfterReady)
	round() // one failure: watch, no alert
	f.slack.FailNext("chat.postMessage", 429, time.Second, "", 1)
	f.slack.FailNext("chat.postMessage", 500, 0, "", 2)
	round()
	round() // third failure in a row: investigate → confirmed alert
	f.wait(t, "the alert", func() bool { return len(alertsIn()) >= 1 })
	alert := alertsIn()[0]
	text := blocksText(alert.Blocks)
	for _, want := range []string{"relay-1", "investigate", "tls_reset", message.ActionAcknowledge, message.ActionMute, message.ActionRerun} {
		if !strings.Contains(text, want) {
			t.Errorf("alert lacks %q: %s", want, text)
		}
	}
	ack, ok := buttonValue(alert.Blocks, message.ActionAcknowledge)
	if !ok {
		t.Fatal("alert has no Acknowledge button")
	}
	f.slack.SendEnvelope(slackfake.EnvelopeInteractive, slackfake.Action{
		ActionID: message.ActionAcknowledge, BlockID: "actions", Value: ack, UserID: "UOPS",
		ChannelID: "C0456EFGH", MessageTS: alert.TS, ResponseURL: f.slack.ResponseURL("ack"),
	}.Payload())
	f.wait(t, "the acknowledgement", func() bool {
		for _, m := range f.slack.Messages() {
			if strings.Contains(blocksText(m.Blocks)+m.Text, "UOPS") {
				return true
			}
		}
		return false
	})

	f.smtp.SetBehavior(smtptest.Gmail)
	round()
	round() // two successes: back to ok → resolution in the thread
	f.wait(t, "the resolution in the alert's thread", func() bool {
		for _, m := range f.slack.Messages() {
			if m.Method == "chat.postMessage" && m.ThreadTS == alert.TS && strings.Contains(strings.ToLower(blocksText(m.Blocks)+m.Text), "resolved") {
				return true
			}
		}
		return false
	})
	if n := len(alertsIn()); n < 2 {
		t.Errorf("%d messages in the alert channel, want the alert and its resolution", n)
	}
	top := 0
	for _, m := range alertsIn() {
		if m.ThreadTS == "" {
			top++
		}
	}
	if top != 1 {
		t.Errorf("%d top-level alerts for one incident (Slack failed 3 times on the way), want exactly 1", top)
	}
}
