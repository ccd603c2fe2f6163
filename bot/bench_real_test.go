package bot

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// realHandler is the bot's real commands.Handler over a SQLite file, with
// relay-1 (a relay.Local, whose host names and tools are fakes) probing
// srv, all on the clock now (nil: the time of day).
func realHandler(tb testing.TB, srv *smtptest.Server, now func() time.Time) *commands.Handler {
	tb.Helper()
	h, _ := realHandlerStore(tb, srv, now)
	return h
}

// realHandlerStore is realHandler, also returning its database (serve's
// replay memory too).
func realHandlerStore(tb testing.TB, srv *smtptest.Server, now func() time.Time) (*commands.Handler, *storage.Store) {
	tb.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.Target.MX = []string{srv.Addr()}
	cfg.Relays = []config.Relay{{Name: "relay-1", Kind: relay.KindLocal}}
	st, err := storage.Open(ctx, filepath.Join(tb.TempDir(), "gmailtls.db"), storage.Options{Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if err := st.SyncRelays(ctx, relay.RelaySpecs(cfg)); err != nil {
		tb.Fatal(err)
	}
	target, err := probe.ParseTarget(srv.Addr())
	if err != nil {
		tb.Fatal(err)
	}
	runner := relay.NewLocal("relay-1", probe.Config{
		Relay: "relay-1", MX: []probe.Target{target}, ServerName: srv.Hostname(),
		RootCAs: srv.CA().Pool, NoRetry: true, Timeout: 10 * time.Second,
		HelloName: "relay-1.test.example", Now: now,
	}, nil)
	runner.Hostname = func() (string, error) { return "relay-1.test.example", nil }
	runner.InterfaceAddrs = func() ([]net.Addr, error) { return nil, nil }
	runner.Commands = fakeTools{}
	mon := monitor.New(monitor.Deps{Config: cfg, Store: st, Runners: map[string]relay.Runner{"relay-1": runner}, Now: now,
		Hostname: func() (string, error) { return "gmailtls.test.example", nil }})
	return commands.New(commands.Deps{Service: mon, Now: now, Location: time.UTC}), st
}

// BenchmarkAckLatencyRealHandler is BenchmarkAckLatency with the real
// commands.Handler instead of a stand-in: 200 slash commands at once, a mix
// of `check relay-1` (acknowledged, then probed), `help`, a typo and an
// unknown relay (answered in full in the ack, each written to the audit
// log in SQLite), while the probes run against a loopback server that
// waits 300 ms before its greeting. As in serve, the database is also the
// replay memory every envelope id is checked against before the ack (so
// that replicas never run an envelope twice). Goal: p99 under 100 ms.
func BenchmarkAckLatencyRealHandler(b *testing.B) {
	srv := smtptest.StartT(b, smtptest.Options{GreetingDelay: 300 * time.Millisecond})
	texts := []string{"check relay-1", "help", "chek relay-1", "check relay-9"}
	var all []time.Duration
	for b.Loop() {
		fake := slackfake.New(slackfake.Options{})
		h, st := realHandlerStore(b, srv, nil)
		bot := startBotWith(b, fake, h, func(c *Config) { c.Replay = st })
		bot.waitReady(b)
		ids := make([]string, 200)
		for i := range ids {
			ids[i] = fake.SendEnvelope(slackfake.EnvelopeSlashCommands, slackfake.Slash{
				Text:        texts[i%len(texts)],
				ResponseURL: fake.ResponseURL(fmt.Sprint("r", i)),
			}.Payload())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := fake.WaitFor(ctx, func() bool { return len(fake.Acks()) >= len(ids) }); err != nil {
			b.Fatalf("%d of %d acks: %v", len(fake.Acks()), len(ids), err)
		}
		cancel()
		sent := map[string]time.Time{}
		for _, e := range fake.Envelopes() {
			sent[e.ID] = e.SentAt
		}
		for _, a := range fake.Acks() {
			all = append(all, a.At.Sub(sent[a.EnvelopeID]))
		}
		if err := bot.stop(b); err != nil {
			b.Fatal(err)
		}
		fake.Close()
	}
	b.ReportMetric(float64(percentile(all, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(all, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(all)), "acks")
}
