package probe

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// TextWidth is the terminal width WriteText keeps every line within.
const TextWidth = 100

// tailLines is how many transcript lines WriteText shows per failure.
const tailLines = 8

// TextOptions tells WriteTextOptions what the Report itself does not say.
type TextOptions struct {
	// Pinned are the mail exchangers the run was aimed at instead of the
	// domain's MX set (Config.MX); the header names them, not the domain.
	Pinned []Target
}

// WriteJSON writes rep as one indented JSON object, as `gmailtls probe
// --json` prints it.
func WriteJSON(w io.Writer, rep Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteText writes rep for a person at a terminal: a header, the engine
// (a line when one engine produced every result, else a column), one line
// per result with ✓ or ✗, MX host, address, source (when there are
// several), stage and failure class, TLS version and cipher (whenever TLS
// was negotiated), and total time ("—" when not measured); then, for every failure, its error, hints
// and the tail of its transcript. Every line fits in TextWidth columns.
func WriteText(w io.Writer, rep Report) error {
	return WriteTextOptions(w, rep, TextOptions{})
}

// WriteTextOptions is WriteText with options: with opts.Pinned the header
// says "probe of the pinned MX 127.0.0.1:2525" (or "of 2 pinned MX hosts",
// listed on the next line) instead of the domain.
func WriteTextOptions(w io.Writer, rep Report, opts TextOptions) error {
	bw := bufio.NewWriter(w)
	failed := 0
	sources := map[string]bool{}
	for _, r := range rep.Results {
		if !r.OK {
			failed++
		}
		sources[r.SourceIP] = true
	}
	showSource := len(sources) > 1

	status := fmt.Sprintf("all %d ok", len(rep.Results))
	switch {
	case len(rep.Results) == 1 && failed == 0:
		status = "ok"
	case len(rep.Results) == 0:
		status = "no results"
	case failed > 0:
		status = fmt.Sprintf("%d of %d failed", failed, len(rep.Results))
	}
	what, listLabel, list := probedWhat(rep, opts.Pinned)
	if what != "" {
		what = " of " + what
	}
	header := fmt.Sprintf("gmailtls probe%s from relay %s, %s: %s",
		what, rep.Relay, rep.StartedAt.Format(time.RFC3339), status)
	fmt.Fprintln(bw, clipWidth(header, TextWidth))
	if len(list) > 0 {
		writeWrapped(bw, listLabel, strings.Join(list, ", "))
	}

	suffix := commonSuffix(rep.Results)
	if suffix != "" {
		fmt.Fprintln(bw, clipWidth("MX host names below end in ."+suffix, TextWidth))
	}
	// The engine is a column when the results come from several (the
	// relay's own TLS tools beside the native probe), else one line.
	engines := map[string]bool{}
	for _, r := range rep.Results {
		engines[EngineOf(r)] = true
	}
	showEngine := len(engines) > 1
	if len(engines) == 1 {
		for e := range engines {
			fmt.Fprintln(bw, clipWidth("engine: "+engineText(e), TextWidth))
		}
	}
	srcHead, engineHead := "", ""
	if showSource {
		srcHead = "source"
	}
	if showEngine {
		engineHead = "engine"
	}
	rows := [][]string{{" ", "MX host", "address", srcHead, engineHead, "result", "total ms"}}
	for _, r := range rep.Results {
		mark := "✓"
		if !r.OK {
			mark = "✗"
		}
		mx := r.MX
		if suffix != "" {
			mx = strings.TrimSuffix(mx, "."+suffix)
		}
		total := r.Timings.Total
		if total == 0 {
			total = r.Timings.DNS
		}
		ms := "—"
		if total > 0 {
			ms = fmt.Sprintf("%.1f", total)
		}
		rows = append(rows, []string{mark, mx, displayAddr(r), orDash(r.SourceIP), EngineOf(r), outcome(r), ms})
	}
	if len(rep.Results) > 0 {
		for _, row := range layout(rows, showSource, showEngine) {
			fmt.Fprintln(bw, row)
		}
	}

	for _, r := range rep.Results {
		if r.OK {
			continue
		}
		fmt.Fprintln(bw)
		title := fmt.Sprintf("%s %s: %s", r.MX, displayAddr(r), outcome(r))
		switch {
		case r.MX == "" && r.IP == "":
			title = outcome(r) // the agent's failure: no MX host was reached
		case showSource:
			title = fmt.Sprintf("%s %s from %s: %s", r.MX, displayAddr(r), orDash(r.SourceIP), outcome(r))
		}
		if showEngine {
			title += " [" + EngineOf(r) + "]"
		}
		if r.Timings.Total > 0 {
			title += fmt.Sprintf(" after %.1f ms", r.Timings.Total)
		}
		writeWrapped(bw, "✗ ", title)
		if r.Error != "" {
			writeWrapped(bw, "  error: ", r.Error)
		}
		if r.SMTPText != "" {
			writeWrapped(bw, "  reply: ", fmt.Sprintf("%d %s", r.SMTPCode, r.SMTPText))
		}
		if r.TLS != nil && r.TLS.Variant != "" {
			writeWrapped(bw, "  works: ", fmt.Sprintf("%s with the %s ClientHello", tlsSummary(r.TLS), r.TLS.Variant))
		}
		for _, h := range r.Hints {
			writeWrapped(bw, "  hint: ", h)
		}
		main, retries := splitRetries(r.Transcript)
		if n := len(main); n > 0 {
			fmt.Fprintf(bw, "  transcript (last %d of %d lines):\n", min(n, tailLines), n)
			for _, l := range main[max(0, n-tailLines):] {
				fmt.Fprintln(bw, clipWidth("    "+l, TextWidth))
			}
		}
		if len(retries) > 0 {
			fmt.Fprintln(bw, "  retries (notes only; --json has their transcripts):")
			for _, l := range retries {
				fmt.Fprintln(bw, clipWidth("    "+l, TextWidth))
			}
		}
	}
	return bw.Flush()
}

// probedWhat names what a run probed, for the header's "gmailtls probe of
// …": the domain whose MX set was looked up; "the pinned MX
// 127.0.0.1:2525" or "3 pinned MX hosts" (listed apart: the header has no
// room for them beside the relay and the time); for a report without a
// domain (an agent's pinned target, an agent that did not answer) the MX
// hosts its results name, or "" when they name none.
func probedWhat(rep Report, pinned []Target) (what, listLabel string, list []string) {
	switch {
	case len(pinned) == 1:
		return "the pinned MX " + targetText(pinned[0]), "", nil
	case len(pinned) > 1:
		list = make([]string, len(pinned))
		for i, t := range pinned {
			list[i] = targetText(t)
		}
		return fmt.Sprintf("%d pinned MX hosts", len(pinned)), "pinned MX hosts: ", list
	case rep.Domain != "":
		return rep.Domain, "", nil
	}
	seen := map[string]bool{}
	for _, r := range rep.Results {
		if r.MX != "" && !seen[r.MX] {
			seen[r.MX] = true
			list = append(list, r.MX)
		}
	}
	switch len(list) {
	case 0:
		return "", "", nil
	case 1:
		return "the MX " + list[0], "", nil
	}
	return fmt.Sprintf("%d MX hosts", len(list)), "MX hosts: ", list
}

// EngineOf is the engine that produced r: "native" when the result does
// not say (results of probe.Run itself), "-" for the agent's failures, where
// no engine ran.
func EngineOf(r Result) string {
	switch {
	case r.Engine != "":
		return r.Engine
	case r.Stage == StageAgent:
		return "-"
	}
	return EngineNative
}

// engineText is the engine line of a report from one engine.
func engineText(e string) string {
	switch e {
	case EngineNative:
		return "native (gmailtls's own Go crypto/tls)"
	case "-":
		return "- (the relay's agent did not probe)"
	}
	return e + " (the relay's own TLS stack)"
}

// targetText is a pinned target as displayAddr shows an address: the port
// only when it is not 25.
func targetText(t Target) string {
	if t.Port == 0 || t.Port == DefaultPort {
		return t.Host
	}
	return t.String()
}

// splitRetries separates the first attempt's transcript from the notes of
// the narrower-ClientHello retries appended after it.
func splitRetries(tr []string) (main, retryNotes []string) {
	for i, l := range tr {
		if strings.HasPrefix(l, retryNote) {
			for _, r := range tr[i:] {
				if strings.HasPrefix(r, Note) {
					retryNotes = append(retryNotes, r)
				}
			}
			return tr[:i], retryNotes
		}
	}
	return tr, nil
}

// displayAddr is "ip" for port 25, "ip:port" or "[v6]:port" otherwise, and
// "-" when no address was resolved.
func displayAddr(r Result) string {
	if r.IP == "" {
		return "-"
	}
	if r.Port == 0 || r.Port == DefaultPort {
		return r.IP
	}
	if strings.Contains(r.IP, ":") {
		return fmt.Sprintf("[%s]:%d", r.IP, r.Port)
	}
	return fmt.Sprintf("%s:%d", r.IP, r.Port)
}

// commonSuffix is the longest run of trailing labels that every MX host
// name shares while keeping a label of its own ("l.google.com" for
// Gmail's MX set), or "" when there is nothing worth dropping.
func commonSuffix(rs []Result) string {
	var names [][]string
	seen := map[string]bool{}
	for _, r := range rs {
		if !validHostName(r.MX) || strings.Count(r.MX, ".") < 2 {
			return ""
		}
		if !seen[r.MX] {
			seen[r.MX] = true
			names = append(names, strings.Split(r.MX, "."))
		}
	}
	if len(names) < 2 {
		return ""
	}
	n := 0
	for {
		var label string
		for i, ls := range names {
			if len(ls)-n-1 < 1 {
				return suffixOf(names[0], n)
			}
			l := ls[len(ls)-n-1]
			if i == 0 {
				label = l
			} else if l != label {
				return suffixOf(names[0], n)
			}
		}
		n++
	}
}

// suffixOf joins the last n labels, when they are at least two.
func suffixOf(labels []string, n int) string {
	if n < 2 {
		return ""
	}
	return strings.Join(labels[len(labels)-n:], ".")
}

// outcome is "TLS1.3 AES_128_GCM_SHA256" for a success (the ✓ says ok),
// "handshake tls_reset", or, for a failure after TLS was negotiated,
// "verify cert_untrusted, TLS1.3 AES_128_GCM_SHA256". The TLS of a
// narrower ClientHello that worked where the first one failed (Variant)
// is not this session's: the "works:" line shows it.
func outcome(r Result) string {
	if r.OK {
		if r.TLS == nil {
			return "ok"
		}
		return tlsSummary(r.TLS)
	}
	s := fmt.Sprintf("%s %s", r.Stage, r.Failure)
	if r.SMTPCode != 0 {
		s += fmt.Sprintf(" %d", r.SMTPCode)
	}
	if r.TLS != nil && r.TLS.Variant == "" {
		if t := tlsSummary(r.TLS); t != "" {
			s += ", " + t
		}
	}
	return s
}

// tlsSummary is the version and cipher in a compact form for the table.
func tlsSummary(t *TLSInfo) string {
	if t == nil {
		return ""
	}
	v := strings.ReplaceAll(t.Version, " ", "")
	c := strings.Replace(strings.TrimPrefix(t.Cipher, "TLS_"), "_WITH_", "_", 1)
	return strings.TrimSpace(v + " " + c)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// layout aligns the columns of rows (mark, mx, addr, src, engine, outcome, ms)
// and shrinks the widest ones until every line fits in TextWidth.
func layout(rows [][]string, showSource, showEngine bool) []string {
	const (
		cMark = iota
		cMX
		cAddr
		cSrc
		cEngine
		cOut
		cMS
		nCols
	)
	width := make([]int, nCols)
	for _, row := range rows {
		for c, cell := range row {
			width[c] = max(width[c], utf8.RuneCountInString(cell))
		}
	}
	gaps := 2 * 3 // between mx, addr, outcome, ms
	if showSource {
		gaps += 2
	} else {
		width[cSrc] = 0
	}
	if showEngine {
		gaps += 2
	} else {
		width[cEngine] = 0
	}
	total := func() int {
		return width[cMark] + 1 + width[cMX] + width[cAddr] + width[cSrc] + width[cEngine] + width[cOut] + width[cMS] + gaps
	}
	// Shrink the outcome to 28, then the MX host to 16, then the source
	// and address, then the outcome again, one column at a time.
	for _, s := range []struct{ col, floor int }{{cOut, 28}, {cMX, 18}, {cSrc, 16}, {cAddr, 16}, {cOut, 12}} {
		if over := total() - TextWidth; over > 0 {
			width[s.col] = max(s.floor, width[s.col]-over)
		}
	}
	lines := make([]string, len(rows))
	for i, row := range rows {
		var b strings.Builder
		b.WriteString(row[cMark])
		b.WriteByte(' ')
		b.WriteString(pad(row[cMX], width[cMX]))
		b.WriteString("  ")
		b.WriteString(pad(row[cAddr], width[cAddr]))
		if showSource {
			b.WriteString("  ")
			b.WriteString(pad(row[cSrc], width[cSrc]))
		}
		if showEngine {
			b.WriteString("  ")
			b.WriteString(pad(row[cEngine], width[cEngine]))
		}
		b.WriteString("  ")
		b.WriteString(pad(row[cOut], width[cOut]))
		b.WriteString("  ")
		b.WriteString(strings.Repeat(" ", width[cMS]-utf8.RuneCountInString(row[cMS])))
		b.WriteString(row[cMS])
		lines[i] = clipWidth(b.String(), TextWidth)
	}
	return lines
}

// pad clips or pads s to exactly n columns.
func pad(s string, n int) string {
	s = clipWidth(s, n)
	return s + strings.Repeat(" ", n-utf8.RuneCountInString(s))
}

// clipWidth shortens s to at most n runes, ending in "…" when cut.
func clipWidth(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	runes := []rune(s)
	return string(runes[:n-1]) + "…"
}

// writeWrapped writes text after prefix, wrapped at word boundaries to
// TextWidth, continuation lines indented under the text.
func writeWrapped(w io.Writer, prefix, text string) {
	indent := strings.Repeat(" ", utf8.RuneCountInString(prefix))
	avail := TextWidth - len(indent)
	line := prefix
	n := 0
	for _, word := range strings.Fields(text) {
		wl := utf8.RuneCountInString(word)
		if n > 0 && n+1+wl > avail {
			fmt.Fprintln(w, line)
			line, n = indent, 0
		}
		if n > 0 {
			line += " "
			n++
		}
		if wl > avail {
			word = clipWidth(word, avail)
			wl = avail
		}
		line += word
		n += wl
	}
	fmt.Fprintln(w, line)
}
