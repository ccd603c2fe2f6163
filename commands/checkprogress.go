package commands

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/monitor"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/gmailtls/gmailtls/relay"
	"github.com/gmailtls/gmailtls/terminal"
)

// CheckProgress prints a check's results to out as they arrive, one line
// per MX address, and on a terminal a live elapsed counter naming what is
// still awaited ("waiting for relay-2's agent… 12 s"). relayArg is the
// check's relay argument (message.AllRelays for all). It returns the
// context to run the check under and the function that ends the progress
// before the answer is printed.
func CheckProgress(ctx context.Context, out io.Writer, snap *monitor.Snapshot, relayArg string) (context.Context, func()) {
	names := []string{relayArg}
	if relayArg == message.AllRelays {
		names = snap.Names()
	}
	var agents []string // agents not answered yet
	for _, n := range names {
		if r, err := snap.Runner(n); err == nil && r.Kind() == relay.KindAgent {
			agents = append(agents, n)
		}
	}
	what := "probing " + relayArg
	if relayArg == message.AllRelays {
		what = fmt.Sprintf("probing %d relays", len(names))
	}
	status := func() string {
		if len(agents) == 0 {
			return what
		}
		waiting := make([]string, len(agents))
		for i, a := range agents {
			waiting[i] = a + "'s agent"
		}
		if len(agents) == len(names) {
			return "waiting for " + strings.Join(waiting, ", ")
		}
		return what + "; waiting for " + strings.Join(waiting, ", ")
	}
	p := terminal.NewProgress(out, terminal.IsTerminal(out))
	var mu sync.Mutex
	p.Start(status())
	ctx = WithProgress(ctx, func(r probe.Result) {
		p.Line(ResultLine(r))
		mu.Lock()
		defer mu.Unlock()
		if i := slices.Index(agents, r.Relay); i >= 0 {
			agents = slices.Delete(agents, i, i+1)
			p.SetStatus(status())
		}
	})
	return ctx, p.Stop
}

// ProgressDoer is the console's Doer: a check typed in the console (or
// its Re-run button) shows its progress on out while it runs.
type ProgressDoer struct {
	// Next runs the request.
	Next terminal.Doer
	// Out is where the progress goes.
	Out io.Writer
	// Snap is the configuration in force (monitor.Monitor.Snapshot).
	Snap func() *monitor.Snapshot
}

// Do runs req, with progress when it is a check.
func (d ProgressDoer) Do(ctx context.Context, req message.Request) message.Response {
	relayArg := ""
	if req.Action == "" {
		if cmd, err := Parse(req.Text); err == nil && cmd.Verb == VerbCheck {
			relayArg = cmd.Relay
		}
	}
	if relayArg == "" {
		return d.Next.Do(ctx, req)
	}
	ctx, stop := CheckProgress(ctx, d.Out, d.Snap(), relayArg)
	defer stop()
	return d.Next.Do(ctx, req)
}

// StopBeforeWrite is a writer that ends the progress (once, shared with
// its twin on the other stream) before its first write, so that the
// answer starts on a clean line.
type StopBeforeWrite struct {
	// W is the stream written to.
	W io.Writer
	// Once is shared with the twin on the other stream.
	Once *sync.Once
	// Stop ends the progress.
	Stop func()
}

// Write ends the progress once, then writes p.
func (s StopBeforeWrite) Write(p []byte) (int, error) {
	s.Once.Do(s.Stop)
	return s.W.Write(p)
}
