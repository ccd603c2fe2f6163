package terminal

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gmailtls/gmailtls/message"
)

func render(t *testing.T, r message.Response, opts Options) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, r, opts); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestPlain(t *testing.T) {
	for in, want := range map[string]string{
		"Usage: `/gmailtls history <relay> [24h|7d]`":           "Usage: /gmailtls history <relay> [24h|7d]",
		"check <relay|all> [--mx host]":                         "check <relay|all> [--mx host]",
		"*Acknowledged* by <@U024BE7LH> at 14:20":               "Acknowledged by @U024BE7LH at 14:20",
		"muted by <@U024BE7LH|alice> in <#C0456|alerts>":        "muted by @alice in #alerts",
		"<!here> see <https://example.org/runbook|the runbook>": "@here see the runbook (https://example.org/runbook)",
		"<https://example.org>":                                 "https://example.org",
		"tls_reset ×3 · one_event · a*b and 2 * 3 * 4":          "tls_reset ×3 · one_event · a*b and 2 * 3 * 4",
		"an unpaired ` stays, ```code``` does not":              "an unpaired ` stays, code does not",
		"(`x`) and `y`.": "(x) and y.",
	} {
		if got := Plain(in); got != want {
			t.Errorf("Plain(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWritePlainAndMarkup(t *testing.T) {
	r := message.Response{
		Title: "relay-2: *evidence*", Verdict: message.VerdictInfo, Ephemeral: true,
		Sections: []message.Section{
			{Heading: "Hints", Lines: []string{"Run `check relay-2`, ask <@U1|bob>"}},
			{Lines: []string{"S: 250 `literal`"}, Code: true},
			{Fields: []message.Field{{Label: "Level", Value: "*watch*"}, {Label: "By", Value: "<@U1>"}}},
		},
		Buttons: []message.Button{{Label: "Re-run"}, {Label: "Transcript"}},
		Context: "run 3",
	}
	plain := render(t, r, Options{})
	want := "[info] relay-2: evidence\n\nHints\n  Run check relay-2, ask @bob\n\n| S: 250 `literal`\n\nLevel: watch\nBy:    @U1\n\nrun 3\n"
	if plain != want {
		t.Errorf("plain:\n%s\nwant:\n%s", plain, want)
	}
	console := render(t, r, Options{Buttons: true})
	if !strings.Contains(console, "\n[1] Re-run  [2] Transcript\n") || strings.Contains(console, "only you") {
		t.Errorf("with buttons:\n%s", console)
	}
	dump := render(t, r, Options{Buttons: true, Markup: true})
	for _, w := range []string{"relay-2: *evidence*  (only you)", "Run `check relay-2`, ask <@U1|bob>", "[1] Re-run"} {
		if !strings.Contains(dump, w) {
			t.Errorf("markup kept: %q missing in\n%s", w, dump)
		}
	}
}

func TestWriteSanitizes(t *testing.T) {
	r := message.Response{
		Title:    "x\x1b[2Jy",
		Sections: []message.Section{{Lines: []string{"S: 220 \x1b]0;pwned\x07 ok\tthere", "bad \xff byte"}, Code: true}},
	}
	text := render(t, r, Options{})
	if strings.ContainsAny(text, "\x1b\x07\t") || !utf8.ValidString(text) {
		t.Fatalf("control characters reached the terminal: %q", text)
	}
	long := message.Response{Title: "t", Sections: []message.Section{{Lines: []string{strings.Repeat("a", 250)}, Code: true}}}
	text = render(t, long, Options{})
	if strings.Count(text, "a") != 250 {
		t.Fatalf("code line lost characters: %q", text)
	}
	for _, line := range strings.Split(text, "\n") {
		if utf8.RuneCountInString(line) > Width {
			t.Fatalf("line too wide: %q", line)
		}
	}
}

// echoDoer answers each request with its text, and a button.
type echoDoer struct {
	got    []message.Request
	cancel func() // when set, called during the first request
}

func (d *echoDoer) Do(_ context.Context, req message.Request) message.Response {
	d.got = append(d.got, req)
	if d.cancel != nil {
		d.cancel()
	}
	text := req.Text
	if req.Action != "" {
		text = "pressed " + req.Action
	}
	return message.Response{Title: "you said `" + text + "`", Ephemeral: true,
		Buttons: []message.Button{{Label: "Again", Action: "again", Value: "v"}}}
}

// TestConsolePiped: piped input is read line by line with no prompt; the
// answers are plain; a button is pressed by its number; quit leaves.
func TestConsolePiped(t *testing.T) {
	var out bytes.Buffer
	d := &echoDoer{}
	c := Console{Doer: d, User: "console", Out: &out}
	in := NewLines(strings.NewReader("status\n\n7\n1\nquit\nstatus\n"), &out, "gmailtls> ")
	if err := c.Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	want := "you said status\n\n[1] Again\n\nthere is no button 7; the last buttons shown were 1 to 1\nyou said pressed again\n\n[1] Again\n\n"
	if out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	if len(d.got) != 2 || d.got[0].Source != message.SourceConsole || d.got[0].UserID != "console" || d.got[1].Value != "v" {
		t.Errorf("requests: %+v", d.got)
	}
}

// TestConsoleTerminal: on a terminal the prompt is shown and lines are
// edited (backspace) and recalled (up arrow) with x/term's line editor.
func TestConsoleTerminal(t *testing.T) {
	var out bytes.Buffer
	d := &echoDoer{}
	c := Console{Doer: d, User: "console", Out: &out}
	// "statsu", two backspaces, "us", Enter; up arrow (the same line
	// again), Enter; Ctrl-D.
	keys := "statsu\x7f\x7fus\r\x1b[A\r\x04"
	if err := c.Run(context.Background(), EditLines(strings.NewReader(keys), &out, "gmailtls> ", -1)); err != nil {
		t.Fatal(err)
	}
	if len(d.got) != 2 || d.got[0].Text != "status" || d.got[1].Text != "status" {
		t.Fatalf("requests: %+v", d.got)
	}
	if n := strings.Count(out.String(), "gmailtls> "); n < 3 {
		t.Errorf("%d prompts, want one per line read:\n%q", n, out.String())
	}
	if !strings.Contains(out.String(), "you said status\n") {
		t.Errorf("output:\n%q", out.String())
	}
}

// TestConsoleInterrupted: Ctrl-C while a command runs ends the console
// with ErrInterrupted, and the answer of the interrupted command is not
// shown.
func TestConsoleInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	c := Console{Doer: &echoDoer{cancel: cancel}, Out: &out}
	err := c.Run(ctx, NewLines(strings.NewReader("check relay-1\nstatus\n"), &out, "> "))
	if !errors.Is(err, ErrInterrupted) || out.Len() != 0 {
		t.Fatalf("err %v, output %q", err, out.String())
	}
	// Waiting for input that never comes: the context ends it too.
	ctx2, cancel2 := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx2, NewLines(pr, &out, "> ")) }()
	cancel2()
	if err := <-done; !errors.Is(err, ErrInterrupted) {
		t.Fatalf("waiting for input: %v", err)
	}
}

// FuzzPlain: removing markup never panics, never adds text, and keeps
// valid UTF-8 valid; plain text without markup characters is unchanged.
func FuzzPlain(f *testing.F) {
	for _, s := range []string{"", "`code`", "*b*", "<@U1|bob>", "<!here>", "<https://x|y>", "a*b*c", "``` x ```", "<relay|all>", "\xff`"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := Plain(in)
		if len(out) > len(in)+len(" ()") && !strings.Contains(in, "<http") && !strings.Contains(in, "<mailto") && !strings.Contains(in, "<!") {
			t.Fatalf("Plain(%q) = %q grew", in, out)
		}
		if utf8.ValidString(in) && !utf8.ValidString(out) {
			t.Fatalf("Plain(%q) = %q is not valid UTF-8", in, out)
		}
		if !strings.ContainsAny(in, "`*<") && out != in {
			t.Fatalf("Plain(%q) = %q changed text without markup", in, out)
		}
	})
}
