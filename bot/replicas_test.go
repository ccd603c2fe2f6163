package bot

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/internal/slackfake"
	"github.com/gmailtls/gmailtls/storage"
)

// TestSocketModeRedeliveryToAnotherReplicaRunsOnce: two bots (replicas)
// share one database; Slack redelivers an envelope handled by the first
// on the second's connection: the second acks it empty and runs nothing.
func TestSocketModeRedeliveryToAnotherReplicaRunsOnce(t *testing.T) {
	st, err := storage.Open(context.Background(), filepath.Join(t.TempDir(), "gmailtls.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	shared := func(c *Config) { c.Replay = st }
	h1, h2 := &fakeHandler{}, &fakeHandler{}
	tb1 := startBot(t, fake, h1, shared)
	tb1.waitReady(t)
	waitFor(t, fake, "the first replica's connection", func() bool { return slices.Equal(fake.ConnectionIDs(), []int{1}) })
	tb2 := startBot(t, fake, h2, shared)
	tb2.waitReady(t)
	waitFor(t, fake, "both connections", func() bool { return slices.Equal(fake.ConnectionIDs(), []int{1, 2}) })

	id, err := fake.SendEnvelopeTo(1, slackfake.EnvelopeSlashCommands, slackfake.Slash{Text: "check relay-1", ResponseURL: fake.ResponseURL("r")}.Payload())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fake, "the ack", func() bool { return len(fake.AcksFor(id)) == 1 })
	if err := fake.ResendEnvelopeTo(2, id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, fake, "the other replica's ack", func() bool { return len(fake.AcksFor(id)) == 2 })
	if ack := fake.AcksFor(id)[1]; ack.Conn != 2 || ack.Payload != nil {
		t.Errorf("the redelivery's ack: %+v (%s), want an empty ack on connection 2", ack, ack.Payload)
	}
	waitFor(t, fake, "the result", func() bool { return len(messagesTo(fake, "r")) == 1 })
	// A button press redelivered the same way.
	press, err := fake.SendEnvelopeTo(2, slackfake.EnvelopeInteractive, slackfake.Action{ActionID: "gmailtls_rerun", Value: "1", ResponseURL: fake.ResponseURL("p")}.Payload())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fake, "the press's ack", func() bool { return len(fake.AcksFor(press)) == 1 })
	if err := fake.ResendEnvelopeTo(1, press); err != nil {
		t.Fatal(err)
	}
	waitFor(t, fake, "the press's second ack", func() bool { return len(fake.AcksFor(press)) == 2 })
	waitFor(t, fake, "the press's result", func() bool { return len(messagesTo(fake, "p")) == 1 })
	tb1.stop(t)
	tb2.stop(t)
	acks1, runs1 := h1.calls()
	acks2, runs2 := h2.calls()
	if len(acks1) != 1 || len(runs1) != 1 || len(acks2) != 1 || len(runs2) != 1 {
		t.Errorf("replica 1 acknowledged %d and ran %d, replica 2 %d and %d; want each its own envelope once",
			len(acks1), len(runs1), len(acks2), len(runs2))
	}
	if !strings.Contains(tb2.logs.String(), "not run again") || !strings.Contains(tb1.logs.String(), "not run again") {
		t.Errorf("the redeliveries are not logged:\n%s\n%s", tb1.logs.String(), tb2.logs.String())
	}
}

// TestSocketModeRedeliveryCheckFailureRuns: when the shared memory cannot
// be reached, an envelope is handled anyway (a database hiccup must not
// leave a command unanswered), and the process's own memory still keeps a
// redelivery to the same replica from running twice.
func TestSocketModeRedeliveryCheckFailureRuns(t *testing.T) {
	fake := slackfake.New(slackfake.Options{})
	defer fake.Close()
	h := &fakeHandler{}
	tb := startBot(t, fake, h, func(c *Config) { c.Replay = failingReplay{} })
	tb.waitReady(t)
	id := fake.SendEnvelope(slackfake.EnvelopeSlashCommands, slackfake.Slash{Text: "check relay-1", ResponseURL: fake.ResponseURL("r")}.Payload())
	waitFor(t, fake, "the ack", func() bool { return len(fake.AcksFor(id)) == 1 })
	fake.ResendEnvelope(id)
	waitFor(t, fake, "the second ack", func() bool { return len(fake.AcksFor(id)) == 2 })
	waitFor(t, fake, "the result", func() bool { return len(messagesTo(fake, "r")) == 1 })
	tb.stop(t)
	if acks, runs := h.calls(); len(acks) != 1 || len(runs) != 1 {
		t.Errorf("%d acks, %d runs; want the envelope run once", len(acks), len(runs))
	}
	if !strings.Contains(tb.logs.String(), "could not check the envelope against the other replicas") {
		t.Errorf("the failed check is not logged:\n%s", tb.logs.String())
	}
}
