package monitor

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/postfixlab"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/storage"
)

// TestMailLogRuleRealPostfix: a local relay whose probe of a healthy MX
// on 127.0.0.1 passes, but whose mail log is a real Postfix relay's that
// logged an SSL_connect error toward 127.0.0.1 for each of its three
// messages, is at watch (one_host, handshake) with the mail log advice
// once [escalation] log_failures is 3: the log rule reads Postfix's own
// lines, not only the hand-written summaries of the other tests.
func TestMailLogRuleRealPostfix(t *testing.T) {
	postfixlab.Require(t)
	lab := postfixlab.StartRelay(t, postfixlab.RelayOptions{})
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	mx := smtptest.StartT(t, smtptest.Options{Behavior: smtptest.Gmail, CA: ca, Hostname: smtptest.DefaultHostname, Addr: "127.0.0.1:0"})

	cfg := config.Default()
	cfg.Target.MX = []string{mx.Addr()}
	cfg.Relays = []config.Relay{{Name: "relay-1", Kind: relay.KindLocal}}
	cfg.Escalation.LogFailures = len(postfixlab.DefaultRelayDomains)
	local := relay.NewLocal("relay-1", probe.Config{
		Domain: "gmail.test", MX: []probe.Target{{Host: mx.Host(), Port: mx.Port()}}, ServerName: smtptest.DefaultHostname,
		RootCAs: ca.Pool, HelloName: "relay.test.example", Resolver: smtptest.NoDNS{}, Timeout: 10 * time.Second, NoRetry: true,
	}, nil)
	local.MailLog = lab.LogPath()

	ctx := context.Background()
	store, err := storage.Open(ctx, filepath.Join(t.TempDir(), "gmailtls.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.SyncRelays(ctx, relay.RelaySpecs(cfg)); err != nil {
		t.Fatal(err)
	}
	m := New(Deps{Config: cfg, Store: store, Runners: map[string]relay.Runner{"relay-1": local}})
	res, err := m.CheckRelay(ctx, Check{Relay: "relay-1", Trigger: message.SourceSchedule, RequestedBy: "scheduler"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("the probe of the healthy MX failed: %+v", res.Report)
	}
	if res.State.Level != escalation.LevelWatch || res.State.Scope != escalation.ScopeOneHost ||
		res.State.Cause != escalation.CauseHandshake || res.State.Advice != escalation.AdviceLogHandshake || !res.State.LogRule {
		t.Fatalf("state %s (%s, %s) %q, want watch (one_host, handshake) from the relay's logged SSL_connect errors",
			res.State.Level, res.State.Scope, res.State.Cause, res.State.Advice)
	}
	if res.State.LogFailures < len(postfixlab.DefaultRelayDomains) || res.State.LogStuck != len(postfixlab.DefaultRelayDomains) {
		t.Errorf("log failures %d, stuck %d: want at least %d SSL_connect errors and every deferred queue ID (the Workspace one too)",
			res.State.LogFailures, res.State.LogStuck, len(postfixlab.DefaultRelayDomains))
	}
	samples, err := store.LogSamples(ctx, "relay-1", time.Time{}, 0)
	if err != nil || len(samples) != 1 || samples[0].TLSFailures < len(postfixlab.DefaultRelayDomains) {
		t.Errorf("stored samples %+v %v, want one with the relay's TLS failures", samples, err)
	}
}
