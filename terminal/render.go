// Package terminal shows messages to a person at a terminal: it renders a
// message.Response as text (Write) and runs the console (Console), where
// the bot's commands are typed, with line editing and history when the
// input is a terminal. It knows messages, not commands: the console hands
// each line to a Doer (commands.Handler) and shows what comes back.
package terminal

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/gmailtls/gmailtls/message"
)

// Width is the width Write wraps prose at.
const Width = 100

// Options say how Write renders a message.
type Options struct {
	// Buttons numbers the buttons ("[1] Re-run"): the console presses them
	// by number. Without it they are left out.
	Buttons bool
	// Markup keeps the chat markup (`code`, *bold*, <@U…> mentions) and
	// marks ephemeral answers "(only you)": a faithful dump of the message
	// for tests. Without it the text is plain, for a person.
	Markup bool
}

// verdictMark is the text form of a verdict.
func verdictMark(v message.Verdict) string {
	switch v {
	case message.VerdictOK:
		return "[ok]"
	case message.VerdictWarn:
		return "[warn]"
	case message.VerdictFail:
		return "[FAIL]"
	case message.VerdictRefused:
		return "[refused]"
	case message.VerdictInfo:
		return "[info]"
	}
	return ""
}

// Write renders r: the title with its verdict, each section under its
// heading with fields aligned, code sections (transcripts) indented behind
// "| ", the buttons, the context line, then the thread messages. Prose
// wraps at Width columns; control characters from servers never reach the
// terminal.
func Write(w io.Writer, r message.Response, opts Options) error {
	bw := bufio.NewWriter(w)
	p := printer{w: bw, opts: opts}
	p.response(r, 0, 1)
	return bw.Flush()
}

// printer renders one message.
type printer struct {
	w    *bufio.Writer
	opts Options
}

// text is prose as Options want it.
func (p printer) text(s string) string {
	if p.opts.Markup {
		return s
	}
	return Plain(s)
}

// response writes r; first is the number of its first button, and the
// number after its last one is returned.
func (p printer) response(r message.Response, depth int, first int) int {
	w := p.w
	indent := strings.Repeat("  ", depth)
	title := p.text(r.Title)
	if m := verdictMark(r.Verdict); m != "" {
		title = m + " " + title
	}
	if r.Ephemeral && p.opts.Markup {
		title += "  (only you)"
	}
	writeWrapped(w, indent, indent+"  ", title)
	if r.Summary != "" && r.Summary != r.Title && len(r.Sections) == 0 {
		writeWrapped(w, indent, indent, p.text(r.Summary))
	}
	for _, s := range r.Sections {
		w.WriteByte('\n')
		body := indent
		if s.Heading != "" {
			writeWrapped(w, indent, indent, p.text(s.Heading))
			body = indent + "  "
		}
		width := 0
		for _, f := range s.Fields {
			width = max(width, utf8.RuneCountInString(p.text(f.Label)))
		}
		for _, f := range s.Fields {
			label := p.text(f.Label)
			pad := strings.Repeat(" ", width-utf8.RuneCountInString(label))
			writeWrapped(w, body, body+strings.Repeat(" ", width+2), label+":"+pad+" "+p.text(f.Value))
		}
		for _, l := range s.Lines {
			if s.Code {
				writeCode(w, body+"| ", l)
				continue
			}
			writeWrapped(w, body, body+"  ", p.text(l))
		}
		for _, ph := range s.Phrases {
			writeWrapped(w, body, body+"  ", p.text(ph.Plain()))
		}
	}
	n := first
	if len(r.Buttons) > 0 && p.opts.Buttons {
		w.WriteByte('\n')
		var b strings.Builder
		for i, btn := range r.Buttons {
			if i > 0 {
				b.WriteString("  ")
			}
			fmt.Fprintf(&b, "[%d] %s", n, p.text(btn.Label))
			n++
		}
		writeWrapped(w, indent, indent, b.String())
	}
	if r.Context != "" {
		w.WriteByte('\n')
		writeWrapped(w, indent, indent, p.text(r.Context))
	}
	for _, t := range r.Thread {
		w.WriteByte('\n')
		w.WriteString(indent + "  ↳ in thread:\n")
		n = p.response(t, depth+1, n)
	}
	return n
}

// FlattenButtons returns the buttons of r and of its thread in the order
// Write numbers them.
func FlattenButtons(r message.Response) []message.Button {
	out := append([]message.Button(nil), r.Buttons...)
	for _, t := range r.Thread {
		out = append(out, FlattenButtons(t)...)
	}
	return out
}

// slackRef is a chat reference: <@U…> or <@U…|name> (a user), <#C…|name>
// (a channel), <!here>, or <https://…|text> (a link). Text such as
// "<relay|all>" in a usage line is none of them and is left alone.
var slackRef = regexp.MustCompile(`<([@#!])([^<>|\s]+)(?:\|([^<>]*))?>|<((?:https?|mailto):[^<>|\s]+)(?:\|([^<>]*))?>`)

// Plain removes the chat markup from a line of text: `code` and *bold*
// spans keep their text, mentions become @name (or @U… when the name is
// not known), channels #name, links "text (url)".
func Plain(s string) string {
	if !strings.ContainsAny(s, "`*<") {
		return s
	}
	s = slackRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := slackRef.FindStringSubmatch(ref)
		switch {
		case m[1] != "" && m[3] != "":
			if strings.HasPrefix(m[3], "@") || strings.HasPrefix(m[3], "#") {
				return m[3]
			}
			if m[1] == "!" {
				return "@" + m[3]
			}
			return m[1] + m[3]
		case m[1] == "!":
			return "@" + strings.SplitN(m[2], "^", 2)[0]
		case m[1] != "":
			return m[1] + m[2]
		case m[5] != "" && m[5] != m[4]:
			return m[5] + " (" + m[4] + ")"
		}
		return m[4]
	})
	s = strings.ReplaceAll(s, "```", "")
	return unwrap(unwrap(s, '`'), '*')
}

// unwrap drops the delimiters of d-spans: an opening d at the start of a
// word, followed by text, and a closing d at the end of a word. A d inside
// a word (a*b, an unpaired `) stays.
func unwrap(s string, d byte) string {
	if strings.IndexByte(s, d) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == d && (i == 0 || !wordByte(s[i-1])) && i+1 < len(s) && s[i+1] != ' ' && s[i+1] != d {
			if j := closing(s, i+1, d); j > 0 {
				b.WriteString(s[i+1 : j])
				i = j
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// closing finds the d that closes a span opened before from, or -1.
func closing(s string, from int, d byte) int {
	for j := from; j < len(s); j++ {
		if s[j] == d && s[j-1] != ' ' && (j+1 == len(s) || !wordByte(s[j+1])) {
			return j
		}
	}
	return -1
}

func wordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c >= 0x80
}

// writeWrapped writes s word-wrapped at Width, the first line after
// prefix and the following ones after cont. Embedded newlines are kept.
func writeWrapped(w *bufio.Writer, prefix, cont, s string) {
	for i, para := range strings.Split(s, "\n") {
		p := prefix
		if i > 0 {
			p = cont
		}
		wrapLine(w, p, cont, sanitize(para))
	}
}

func wrapLine(w *bufio.Writer, prefix, cont, s string) {
	// Leading spaces are indentation: keep them on every line.
	if lead := len(s) - len(strings.TrimLeft(s, " ")); lead > 0 {
		prefix += s[:lead]
		cont += s[:lead]
		s = s[lead:]
	}
	width := max(Width-utf8.RuneCountInString(prefix), 20)
	line := prefix
	used := 0
	for i, word := range strings.Split(s, " ") {
		wl := utf8.RuneCountInString(word)
		if i > 0 && used > 0 && used+1+wl > width {
			w.WriteString(strings.TrimRight(line, " "))
			w.WriteByte('\n')
			line, used = cont, 0
			width = max(Width-utf8.RuneCountInString(cont), 20)
		}
		if i > 0 && used > 0 {
			line += " "
			used++
		}
		line += word
		used += wl
	}
	w.WriteString(strings.TrimRight(line, " "))
	w.WriteByte('\n')
}

// writeCode writes a preformatted line, cutting it at Width into
// continuation lines so that nothing is lost.
func writeCode(w *bufio.Writer, prefix, s string) {
	s = sanitize(s)
	width := max(Width-utf8.RuneCountInString(prefix), 20)
	for {
		if utf8.RuneCountInString(s) <= width {
			w.WriteString(prefix + s)
			w.WriteByte('\n')
			return
		}
		cut := 0
		for range width {
			_, size := utf8.DecodeRuneInString(s[cut:])
			cut += size
		}
		w.WriteString(prefix + s[:cut])
		w.WriteByte('\n')
		s = s[cut:]
	}
}

// sanitize makes text safe for a terminal: text from servers (transcripts,
// SMTP replies) may carry control characters or escape sequences, which are
// shown as U+FFFD; invalid UTF-8 likewise. Tabs become spaces.
func sanitize(s string) string {
	clean := true
	for _, r := range s {
		if control(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			b.WriteByte(' ')
		case control(r):
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func control(r rune) bool {
	return r == utf8.RuneError || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0)
}
