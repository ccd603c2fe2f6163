package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// interruptOnConnect cancels the returned context once srv has accepted a
// connection: Ctrl-C while a probe stalls on a silent server.
func interruptOnConnect(t *testing.T, srv *smtptest.Server) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for srv.Connections() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	return ctx
}

// TestProbeRecordInterrupted: `gmailtls probe --record` interrupted while
// the server stalls prints "interrupted", exits 130, prints no report and
// stores no row: a cancelled probe is never a result.
func TestProbeRecordInterrupted(t *testing.T) {
	cfgPath, srv := svcTestSetup(t)
	srv.SetBehavior(smtptest.HangBanner)
	code, out, errs := runEnv(interruptOnConnect(t, srv), t, nil, "probe", "--config", cfgPath, "--relay", "relay-1", "--record", "--no-retry")
	if code != exitInterrupted || !strings.Contains(errs, "interrupted") || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 130 and interrupted", code, out, errs)
	}
	if hist := mustRun(t, "history", "--config", cfgPath, "--json"); !strings.Contains(hist, `"results": []`) {
		t.Errorf("the interrupted probe was stored:\n%s", hist)
	}
}

// TestConsoleCheckInterrupted: the console equivalent: Ctrl-C during
// "check relay-1" exits 130 with "interrupted", stores no row and does
// not escalate the relay.
func TestConsoleCheckInterrupted(t *testing.T) {
	cfgPath, srv := svcTestSetup(t)
	srv.SetBehavior(smtptest.HangBanner)
	var code int
	var out, errs string
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ob, eb strings.Builder
		e := &env{stdin: strings.NewReader("check relay-1\n"), stdout: &ob, stderr: &eb, getenv: func(string) string { return "" }}
		code = dispatch(interruptOnConnect(t, srv), e, []string{"console", "--config", cfgPath})
		out, errs = ob.String(), eb.String()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the console did not end after Ctrl-C")
	}
	if code != exitInterrupted || !strings.Contains(errs+out, "interrupted") || strings.Contains(out, "context canceled") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 130 and interrupted", code, out, errs)
	}
	if hist := mustRun(t, "history", "--config", cfgPath, "--json"); !strings.Contains(hist, `"results": []`) {
		t.Errorf("the interrupted check was stored:\n%s", hist)
	}
	if st := mustRun(t, "status", "--config", cfgPath, "--json"); strings.Contains(st, `"level": "watch"`) || strings.Contains(st, `"level": "investigate"`) {
		t.Errorf("the interrupted check escalated a relay:\n%s", st)
	}
}
