package bot

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"unicode/utf16"

	"github.com/gmailtls/gmailtls/message"
	"github.com/slack-go/slack"
)

// Slack's Block Kit limits for messages. slack-go enforces none of them;
// the renderer does, so a response never turns into an API error. Lengths
// are counted in UTF-16 code units, which is never less than Slack's count.
const (
	maxBlocks          = 50
	maxSectionText     = 3000
	maxFields          = 10
	maxFieldText       = 2000
	maxHeaderText      = 150
	maxButtonText      = 75
	maxActionID        = 255
	maxButtonValue     = 2000
	maxActionsElements = 25
	maxContextText     = 3000

	// maxMessageChars is the renderer's own budget of text per message: a
	// message longer than this folds the rest into its thread, which keeps
	// results readable and every payload well below Slack's size limits
	// (a Socket Mode ack must stay under 20 KB).
	maxMessageChars = 12000
)

// actionsBlockID is the block_id of the buttons row.
const actionsBlockID = "gmailtls_actions"

// Message is one Slack message: blocks plus the plain fallback text Slack
// shows in notifications.
type Message struct {
	Text   string
	Blocks []slack.Block
}

// Rendered is a Response rendered for Slack: the message itself and the
// replies for its thread (content folded out of the message because of
// Slack's limits, then the Response's own Thread).
type Rendered struct {
	Main   Message
	Thread []Message
}

// Render returns the Block Kit blocks of r's main message. Content beyond
// Slack's limits is replaced by a "… N more rows in thread" line; use
// RenderMessages to get the thread replies too.
func Render(r message.Response) []slack.Block {
	return RenderMessages(r).Main.Blocks
}

// FallbackText is the plain text Slack shows in notifications and on
// clients without Block Kit: the Summary, or else the Title.
func FallbackText(r message.Response) string {
	return escapeTrunc(rawFallback(r), maxSectionText)
}

// rawFallback is FallbackText before escaping.
func rawFallback(r message.Response) string {
	t := strings.TrimSpace(r.Summary)
	if t == "" {
		t = strings.TrimSpace(r.Title)
	}
	if t == "" && len(r.Sections) > 0 && len(r.Sections[0].Lines) > 0 {
		t = r.Sections[0].Lines[0]
	}
	if t == "" {
		t = "gmailtls"
	}
	return t
}

// RenderMessages renders r and its thread within Slack's limits.
func RenderMessages(r message.Response) Rendered {
	main, overflow := renderOne(r)
	out := Rendered{Main: main, Thread: overflow}
	var walk func(rs []message.Response)
	walk = func(rs []message.Response) {
		for _, t := range rs {
			m, more := renderOne(t)
			out.Thread = append(out.Thread, m)
			out.Thread = append(out.Thread, more...)
			walk(t.Thread)
		}
	}
	walk(r.Thread)
	return out
}

// piece is one block with its size and the number of result rows it holds.
type piece struct {
	block slack.Block
	chars int
	rows  int
}

// renderOne renders one response (without its Thread): the message and the
// continuation messages for whatever did not fit.
func renderOne(r message.Response) (Message, []Message) {
	text := FallbackText(r)
	var head, tail []piece
	if h := headerText(r); h != "" {
		head = append(head, piece{
			block: slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, h, true, false)),
			chars: textLen(h),
		})
	}
	var content []piece
	for _, sec := range r.Sections {
		content = append(content, sectionPieces(sec)...)
	}
	if len(head) == 0 && len(content) == 0 {
		// A bare one-liner (e.g. an acknowledgement): show it as text.
		content = textPieces("", escapedLines([]string{rawFallback(r)}))
		for i := range content {
			content[i].rows = 0
		}
	}
	if c := strings.TrimSpace(r.Context); c != "" {
		c = escapeTrunc(c, maxContextText)
		tail = append(tail, piece{
			block: slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, c, false, false)),
			chars: textLen(c),
		})
	}
	if p, ok := actionsPiece(r.Buttons); ok {
		tail = append(tail, p)
	}

	fixedBlocks := len(head) + len(tail)
	fixedChars := sumChars(head) + sumChars(tail)
	if len(content)+fixedBlocks <= maxBlocks && sumChars(content)+fixedChars <= maxMessageChars {
		return Message{Text: text, Blocks: blocksOf(head, content, tail)}, nil
	}

	// Fold: keep what fits beside a note, move the rest to the thread.
	const noteReserve = 64
	n, chars := 0, fixedChars+noteReserve
	for n < len(content) && fixedBlocks+n+1 < maxBlocks && chars+content[n].chars <= maxMessageChars {
		chars += content[n].chars
		n++
	}
	rest := content[n:]
	rows := 0
	for _, p := range rest {
		rows += p.rows
	}
	note := "… continued in thread"
	switch {
	case rows == 1:
		note = "… 1 more row in thread"
	case rows > 1:
		note = fmt.Sprintf("… %d more rows in thread", rows)
	}
	notePiece := piece{block: slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, note, false, false)), chars: textLen(note)}
	main := Message{Text: text, Blocks: blocksOf(head, content[:n], []piece{notePiece}, tail)}

	var groups [][]piece
	var cur []piece
	curChars := 0
	for _, p := range rest {
		if len(cur) > 0 && (len(cur)+1 > maxBlocks || curChars+p.chars > maxMessageChars) {
			groups = append(groups, cur)
			cur, curChars = nil, 0
		}
		cur = append(cur, p)
		curChars += p.chars
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	title := strings.TrimSpace(r.Title)
	if title == "" {
		title = "gmailtls"
	}
	var more []Message
	for i, g := range groups {
		t := escapeTrunc(fmt.Sprintf("%s (continued %d/%d)", title, i+1, len(groups)), maxSectionText)
		more = append(more, Message{Text: t, Blocks: blocksOf(g)})
	}
	return main, more
}

func sumChars(ps []piece) int {
	n := 0
	for _, p := range ps {
		n += p.chars
	}
	return n
}

func blocksOf(groups ...[]piece) []slack.Block {
	var out []slack.Block
	for _, g := range groups {
		for _, p := range g {
			out = append(out, p.block)
		}
	}
	return out
}

// verdictEmoji maps a verdict to the emoji shown in the header.
func verdictEmoji(v message.Verdict) string {
	switch v {
	case message.VerdictOK:
		return "✅"
	case message.VerdictWarn:
		return "⚠️"
	case message.VerdictFail:
		return "❌"
	case message.VerdictInfo:
		return "ℹ️"
	case message.VerdictRefused:
		return "🚫"
	}
	return ""
}

// headerText is the header line: the verdict emoji and the title. Header
// blocks are plain_text, which Slack shows literally (no mrkdwn, no links),
// so the title is not entity-escaped there.
func headerText(r message.Response) string {
	title := strings.Join(strings.Fields(r.Title), " ")
	if title == "" {
		return ""
	}
	if e := verdictEmoji(r.Verdict); e != "" {
		title = e + " " + title
	}
	return truncate(title, maxHeaderText)
}

// sectionPieces renders one Section: its text (split at Slack's section
// limit, code as ``` blocks) and its fields in groups of ten.
func sectionPieces(sec message.Section) []piece {
	heading := ""
	if h := strings.TrimSpace(sec.Heading); h != "" {
		heading = "*" + escapeTrunc(h, 200) + "*"
	}
	var pieces []piece
	if sec.Code {
		pieces = codePieces(heading, sec.Lines)
		pieces = append(pieces, textPieces("", phraseChunks(sec.Phrases))...)
	} else {
		pieces = textPieces(heading, append(escapedLines(sec.Lines), phraseChunks(sec.Phrases)...))
	}

	var fields []*slack.TextBlockObject
	var fieldChars []int
	for _, f := range sec.Fields {
		label, value := strings.TrimSpace(f.Label), strings.TrimSpace(f.Value)
		var t string
		switch {
		case label != "" && value != "":
			t = "*" + escapeTrunc(label, 200) + "*\n"
			t += escapeTrunc(value, maxFieldText-textLen(t))
		case label != "":
			t = "*" + escapeTrunc(label, 200) + "*"
		case value != "":
			t = escapeTrunc(value, maxFieldText)
		default:
			continue
		}
		fields = append(fields, slack.NewTextBlockObject(slack.MarkdownType, t, false, false))
		fieldChars = append(fieldChars, textLen(t))
	}
	for i := 0; i < len(fields); i += maxFields {
		j := min(i+maxFields, len(fields))
		group := fields[i:j]
		chars := 0
		for _, c := range fieldChars[i:j] {
			chars += c
		}
		if i == 0 && len(pieces) > 0 {
			last := &pieces[len(pieces)-1]
			if sb, ok := last.block.(*slack.SectionBlock); ok && len(sb.Fields) == 0 {
				sb.Fields = group
				last.chars += chars
				last.rows += len(group)
				continue
			}
		}
		pieces = append(pieces, piece{
			block: slack.NewSectionBlock(nil, group, nil),
			chars: chars,
			rows:  len(group),
		})
	}
	return pieces
}

// escapedLines escapes lines (Slack's &, < and >: nothing in them is
// markup Slack acts on) into chunks of at most maxSectionText, a line
// longer than that in several.
func escapedLines(lines []string) []string {
	var out []string
	for _, line := range lines {
		out = append(out, splitEscaped(line, maxSectionText, false)...)
	}
	return out
}

// phraseChunks renders phrases into chunks of at most maxSectionText:
// their text escaped, their mentions live.
func phraseChunks(phrases []message.Phrase) []string {
	var out []string
	for _, p := range phrases {
		out = append(out, splitPhrase(p, maxSectionText)...)
	}
	return out
}

// textPieces packs chunks (escaped lines, each at most maxSectionText)
// into mrkdwn sections of at most maxSectionText, the (already formatted)
// heading on the first.
func textPieces(heading string, chunks []string) []piece {
	var pieces []piece
	cur, rows := heading, 0
	flush := func() {
		if strings.TrimSpace(cur) != "" {
			pieces = append(pieces, piece{
				block: slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, cur, false, false), nil, nil),
				chars: textLen(cur),
				rows:  rows,
			})
		}
		cur, rows = "", 0
	}
	for _, c := range chunks {
		candidate := c
		if cur != "" {
			candidate = cur + "\n" + c
		}
		if textLen(candidate) > maxSectionText {
			flush()
			candidate = c
		}
		cur = candidate
		rows++
	}
	flush()
	return pieces
}

// codeFence wraps code in a Slack code block.
func codeFence(body string) string { return "```\n" + body + "\n```" }

// codePieces packs preformatted lines into ``` blocks of at most
// maxSectionText each, the heading above the first.
func codePieces(heading string, lines []string) []piece {
	const overhead = len("```\n") + len("\n```")
	var pieces []piece
	var body []string
	bodyLen, rows := 0, 0
	first := true
	prefix := func() string {
		if first && heading != "" {
			return heading + "\n"
		}
		return ""
	}
	flush := func() {
		if len(body) == 0 {
			return
		}
		t := prefix() + codeFence(strings.Join(body, "\n"))
		pieces = append(pieces, piece{
			block: slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, t, false, false), nil, nil),
			chars: textLen(t),
			rows:  rows,
		})
		first = false
		body, bodyLen, rows = nil, 0, 0
	}
	for _, line := range lines {
		room := maxSectionText - overhead - textLen(prefix())
		for _, c := range splitEscaped(line, room, true) {
			add := textLen(c)
			if len(body) > 0 {
				add++ // newline
			}
			if len(body) > 0 && bodyLen+add > maxSectionText-overhead-textLen(prefix()) {
				flush()
				add = textLen(c)
			}
			body = append(body, c)
			bodyLen += add
			rows++
		}
	}
	flush()
	if len(pieces) == 0 && heading != "" {
		pieces = textPieces(heading, nil)
	}
	return pieces
}

// actionsPiece renders the buttons (at most 25) as one actions block.
// action_ids are made unique within the block by a "#n" suffix, which
// baseAction strips again.
func actionsPiece(buttons []message.Button) (piece, bool) {
	var elems []slack.BlockElement
	seen := map[string]int{}
	chars := 0
	for _, b := range buttons {
		if len(elems) == maxActionsElements {
			break
		}
		label := strings.TrimSpace(b.Label)
		if b.Action == "" || label == "" || strings.Contains(b.Action, "#") ||
			len(b.Action) > maxActionID-8 || textLen(b.Value) > maxButtonValue {
			continue
		}
		seen[b.Action]++
		id := b.Action
		if n := seen[b.Action]; n > 1 {
			id = fmt.Sprintf("%s#%d", b.Action, n)
		}
		label = truncate(label, maxButtonText)
		btn := slack.NewButtonBlockElement(id, b.Value, slack.NewTextBlockObject(slack.PlainTextType, label, true, false))
		switch b.Style {
		case "primary":
			btn = btn.WithStyle(slack.StylePrimary)
		case "danger":
			btn = btn.WithStyle(slack.StyleDanger)
		}
		elems = append(elems, btn)
		chars += textLen(label)
	}
	if len(elems) == 0 {
		return piece{}, false
	}
	return piece{block: slack.NewActionBlock(actionsBlockID, elems...), chars: chars}, true
}

// baseAction is the commands.Action* constant behind a rendered action_id.
func baseAction(actionID string) string {
	a, _, _ := strings.Cut(actionID, "#")
	return a
}

// escapeTrunc escapes raw and shortens the result to at most max, ending
// in "…", without cutting an entity in two.
func escapeTrunc(raw string, max int) string {
	chunks := splitEscaped(raw, max, false)
	if len(chunks) == 1 {
		return chunks[0]
	}
	return splitEscaped(raw, max-1, false)[0] + "…"
}

// escapeRune escapes the three characters Slack treats as control
// characters in mrkdwn and message text.
func escapeRune(r rune) string {
	switch r {
	case '&':
		return "&amp;"
	case '<':
		return "&lt;"
	case '>':
		return "&gt;"
	}
	return string(r)
}

// zwsp separates backticks inside code so that no "```" can end the
// surrounding code block early.
const zwsp = "\u200b"

// chunker cuts a sequence of atoms (escaped characters, whole mentions)
// into chunks of at most max, never inside an atom.
type chunker struct {
	max    int
	chunks []string
	b      strings.Builder
	n      int
}

// add appends atom, or atStart instead when atom begins a new chunk.
func (c *chunker) add(atom, atStart string) {
	if l := textLen(atom); c.n+l > c.max && c.n > 0 {
		c.chunks = append(c.chunks, c.b.String())
		c.b.Reset()
		c.n = 0
		atom = atStart
	}
	c.b.WriteString(atom)
	c.n += textLen(atom)
}

func (c *chunker) done() []string { return append(c.chunks, c.b.String()) }

// splitEscaped escapes raw (entities; for code also backtick runs) and
// splits the result into chunks of at most max, never inside an entity.
// Nothing in raw stays markup: a mention, a broadcast or a link in it
// shows as text and pings no one (deliberate mentions are a
// message.Phrase's).
func splitEscaped(raw string, max int, code bool) []string {
	c := chunker{max: max}
	var prev rune
	for _, r := range raw {
		e := escapeRune(r)
		atStart := e
		if code && r == '`' && prev == '`' {
			e = zwsp + e
		}
		c.add(e, atStart)
		prev = r
	}
	return c.done()
}

// userIDRE is the syntax of a Slack member ID (W in Enterprise Grid).
var userIDRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`) })

// splitPhrase renders p (its text escaped, its mentions live) into chunks
// of at most max, never inside an entity or a mention. A mention whose ID
// is not a Slack member ID is shown as text.
func splitPhrase(p message.Phrase, max int) []string {
	c := chunker{max: max}
	for _, part := range p {
		text := part.Text
		if part.User != "" {
			if userIDRE().MatchString(part.User) {
				m := "<@" + part.User + ">"
				c.add(m, m)
				continue
			}
			text = "@" + part.User
		}
		for _, r := range text {
			e := escapeRune(r)
			c.add(e, e)
		}
	}
	return c.done()
}

// textLen is the length of s in UTF-16 code units.
func textLen(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// truncate shortens s to at most max UTF-16 code units, ending in "…".
func truncate(s string, max int) string {
	if textLen(s) <= max {
		return s
	}
	n := 0
	for i, r := range s {
		if n+utf16.RuneLen(r)+1 > max {
			return s[:i] + "…"
		}
		n += utf16.RuneLen(r)
	}
	return s
}
