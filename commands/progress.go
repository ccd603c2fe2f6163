package commands

import (
	"context"
	"fmt"
	"strings"

	"github.com/gmailtls/gmailtls/probe"
)

// progressKey carries a check's result callback in a context.
type progressKey struct{}

// WithProgress returns ctx carrying fn: a check run under it (the check
// verb and its Re-run button) calls fn with each probe result as it
// arrives (monitor.Check.OnResult), before the answer is complete. The
// console and the CLI print them; chat waits for the whole answer.
func WithProgress(ctx context.Context, fn func(probe.Result)) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

// progressOf is the callback WithProgress put in ctx, or nil.
func progressOf(ctx context.Context) func(probe.Result) {
	fn, _ := ctx.Value(progressKey{}).(func(probe.Result))
	return fn
}

// ResultLine is one probe result as a progress line for a terminal: the
// relay, the MX host and address (when the host is no address; the source address when there is one,
// the engine when it is a relay's own tool), then "ok" with the TLS
// version and the time, or the failure class with the stage and the
// time it took.
func ResultLine(r probe.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s", r.Relay, r.MX)
	if r.IP != "" && r.IP != r.MX {
		fmt.Fprintf(&b, " %s", r.IP)
	}
	if r.SourceIP != "" {
		fmt.Fprintf(&b, " from %s", r.SourceIP)
	}
	if r.Engine != "" && r.Engine != probe.EngineNative {
		fmt.Fprintf(&b, " (%s)", r.Engine)
	}
	took := fmt.Sprintf("%.0f ms", r.Timings.Total)
	if r.Timings.Total >= 1000 {
		took = fmt.Sprintf("%.1f s", r.Timings.Total/1000)
	}
	if r.OK {
		b.WriteString("  ok")
		if r.TLS != nil && r.TLS.Version != "" {
			fmt.Fprintf(&b, " %s", r.TLS.Version)
		}
		fmt.Fprintf(&b, "  %s", took)
		return b.String()
	}
	fmt.Fprintf(&b, "  %s", r.Failure)
	if r.Stage != "" {
		fmt.Fprintf(&b, " at %s", r.Stage)
	}
	fmt.Fprintf(&b, "  %s", took)
	return b.String()
}
