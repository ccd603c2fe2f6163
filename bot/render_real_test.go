package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/internal/golden"
	"github.com/gmailtls/gmailtls/internal/manualclock"
	"github.com/gmailtls/gmailtls/internal/smtptest"
	"github.com/gmailtls/gmailtls/message"
)

// The golden files of TestRenderRealGolden are made from what the real
// commands.Handler answers, not from hand-written Responses: a check,
// buttons and reports run against a real SQLite file and a relay.Local
// probing a loopback STARTTLS server, and each answer (the acknowledgement
// and the final response) is rendered by RenderMessages, compared with
// testdata/real_<name>.json and checked against Slack's limits.
//
// Determinism. The handler, the store, the relay and the probe share one
// manual clock that moves only between commands (2 minutes each), so every
// stage timing is "0 ms" and the times shown follow from the clock's start.
// That start cannot be a fixed date: smtptest issues its certificates for
// [now-1h, now+1y] and the probe verifies them at the clock's time. So the
// clock starts at the current hour (time.Now truncated to the hour, after
// the server started) and normaliseReal shifts every time in the output by
// a whole number of hours onto realBase. Host names (EHLO name, relay host)
// and the relay's tools (postconf, openssl) are fakes; the server's port
// and the client's ephemeral ports are replaced by {port} and
// {client-port}. Result and run ids need no normalising: the database is
// new in every run.

// realBase is the time the golden files show for the clock's start.
var realBase = time.Date(2026, time.May, 1, 12, 0, 0, 0, time.UTC)

// realStep is how far the clock moves after each command.
const realStep = 2 * time.Minute

// fakeTools stands in for the relay host's postconf and openssl, so that
// evidence does not show the versions installed where the test runs.
type fakeTools struct{}

func (fakeTools) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	switch {
	case name == "postconf":
		return []byte("3.8.6\n"), nil
	case name == "openssl" && len(args) == 1 && args[0] == "version":
		return []byte("OpenSSL 3.0.13 30 Jan 2024 (Library: OpenSSL 3.0.13 30 Jan 2024)\n"), nil
	}
	return nil, fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

// realEnv is a real commands.Handler over a SQLite file with relay-1
// probing srv, all on clk.
type realEnv struct {
	h   *commands.Handler
	srv *smtptest.Server
	clk *manualclock.Clock
	t0  time.Time
}

func newRealEnv(t *testing.T) *realEnv {
	t.Helper()
	ca, err := smtptest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	srv := smtptest.StartT(t, smtptest.Options{CA: ca})
	t0 := time.Now().UTC().Truncate(time.Hour)
	clk := manualclock.New(t0)
	return &realEnv{h: realHandler(t, srv, clk.Now), srv: srv, clk: clk, t0: t0}
}

// realAnswer is one command's answer as the bot gets it.
type realAnswer struct {
	ack  message.Response
	more bool
	resp message.Response // the ack again when more is false
}

// do runs req like the bot does (Acknowledge, then Run when more is
// needed) from a fixed user and channel, then moves the clock on.
func (e *realEnv) do(req message.Request) realAnswer {
	ctx := context.Background()
	req.UserID, req.UserName, req.ChannelID = "U0TEST0001", "alice", "C0TEST0001"
	if req.Source == "" {
		req.Source = message.SourceSlash
	}
	a := realAnswer{}
	a.ack, a.more = e.h.Acknowledge(ctx, req)
	a.resp = a.ack
	if a.more {
		a.resp = e.h.Run(ctx, req)
	}
	e.clk.Advance(realStep)
	return a
}

// realGolden is the JSON of a golden file: the acknowledgement when there
// is a separate one, how the answer is delivered, and the rendered message
// and thread in goldenOf's shape (so checkLimits reads it).
func realGolden(t *testing.T, a realAnswer) []byte {
	t.Helper()
	var rendered struct {
		Message json.RawMessage `json:"message"`
		Thread  json.RawMessage `json:"thread,omitempty"`
	}
	if err := json.Unmarshal(goldenOf(t, a.resp), &rendered); err != nil {
		t.Fatal(err)
	}
	var ack json.RawMessage
	if a.more {
		var r struct {
			Message json.RawMessage `json:"message"`
		}
		if err := json.Unmarshal(goldenOf(t, a.ack), &r); err != nil {
			t.Fatal(err)
		}
		ack = r.Message
	}
	doc := struct {
		Ack             json.RawMessage `json:"ack,omitempty"`
		AckEphemeral    bool            `json:"ack_ephemeral,omitempty"`
		Ephemeral       bool            `json:"ephemeral"`
		ReplaceOriginal bool            `json:"replace_original"`
		Message         json.RawMessage `json:"message"`
		Thread          json.RawMessage `json:"thread,omitempty"`
	}{ack, a.more && a.ack.Ephemeral, a.resp.Ephemeral, a.resp.ReplaceOriginal, rendered.Message, rendered.Thread}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// realTimeRE matches the times the handler writes, longest forms first so
// that a date's hh:mm is not matched on its own: exact (evidence), stamp
// (contexts), the report's window, a clock of another day, a clock of
// today, and the unix time in a Re-run button's value.
var realTimeRE = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00` +
	`|\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC` +
	`|\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC` +
	`|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{1,2} \d{2}:\d{2}` +
	`|\b\d{2}:\d{2}\b` +
	`|\bat=\d+`)

var realAddrRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// normaliseReal makes data independent of the run (see the comment at the
// top of this file).
func (e *realEnv) normaliseReal(t *testing.T, data []byte) []byte {
	t.Helper()
	shift := realBase.Sub(e.t0)
	port := ":" + strconv.Itoa(e.srv.Port())
	data = realAddrRE.ReplaceAllFunc(data, func(m []byte) []byte {
		if strings.HasSuffix(string(m), port) {
			return []byte("127.0.0.1:{port}")
		}
		return []byte("127.0.0.1:{client-port}")
	})
	layouts := []string{"2006-01-02T15:04:05.000-07:00", "2006-01-02 15:04:05 MST", "2006-01-02 15:04 MST", "Jan 2 15:04", "15:04"}
	return realTimeRE.ReplaceAllFunc(data, func(m []byte) []byte {
		s := string(m)
		if sec, ok := strings.CutPrefix(s, "at="); ok {
			n, err := strconv.ParseInt(sec, 10, 64)
			if err != nil {
				t.Fatalf("normalise %q: %v", s, err)
			}
			return fmt.Appendf(nil, "at=%d", time.Unix(n, 0).Add(shift).Unix())
		}
		for _, layout := range layouts {
			tm, err := time.ParseInLocation(layout, s, time.UTC)
			if err != nil {
				continue
			}
			switch layout {
			case "Jan 2 15:04":
				tm = tm.AddDate(e.t0.Year(), 0, 0)
				if tm.After(e.t0.Add(24 * time.Hour)) {
					tm = tm.AddDate(-1, 0, 0)
				}
			case "15:04":
				// Clocks of today: the commands run within an hour of t0.
				tm = time.Date(e.t0.Year(), e.t0.Month(), e.t0.Day(), tm.Hour(), tm.Minute(), 0, 0, time.UTC)
			}
			return []byte(tm.Add(shift).UTC().Format(layout))
		}
		t.Fatalf("normalise: %q matches no layout", s)
		return nil
	})
}

// findButton returns r's button with action, failing the test without one.
func findButton(t *testing.T, r message.Response, action string) message.Button {
	t.Helper()
	for _, b := range r.Buttons {
		if b.Action == action {
			return b
		}
	}
	t.Fatalf("no %s button on %q (buttons %+v)", action, r.Title, r.Buttons)
	return message.Button{}
}

// TestRenderRealGolden runs real commands through the real
// commands.Handler, renders every answer and compares it with
// testdata/real_<name>.json (rewrite with -update), checking Slack's
// limits on every rendered message.
func TestRenderRealGolden(t *testing.T) {
	e := newRealEnv(t)
	type step struct {
		name string
		a    realAnswer
	}
	var steps []step
	run := func(name string, req message.Request) realAnswer {
		a := e.do(req)
		steps = append(steps, step{name, a})
		return a
	}
	slash := func(text string) message.Request { return message.Request{Text: text} }
	press := func(b message.Button) message.Request {
		return message.Request{Source: message.SourceButton, Action: b.Action, Value: b.Value}
	}

	run("help", slash("help"))
	if pass := run("check_pass", slash("check relay-1")); !pass.more || pass.resp.Verdict != message.VerdictOK {
		t.Errorf("check against a Gmail-like server: more=%v verdict %q, want an ack then ok", pass.more, pass.resp.Verdict)
	}
	e.srv.SetBehavior(smtptest.ResetAfterReady)
	fail := run("check_fail", slash("check relay-1")).resp
	if fail.Verdict != message.VerdictFail {
		t.Errorf("check against a resetting server: verdict %q, want fail", fail.Verdict)
	}
	rerun := run("rerun", press(findButton(t, fail, message.ActionRerun))).resp
	if !rerun.ReplaceOriginal {
		t.Error("Re-run of a check result does not replace it")
	}
	run("transcript", press(findButton(t, fail, message.ActionTranscript)))
	run("evidence_button", press(findButton(t, fail, message.ActionEvidence)))
	run("history", slash("history relay-1"))
	run("relays", slash("relays"))
	run("status", slash("status"))
	run("report", slash("report"))
	run("evidence", slash("evidence relay-1"))
	run("syntax_error", slash("chek relay-1"))
	run("unknown_relay", slash("check relay-9"))

	port := strconv.Itoa(e.srv.Port())
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			// Limits on the raw rendering, before normalising.
			raw := realGolden(t, s.a)
			checkLimits(t, "real_"+s.name, raw)
			if s.a.more {
				ack := goldenOf(t, s.a.ack)
				checkLimits(t, "real_"+s.name+" ack", ack)
				if len(ack) >= 20<<10 {
					t.Errorf("an ack of %d bytes would be dropped by Slack", len(ack))
				}
			}
			got := e.normaliseReal(t, raw)
			if regexp.MustCompile(`\b` + port + `\b`).Match(got) {
				t.Errorf("the server's port %s survived normalising:\n%s", port, got)
			}
			golden.Check(t, filepath.Join("testdata", "real_"+s.name+".json"), got, *update, "-update")
		})
	}
}
