package commands

import (
	"context"
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gmailtls/gmailtls/internal/golden"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/terminal"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), []byte(got), *update, "-update")
}

// TestRenderTextGolden renders each response shape as the console shows
// it. The clock and the relays are fakes, so the output is stable.
func TestRenderTextGolden(t *testing.T) {
	e := newTestEnv(t)
	// One relay at a time: run ids in the order of the relays.
	e.concurrency = 1
	e.restart()
	ctx := context.Background()
	var transcriptBtn, evidenceBtn message.Button
	steps := []struct {
		file string
		run  func() message.Response
	}{
		{"help.txt", func() message.Response { return e.h.Do(ctx, slash("help")) }},
		{"help_check.txt", func() message.Response { return e.h.Do(ctx, slash("help check")) }},
		{"syntax_error.txt", func() message.Response { return e.h.Do(ctx, slash("history relay-1 yesterday")) }},
		{"refused.txt", func() message.Response { return e.h.Do(ctx, slash("resume relay-1")) }},
		{"check_ok.txt", func() message.Response {
			e.clock.Advance(5 * 60e9)
			return e.h.Do(ctx, slash("check relay-1"))
		}},
		{"check_fail.txt", func() message.Response {
			e.clock.Advance(5 * 60e9)
			e.runners["relay-2"].Set("tls_reset")
			r := e.h.Do(ctx, slash("check relay-2"))
			for _, b := range r.Buttons {
				switch b.Action {
				case message.ActionTranscript:
					transcriptBtn = b
				case message.ActionEvidence:
					evidenceBtn = b
				}
			}
			return r
		}},
		{"transcript.txt", func() message.Response {
			return e.h.Do(ctx, message.Request{Action: message.ActionTranscript, Value: transcriptBtn.Value, UserID: "UALICE", Source: message.SourceConsole})
		}},
		{"evidence.txt", func() message.Response {
			return e.h.Do(ctx, message.Request{Action: message.ActionEvidence, Value: evidenceBtn.Value, UserID: "UALICE", Source: message.SourceConsole})
		}},
		{"check_all.txt", func() message.Response {
			e.clock.Advance(5 * 60e9)
			e.runners["relay-3"].Set("cert_expired")
			return e.h.Do(ctx, slash("check all"))
		}},
		{"status.txt", func() message.Response {
			e.clock.Advance(5 * 60e9)
			e.h.Do(ctx, slash("check relay-2"))
			e.clock.Advance(5 * 60e9)
			e.h.Do(ctx, slash("check all"))
			return e.h.Do(ctx, slash("status"))
		}},
		{"history.txt", func() message.Response { return e.h.Do(ctx, slash("history relay-2 2h")) }},
		{"relays.txt", func() message.Response { return e.h.Do(ctx, slash("relays")) }},
		{"report.txt", func() message.Response { return e.h.Do(ctx, slash("report")) }},
	}
	for _, s := range steps {
		text := renderString(t, s.run())
		for i, line := range strings.Split(text, "\n") {
			if n := utf8.RuneCountInString(line); n > terminal.Width {
				t.Errorf("%s line %d is %d columns wide: %q", s.file, i+1, n, line)
			}
		}
		checkGolden(t, s.file, text)
	}
}
