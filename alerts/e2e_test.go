package alerts_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/alerts"
	"github.com/gmailtls/gmailtls/bot"
	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/outbox"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// process is one life of gmailtls serve, wired as serve does: store,
// monitor, alerter, command handler (which routes the alert buttons to the
// alerter), outbox worker and bot.
type process struct {
	store  *storage.Store
	mon    *monitor.Monitor
	h      *commands.Handler
	al     *alerts.Alerter
	worker *outbox.Worker
	bot    *bot.Bot
}

// serveSlack runs the bot in Socket Mode against the stand-in until the
// test ends.
func (p *process) serveSlack(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.bot.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bot: %v", err)
		}
	})
}

// buttonValue finds the value of the button with the action in blocks.
func buttonValue(blocks []map[string]any, action string) (string, bool) {
	for _, b := range blocks {
		els, _ := b["elements"].([]any)
		for _, e := range els {
			m, _ := e.(map[string]any)
			if id, _ := m["action_id"].(string); strings.SplitN(id, "#", 2)[0] == action {
				v, _ := m["value"].(string)
				return v, true
			}
		}
	}
	return "", false
}

// world is what outlives a process: the test servers, Slack, the clock
// offset and the database file.
type world struct {
	t       *testing.T
	path    string
	cfg     *config.Config
	runners map[string]relay.Runner
	servers map[string]*smtptest.Server
	names   []string
	slack   *slackfake.Server
	offset  atomic.Int64 // how far the alerter's and worker's clock is ahead
}

func (w *world) now() time.Time { return time.Now().Add(time.Duration(w.offset.Load())) }

func (w *world) start() *process {
	t := w.t
	ctx := context.Background()
	s, err := storage.Open(ctx, w.path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SyncRelays(ctx, relay.RelaySpecs(w.cfg)); err != nil {
		t.Fatal(err)
	}
	p := &process{store: s}
	p.mon = monitor.New(monitor.Deps{Config: w.cfg, Store: s, Runners: w.runners})
	p.al = &alerts.Alerter{Store: s, Channel: "CALERTS", Now: w.now, Notify: func() { p.worker.Notify() }, Monitor: p.mon}
	p.h = commands.New(commands.Deps{Service: p.mon, Alerts: p.al})
	b, err := bot.New(bot.Config{BotToken: slackfake.DefaultBotToken, AppToken: slackfake.DefaultAppToken,
		APIURL: w.slack.APIURL(), APIRetries: -1, HTTPClient: w.slack.Client(),
		ResponseURLHosts: []string{strings.TrimPrefix(w.slack.URL(), "http://")}}, p.h)
	if err != nil {
		t.Fatal(err)
	}
	p.bot = b
	p.worker = &outbox.Worker{
		Store:      s,
		Sender:     bot.NewSender(b, nil),
		Now:        w.now,
		MinBackoff: time.Second,
	}
	return p
}

// kill stops the process without delivering anything more.
func (p *process) kill(t *testing.T) {
	if err := p.store.Close(); err != nil {
		t.Fatal(err)
	}
}

// round is the probing job: every relay, then the alerter reconciles.
func (w *world) round(p *process) {
	w.t.Helper()
	ctx := context.Background()
	if _, err := p.mon.CheckAll(ctx, monitor.Check{Trigger: message.SourceSchedule, SkipPaused: true}); err != nil {
		w.t.Fatal(err)
	}
	if err := p.al.Sync(ctx); err != nil {
		w.t.Fatal(err)
	}
}

// deliver lets the worker run until the outbox is empty, a minute of its
// clock per pass (backoffs and Retry-After pass without waiting).
func (w *world) deliver(p *process) {
	w.t.Helper()
	ctx := context.Background()
	for range 100 {
		if _, err := p.worker.Drain(ctx); err != nil {
			w.t.Fatal(err)
		}
		pending, _, failed, err := p.store.OutboxStats(ctx, w.now())
		if err != nil {
			w.t.Fatal(err)
		}
		if failed > 0 {
			w.t.Fatalf("%d messages failed", failed)
		}
		if pending == 0 {
			return
		}
		w.offset.Add(int64(time.Minute))
	}
	w.t.Fatal("outbox not drained")
}

func (w *world) set(relayName string, b smtptest.Behavior) { w.servers[relayName].SetBehavior(b) }

// posted returns the messages posted (not updates) whose text contains s.
func (w *world) posted(s string) []slackfake.Message {
	var out []slackfake.Message
	for _, m := range w.slack.Messages() {
		if m.Method == "chat.postMessage" && strings.Contains(m.Text+" "+fmt.Sprint(m.Blocks), s) {
			out = append(out, m)
		}
	}
	return out
}

func (w *world) updates(ts string) []slackfake.Message {
	var out []slackfake.Message
	for _, m := range w.slack.Messages() {
		if m.Method == "chat.update" && m.TS == ts {
			out = append(out, m)
		}
	}
	return out
}

func (w *world) one(s string) slackfake.Message {
	w.t.Helper()
	ms := w.posted(s)
	if len(ms) != 1 {
		var texts []string
		for _, m := range w.slack.Messages() {
			texts = append(texts, m.Method+" "+m.Text)
		}
		w.t.Fatalf("%d messages with %q, want 1; all:\n%s", len(ms), s, strings.Join(texts, "\n"))
	}
	return ms[0]
}

// TestEndToEnd runs gmailtls against loopback STARTTLS servers switched
// from good to failing and back, through the Slack stand-in answering 429
// and 500 for a while, with a process restart between writing and
// delivering: it posts exactly one alert per incident (confirmed by a
// re-probe), a reminder, the acknowledgement, and one resolution per
// incident in its thread.
func TestEndToEnd(t *testing.T) {
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, path: filepath.Join(t.TempDir(), "gmailtls.db"), cfg: config.Default(),
		runners: map[string]relay.Runner{}, servers: map[string]*smtptest.Server{}}
	w.cfg.Access.Admins = []string{"U024BE7LH"} // who acknowledges below
	w.slack = slackfake.New(slackfake.Options{})
	defer w.slack.Close()
	for i, name := range []string{"relay-1", "relay-2", "relay-3"} {
		srv := smtptest.StartT(t, smtptest.Options{CA: ca, Addr: fmt.Sprintf("127.0.0.%d:0", 11+i)})
		w.servers[name] = srv
		w.names = append(w.names, name)
		w.cfg.Relays = append(w.cfg.Relays, config.Relay{Name: name, Kind: relay.KindLocal})
		w.runners[name] = relay.NewLocal(name, probe.Config{Relay: name, Domain: "gmail.test",
			MX: []probe.Target{{Host: srv.Host(), Port: srv.Port()}}, ServerName: smtptest.DefaultHostname,
			RootCAs: ca.Pool, HelloName: "relay.test.example", Resolver: smtptest.NoDNS{}, Timeout: 5 * time.Second, NoRetry: true}, nil)
	}
	p := w.start()

	// All good, then relay-1 fails once: a blip, nothing posted.
	w.round(p)
	w.set("relay-1", smtptest.ResetAfterReady)
	w.round(p)
	w.deliver(p)
	if n := len(w.slack.Messages()); n != 0 {
		t.Fatalf("%d messages after a single failure", n)
	}

	// Three failures: one alert, confirmed by the re-probe, delivered once
	// although Slack rate-limits and then fails for a while.
	w.round(p)
	w.round(p)
	w.slack.FailNext("chat.postMessage", 429, time.Second, "", 1)
	w.slack.FailNext("chat.postMessage", 500, 0, "", 3)
	w.deliver(p)
	a1 := w.one("relay-1: STARTTLS toward Gmail failing")
	if len(w.slack.CallsTo("chat.postMessage")) != 5 {
		t.Errorf("%d chat.postMessage calls, want 4 failures and 1 success", len(w.slack.CallsTo("chat.postMessage")))
	}
	blocks := fmt.Sprint(a1.Blocks)
	for _, want := range []string{"Re-probe from relay-1", "tls_reset", message.ActionAcknowledge, message.ActionMute, message.ActionRerun} {
		if !strings.Contains(blocks, want) {
			t.Errorf("alert blocks lack %q: %s", want, blocks)
		}
	}

	// relay-2 fails too: its alert and the global incident are written,
	// then the process dies before delivering them.
	w.set("relay-2", smtptest.ResetAfterReady)
	for range 3 {
		w.round(p)
	}
	p.kill(t)
	if n := len(w.posted("")); n != 1 {
		t.Fatalf("%d messages before the restart, want 1", n)
	}
	p = w.start()
	w.round(p) // the restarted process reconciles: nothing new to write
	w.deliver(p)
	w.one("relay-2: STARTTLS toward Gmail failing")
	global := w.one("All relays: STARTTLS toward Gmail failing, incident")

	// Nobody acknowledges for an hour: one reminder in the thread.
	w.offset.Add(int64(time.Hour))
	if err := p.al.Remind(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.deliver(p)
	if r := w.one("Reminder: All relays"); r.ThreadTS != global.TS {
		t.Errorf("reminder in thread %q, want %q", r.ThreadTS, global.TS)
	}
	// Acknowledge, pressed in Slack: the person who pressed it is told,
	// the alert is updated to say who (a mention, not escaped), its
	// Acknowledge button goes, and no more reminders come.
	var id int64
	for _, inc := range mustOpen(t, p.store) {
		if inc.Relay == "" {
			id = inc.ID
		}
	}
	value, ok := buttonValue(global.Blocks, message.ActionAcknowledge)
	if !ok || value != alerts.IncidentValue(id) {
		t.Fatalf("global alert's Acknowledge button = %q %v, want incident %d", value, ok, id)
	}
	p.serveSlack(t)
	w.slack.SendEnvelope(slackfake.EnvelopeInteractive, slackfake.Action{ActionID: message.ActionAcknowledge, BlockID: "actions",
		Value: value, UserID: "U024BE7LH", ChannelID: "CALERTS", MessageTS: global.TS, ResponseURL: w.slack.ResponseURL("ack")}.Payload())
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answered := func() bool {
		for _, m := range w.slack.Messages() {
			if m.ResponseID == "ack" && strings.Contains(m.Text+fmt.Sprint(m.Blocks), "acknowledged by <@U024BE7LH>") {
				return true
			}
		}
		return false
	}
	if err := w.slack.WaitFor(wctx, answered); err != nil {
		t.Fatalf("no answer to the Acknowledge button: %v", err)
	}
	w.deliver(p)
	up := w.updates(global.TS)
	if len(up) != 1 || !strings.Contains(fmt.Sprint(up[0].Blocks), "Acknowledged by <@U024BE7LH> at") {
		t.Fatalf("acknowledged update = %+v", up)
	}
	if _, ok := buttonValue(up[0].Blocks, message.ActionAcknowledge); ok {
		t.Error("the acknowledged alert still has an Acknowledge button")
	}
	if inc, err := p.store.IncidentByID(context.Background(), id); err != nil || inc.AckedBy != "U024BE7LH" {
		t.Errorf("incident after the acknowledgement = %+v %v", inc, err)
	}
	w.offset.Add(int64(2 * time.Hour))
	if err := p.al.Remind(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.deliver(p)
	if n := len(w.posted("Reminder")); n != 1 {
		t.Errorf("%d reminders, want 1 (acknowledged)", n)
	}

	// Back to good: after two good rounds, one resolution per incident in
	// its alert's thread.
	w.set("relay-1", smtptest.Gmail)
	w.set("relay-2", smtptest.Gmail)
	w.round(p)
	w.round(p)
	w.round(p)
	w.deliver(p)
	for _, c := range []struct{ alert, resolution string }{
		{"relay-1: STARTTLS", "relay-1 resolved after"},
		{"relay-2: STARTTLS", "relay-2 resolved after"},
		{"All relays: STARTTLS", "All relays resolved after"},
	} {
		a := w.one(c.alert)
		if r := w.one(c.resolution); r.ThreadTS != a.TS {
			t.Errorf("%q in thread %q, want %q", c.resolution, r.ThreadTS, a.TS)
		}
	}
	if n := len(mustOpen(t, p.store)); n != 0 {
		t.Errorf("%d incidents still open", n)
	}
	// Exactly: three alerts, one reminder, three resolutions.
	if n := len(w.posted("")); n != 7 {
		var texts []string
		for _, m := range w.posted("") {
			texts = append(texts, m.Text)
		}
		t.Errorf("%d messages posted, want 7:\n%s", n, strings.Join(texts, "\n"))
	}
}

func mustOpen(t *testing.T, s *storage.Store) []storage.Incident {
	t.Helper()
	inc, err := s.OpenIncidents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return inc
}
