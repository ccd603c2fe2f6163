package commands

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/gmailtls/gmailtls/message"
)

// TextWidth is the width RenderText wraps prose at.
const TextWidth = 100

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

// RenderText writes r for a terminal: the title with its verdict, each
// section under its heading with fields aligned, code sections indented,
// buttons numbered (the console lets you press them by number), the context
// line, then the thread messages. Prose wraps at TextWidth columns.
func RenderText(w io.Writer, r message.Response) error {
	bw := bufio.NewWriter(w)
	renderText(bw, r, 0, 1)
	return bw.Flush()
}

// renderText writes one response; first is the number of its first button.
func renderText(w *bufio.Writer, r message.Response, depth int, first int) int {
	indent := strings.Repeat("  ", depth)
	title := r.Title
	if m := verdictMark(r.Verdict); m != "" {
		title = m + " " + title
	}
	if r.Ephemeral {
		title += "  (only you)"
	}
	writeWrapped(w, indent, indent+"  ", title)
	if r.Summary != "" && r.Summary != r.Title && len(r.Sections) == 0 {
		writeWrapped(w, indent, indent, r.Summary)
	}
	for _, s := range r.Sections {
		fmt.Fprintln(w)
		body := indent
		if s.Heading != "" {
			writeWrapped(w, indent, indent, s.Heading)
			body = indent + "  "
		}
		if len(s.Fields) > 0 {
			width := 0
			for _, f := range s.Fields {
				width = max(width, utf8.RuneCountInString(f.Label))
			}
			for _, f := range s.Fields {
				pad := strings.Repeat(" ", width-utf8.RuneCountInString(f.Label))
				line := f.Label + ":" + pad + " " + f.Value
				writeWrapped(w, body, body+strings.Repeat(" ", width+2), line)
			}
		}
		for _, l := range s.Lines {
			if s.Code {
				writeCode(w, body+"| ", l)
				continue
			}
			writeWrapped(w, body, body+"  ", l)
		}
	}
	n := first
	if len(r.Buttons) > 0 {
		fmt.Fprintln(w)
		var b strings.Builder
		for i, btn := range r.Buttons {
			if i > 0 {
				b.WriteString("  ")
			}
			fmt.Fprintf(&b, "[%d] %s", n, btn.Label)
			n++
		}
		writeWrapped(w, indent, indent, b.String())
	}
	if r.Context != "" {
		fmt.Fprintln(w)
		writeWrapped(w, indent, indent, r.Context)
	}
	for _, t := range r.Thread {
		fmt.Fprintln(w)
		fmt.Fprintln(w, indent+"  ↳ in thread:")
		n = renderText(w, t, depth+1, n)
	}
	return n
}

// FlattenButtons returns the buttons of r and of its thread in the order
// RenderText numbers them.
func FlattenButtons(r message.Response) []message.Button {
	out := append([]message.Button(nil), r.Buttons...)
	for _, t := range r.Thread {
		out = append(out, FlattenButtons(t)...)
	}
	return out
}

// writeWrapped writes s word-wrapped at TextWidth, the first line after
// prefix and the following ones after cont. Embedded newlines are kept.
func writeWrapped(w *bufio.Writer, prefix, cont, s string) {
	for i, para := range strings.Split(s, "\n") {
		para = sanitize(para)
		p := prefix
		if i > 0 {
			p = cont
		}
		wrapLine(w, p, cont, para)
	}
}

func wrapLine(w *bufio.Writer, prefix, cont, s string) {
	// Leading spaces are indentation: keep them on every line.
	if lead := len(s) - len(strings.TrimLeft(s, " ")); lead > 0 {
		prefix += s[:lead]
		cont += s[:lead]
		s = s[lead:]
	}
	width := TextWidth - utf8.RuneCountInString(prefix)
	if width < 20 {
		width = 20
	}
	line := prefix
	used := 0
	words := strings.Split(s, " ")
	for i, word := range words {
		wl := utf8.RuneCountInString(word)
		if i > 0 && used > 0 && used+1+wl > width {
			w.WriteString(strings.TrimRight(line, " "))
			w.WriteByte('\n')
			line, used = cont, 0
			width = max(TextWidth-utf8.RuneCountInString(cont), 20)
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

// writeCode writes a preformatted line, cutting it at TextWidth into
// continuation lines so that nothing is lost.
func writeCode(w *bufio.Writer, prefix, s string) {
	s = sanitize(s)
	width := max(TextWidth-utf8.RuneCountInString(prefix), 20)
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
		if r == utf8.RuneError || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
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
		case r == utf8.RuneError || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
