package bot

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/gmailtls/gmailtls/internal/golden"
	"github.com/gmailtls/gmailtls/message"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// checkResult is a relay check with a failure and the three buttons.
func checkResult() message.Response {
	return message.Response{
		Title:   "relay-2: STARTTLS to Gmail failed on 1 of 5 MX hosts",
		Verdict: message.VerdictFail,
		Summary: "relay-2 → Gmail: 4 passed, 1 failed (tls_reset)",
		Sections: []message.Section{
			{
				Heading: "MX × IP",
				Lines: []string{
					"✓ `gmail-smtp-in.l.google.com` 142.250.102.27 · TLS 1.3 · TLS_AES_128_GCM_SHA256 · 212 ms",
					"✗ `alt1.gmail-smtp-in.l.google.com` 142.250.153.26 · handshake · *tls_reset* · 20031 ms",
					"✓ `alt2.gmail-smtp-in.l.google.com` 74.125.200.27 · TLS 1.3 · TLS_AES_128_GCM_SHA256 · 187 ms",
					"✓ `alt3.gmail-smtp-in.l.google.com` 142.251.9.26 · TLS 1.3 · TLS_AES_128_GCM_SHA256 · 203 ms",
					"✓ `alt4.gmail-smtp-in.l.google.com` 142.250.27.27 · TLS 1.3 · TLS_AES_128_GCM_SHA256 · 199 ms",
				},
			},
			{
				Heading: "Escalation",
				Fields: []message.Field{
					{Label: "Level", Value: "watch"},
					{Label: "Scope", Value: "one event → network blip"},
					{Label: "Advice", Value: "let the retry queue work; confirm later delivery"},
				},
			},
		},
		Buttons: []message.Button{
			{Label: "Re-run", Action: message.ActionRerun, Value: "relay-2", Style: "primary"},
			{Label: "Transcript", Action: message.ActionTranscript, Value: "r:1842"},
			{Label: "Evidence", Action: message.ActionEvidence, Value: "r:1842"},
		},
		Context: "12:03:41 CEST · results 1838–1842 · failed 12:01 → failed 12:03",
	}
}

func statusResponse() message.Response {
	return message.Response{
		Title:   "Gmail delivery health: 2 relays OK, 1 at watch",
		Verdict: message.VerdictWarn,
		Sections: []message.Section{{
			Fields: []message.Field{
				{Label: "relay-1", Value: "✅ ok · last probe 12:00"},
				{Label: "relay-2", Value: "⚠️ watch · tls_reset 12:03"},
				{Label: "relay-3", Value: "✅ ok · last probe 12:00"},
			},
		}},
		Context: "next scheduled probe 12:05 Europe/Berlin",
	}
}

func helpResponse() message.Response {
	return message.Response{
		Title:   "gmailtls commands",
		Verdict: message.VerdictInfo,
		Sections: []message.Section{{
			Lines: []string{
				"`/gmailtls check <relay|all> [--mx host]` probe STARTTLS to Gmail now",
				"`/gmailtls status` current level of every relay",
				"`/gmailtls history <relay> [24h|7d]` recent results",
				"`/gmailtls relays` configured relays",
				"`/gmailtls evidence <relay>` what to paste into a ticket",
				"`/gmailtls report` the summary report now",
				"`/gmailtls help` this text",
			},
		}},
		Ephemeral: true,
	}
}

func refusedResponse() message.Response {
	return message.Response{
		Title:     "Not allowed here",
		Verdict:   message.VerdictRefused,
		Summary:   "gmailtls answers in #mail-ops only",
		Sections:  []message.Section{{Lines: []string{"Commands are allowed in <#C0123> only & this channel is not on the list."}}},
		Ephemeral: true,
	}
}

func transcriptResponse() message.Response {
	return message.Response{
		Title:   "Transcript: relay-2 → alt1.gmail-smtp-in.l.google.com 142.250.153.26",
		Verdict: message.VerdictFail,
		Sections: []message.Section{{
			Heading: "SMTP transcript (failing stage: handshake)",
			Code:    true,
			Lines: []string{
				"S: 220 mx.google.com ESMTP a1-20020a5d4d4100000b0042b2f5f1a0si1234567wrx.12 - gsmtp",
				"C: EHLO relay-2.example.net",
				"S: 250-mx.google.com at your service, [192.0.2.10]",
				"S: 250-SIZE 157286400",
				"S: 250-8BITMIME",
				"S: 250-STARTTLS",
				"S: 250-ENHANCEDSTATUSCODES",
				"S: 250-PIPELINING",
				"S: 250-CHUNKING",
				"S: 250 SMTPUTF8",
				"C: STARTTLS",
				"S: 220 2.0.0 Ready to start TLS",
				"-- TLS handshake: read tcp 192.0.2.10:41234->142.250.153.26:25: connection reset by peer",
				"note: a line with ``` fences & <angle> brackets",
			},
		}},
		Ephemeral: true,
	}
}

// fortyRelays is `check all` over 40 relays: 200 rows.
func fortyRelays() message.Response {
	r := message.Response{
		Title:   "check all: 3 of 40 relays failing toward Gmail",
		Verdict: message.VerdictFail,
		Summary: "check all: 37 relays OK, 3 failing (tls_reset)",
		Buttons: []message.Button{{Label: "Re-run all", Action: message.ActionRerun, Value: "all", Style: "primary"}},
		Context: "12:03:41 CEST · 200 probes",
	}
	hosts := []string{"gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com", "alt2.gmail-smtp-in.l.google.com", "alt3.gmail-smtp-in.l.google.com", "alt4.gmail-smtp-in.l.google.com"}
	for i := 1; i <= 40; i++ {
		sec := message.Section{Heading: fmt.Sprintf("relay-%d", i)}
		for j, h := range hosts {
			mark, detail := "✓", "TLS 1.3 · TLS_AES_128_GCM_SHA256 · 201 ms"
			if i%13 == 0 && j == 1 {
				mark, detail = "✗", "handshake · *tls_reset* · 20031 ms"
			}
			sec.Lines = append(sec.Lines, fmt.Sprintf("%s `%s` 142.250.%d.%d · %s", mark, h, 100+j, i, detail))
		}
		r.Sections = append(r.Sections, sec)
	}
	return r
}

// hugeResponse stresses every limit at once.
func hugeResponse() message.Response {
	r := fortyRelays()
	r.Title = strings.Repeat("very long title ", 20)
	r.Context = strings.Repeat("context & <more> ", 300)
	long := strings.Repeat("x", 7000)
	r.Sections = append(r.Sections,
		message.Section{Heading: "one long line", Lines: []string{long}},
		message.Section{Heading: "code", Code: true, Lines: append([]string{strings.Repeat("`", 4000)}, strings.Split(strings.Repeat("S: 250-line &<>\n", 400), "\n")...)},
	)
	var fields []message.Field
	for i := range 25 {
		fields = append(fields, message.Field{Label: fmt.Sprintf("f%d", i), Value: strings.Repeat("v&", 1500)})
	}
	r.Sections = append(r.Sections, message.Section{Fields: fields})
	for i := range 30 {
		r.Buttons = append(r.Buttons, message.Button{Label: strings.Repeat("Label ", 20), Action: message.ActionRerun, Value: fmt.Sprint(i)})
	}
	r.Buttons = append(r.Buttons, message.Button{Label: "too big", Action: message.ActionEvidence, Value: strings.Repeat("v", 2001)})
	r.Thread = []message.Response{fortyRelays()}
	return r
}

// goldenOf is the JSON a golden file holds: the rendered message and its
// thread, as they go to Slack.
func goldenOf(t *testing.T, r message.Response) []byte {
	t.Helper()
	rendered := RenderMessages(r)
	type msg struct {
		Text   string `json:"text"`
		Blocks any    `json:"blocks"`
	}
	out := struct {
		Message msg   `json:"message"`
		Thread  []msg `json:"thread,omitempty"`
	}{Message: msg{rendered.Main.Text, rendered.Main.Blocks}}
	for _, m := range rendered.Thread {
		out.Thread = append(out.Thread, msg{m.Text, m.Blocks})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRenderGolden(t *testing.T) {
	cases := map[string]message.Response{
		"check_result":         checkResult(),
		"status":               statusResponse(),
		"help":                 helpResponse(),
		"refused":              refusedResponse(),
		"transcript_ephemeral": transcriptResponse(),
		"forty_relays_fold":    fortyRelays(),
		"ack_one_liner":        {Summary: "probing relay-2 → 5 Gmail MX hosts…"},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			got := goldenOf(t, r)
			path := filepath.Join("testdata", "golden", name+".json")
			golden.Check(t, path, got, *update, "-update")
			checkLimits(t, name, got)
		})
	}
}

// checkLimits walks rendered JSON (goldenOf's shape) generically and checks
// every Slack limit, independently of the renderer's own bookkeeping.
func checkLimits(t *testing.T, name string, data []byte) {
	t.Helper()
	var doc struct {
		Message map[string]any   `json:"message"`
		Thread  []map[string]any `json:"thread"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	n16 := func(s string) int { return len(utf16.Encode([]rune(s))) }
	str := func(v any) string { s, _ := v.(string); return s }
	textOf := func(where string, v any, max int) {
		obj, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: %s: text object missing", name, where)
			return
		}
		s := str(obj["text"])
		if strings.TrimSpace(s) == "" {
			t.Errorf("%s: %s: empty text", name, where)
		}
		if n16(s) > max {
			t.Errorf("%s: %s: text of %d chars > %d", name, where, n16(s), max)
		}
	}
	for mi, m := range append([]map[string]any{doc.Message}, doc.Thread...) {
		if strings.TrimSpace(str(m["text"])) == "" {
			t.Errorf("%s: message %d: no fallback text", name, mi)
		}
		blocks, _ := m["blocks"].([]any)
		if len(blocks) == 0 || len(blocks) > maxBlocks {
			t.Errorf("%s: message %d: %d blocks", name, mi, len(blocks))
		}
		total, _ := json.Marshal(m)
		if len(total) >= 20<<10 && mi == 0 && name == "ack_one_liner" {
			t.Errorf("%s: an ack of %d bytes would be dropped by Slack", name, len(total))
		}
		blockIDs := map[string]bool{}
		for bi, bv := range blocks {
			b := bv.(map[string]any)
			where := fmt.Sprintf("message %d block %d (%s)", mi, bi, str(b["type"]))
			if id := str(b["block_id"]); id != "" {
				if len(id) > 255 || blockIDs[id] {
					t.Errorf("%s: %s: bad or duplicate block_id %q", name, where, id)
				}
				blockIDs[id] = true
			}
			switch str(b["type"]) {
			case "header":
				textOf(where, b["text"], maxHeaderText)
				if str(b["text"].(map[string]any)["type"]) != "plain_text" {
					t.Errorf("%s: %s: header must be plain_text", name, where)
				}
			case "section":
				fields, _ := b["fields"].([]any)
				if b["text"] == nil && len(fields) == 0 {
					t.Errorf("%s: %s: section without text or fields", name, where)
				}
				if b["text"] != nil {
					textOf(where, b["text"], maxSectionText)
				}
				if len(fields) > maxFields {
					t.Errorf("%s: %s: %d fields", name, where, len(fields))
				}
				for _, f := range fields {
					textOf(where+" field", f, maxFieldText)
				}
			case "context":
				elems, _ := b["elements"].([]any)
				if len(elems) == 0 || len(elems) > 10 {
					t.Errorf("%s: %s: %d context elements", name, where, len(elems))
				}
				for _, e := range elems {
					textOf(where, e, maxContextText)
				}
			case "actions":
				elems, _ := b["elements"].([]any)
				if len(elems) == 0 || len(elems) > maxActionsElements {
					t.Errorf("%s: %s: %d elements", name, where, len(elems))
				}
				ids := map[string]bool{}
				for _, e := range elems {
					el := e.(map[string]any)
					textOf(where+" button", el["text"], maxButtonText)
					id := str(el["action_id"])
					if id == "" || len(id) > maxActionID || ids[id] {
						t.Errorf("%s: %s: bad or duplicate action_id %q", name, where, id)
					}
					ids[id] = true
					if n16(str(el["value"])) > maxButtonValue {
						t.Errorf("%s: %s: button value too long", name, where)
					}
					if s := str(el["style"]); s != "" && s != "primary" && s != "danger" {
						t.Errorf("%s: %s: style %q", name, where, s)
					}
				}
			case "divider":
			default:
				t.Errorf("%s: %s: unexpected block type", name, where)
			}
		}
	}
}

func TestRenderFortyRelaysFolds(t *testing.T) {
	r := fortyRelays()
	rendered := RenderMessages(r)
	if len(rendered.Thread) == 0 {
		t.Fatal("40 relays × 5 rows did not fold into a thread")
	}
	checkLimits(t, "forty", goldenOf(t, r))

	// Every row is somewhere: in the message or in the thread.
	all, _ := json.Marshal(rendered)
	for i := 1; i <= 40; i++ {
		if !bytes.Contains(all, fmt.Appendf(nil, "*relay-%d*", i)) {
			t.Errorf("relay-%d is missing from the message and its thread", i)
		}
	}
	// The note counts the rows that moved.
	main, _ := json.Marshal(rendered.Main.Blocks)
	if !bytes.Contains(main, []byte("more rows in thread")) {
		t.Errorf("no fold note in %s", main)
	}
	// Buttons and the context stay on the main message.
	if !bytes.Contains(main, []byte(message.ActionRerun)) || !bytes.Contains(main, []byte("200 probes")) {
		t.Errorf("buttons or context left the main message")
	}
}

func TestRenderStaysWithinLimits(t *testing.T) {
	data := goldenOf(t, hugeResponse())
	checkLimits(t, "huge", data)
	rendered := RenderMessages(hugeResponse())
	if len(rendered.Thread) < 2 {
		t.Errorf("expected several thread messages, got %d", len(rendered.Thread))
	}
	blocks, _ := json.Marshal(rendered.Main.Blocks)
	// Duplicate actions get unique ids that map back to the action.
	if !bytes.Contains(blocks, []byte(`"gmailtls_rerun#2"`)) {
		t.Errorf("duplicate action_ids were not made unique")
	}
	if baseAction("gmailtls_rerun#2") != message.ActionRerun {
		t.Errorf("baseAction does not strip the suffix")
	}
	// The button whose value is too long was dropped, not truncated.
	if bytes.Contains(blocks, []byte("too big")) {
		t.Errorf("a button with an oversized value was rendered")
	}
}

func TestRenderEscapes(t *testing.T) {
	r := message.Response{
		Title:    "a <b> & c",
		Summary:  "x <!channel> & y",
		Sections: []message.Section{{Heading: "h<1>", Lines: []string{"<@U123> & <https://evil|click>"}, Fields: []message.Field{{Label: "l&", Value: "v<"}}}},
		Context:  "c>d",
	}
	rendered := RenderMessages(r)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rendered.Main); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	// Mentions, broadcasts and links are escaped: text is never markup
	// (deliberate mentions are a message.Phrase's).
	for _, bad := range []string{"<@U123>", "<!channel>", "<https://evil", "h<1>", "v<", "c>d"} {
		if strings.Contains(s, bad) {
			t.Errorf("unescaped %q in %s", bad, s)
		}
	}
	for _, good := range []string{"&lt;!channel&gt;", "&lt;@U123&gt; &amp; &lt;https://evil|click&gt;", "*l&amp;*\\nv&lt;"} {
		if !strings.Contains(s, good) {
			t.Errorf("missing %q in %s", good, s)
		}
	}
	if rendered.Main.Text != "x &lt;!channel&gt; &amp; y" {
		t.Errorf("fallback text %q", rendered.Main.Text)
	}
}

func TestRenderCodeFences(t *testing.T) {
	lines := []string{"before ``` inside", "````", "a`b"}
	for range 300 {
		lines = append(lines, strings.Repeat("S: 250-0123456789 ", 3))
	}
	ps := codePieces("*t*", lines)
	if len(ps) < 2 {
		t.Fatalf("%d pieces; expected a split", len(ps))
	}
	for i, p := range ps {
		data, _ := json.Marshal(p.block)
		var sec struct {
			Text struct{ Text string }
		}
		if err := json.Unmarshal(data, &sec); err != nil {
			t.Fatal(err)
		}
		txt := sec.Text.Text
		if textLen(txt) > maxSectionText {
			t.Errorf("piece %d: %d chars", i, textLen(txt))
		}
		body, ok := strings.CutSuffix(txt, "\n```")
		if !ok {
			t.Fatalf("piece %d does not end with a fence: %q", i, txt[max(0, len(txt)-20):])
		}
		_, body, ok = strings.Cut(body, "```\n")
		if !ok {
			t.Fatalf("piece %d does not open a fence", i)
		}
		if strings.Contains(body, "```") {
			t.Errorf("piece %d: a ``` inside the code would end the block early", i)
		}
		if i == 0 && !strings.HasPrefix(txt, "*t*\n```") {
			t.Errorf("heading not above the first block: %q", txt[:20])
		}
	}
}

func TestTruncateAndSplit(t *testing.T) {
	if got := truncate("héllo wörld", 6); got != "héllo…" {
		t.Errorf("truncate: %q", got)
	}
	if got := escapeTrunc("a&b&c", 7); got != "a&amp;…" {
		t.Errorf("escapeTrunc: %q", got)
	}
	for _, c := range splitEscaped(strings.Repeat("&", 10), 7, false) {
		if c != "&amp;" {
			t.Errorf("split inside an entity: %q", c)
		}
	}
	if n := textLen("😀"); n != 2 {
		t.Errorf("textLen counts UTF-16 units: %d", n)
	}
}

func FuzzRender(f *testing.F) {
	f.Add("relay-2: failed", "line & <x>", "```code```", "Re-run", "relay-2", 3, 40)
	f.Add("", "", "", "", "", 0, 0)
	f.Add(strings.Repeat("é", 200), strings.Repeat("😀", 1600), strings.Repeat("`", 3001), strings.Repeat("b", 80), strings.Repeat("v", 1999), 30, 120)
	f.Fuzz(func(t *testing.T, title, line, code, label, value string, fields, sections int) {
		sections = min(max(sections, 0), 120)
		fields = min(max(fields, 0), 30)
		r := message.Response{Title: title, Summary: line, Context: line, Verdict: message.VerdictWarn}
		for i := range sections {
			sec := message.Section{Heading: title, Lines: []string{line, code, line}, Code: i%3 == 0}
			for j := range fields {
				sec.Fields = append(sec.Fields, message.Field{Label: label, Value: fmt.Sprint(value, j)})
			}
			r.Sections = append(r.Sections, sec)
		}
		for range fields {
			r.Buttons = append(r.Buttons, message.Button{Label: label, Action: message.ActionRerun, Value: value})
		}
		checkLimits(t, "fuzz", goldenOf(t, r))
	})
}

// TestMentionsOnlyInPhrases: a mention in text (a remote SMTP reply, a
// transcript) is escaped like any other markup; a message.Phrase's
// mention is live, whole, and only when it is a Slack member ID.
func TestMentionsOnlyInPhrases(t *testing.T) {
	got := splitEscaped("acknowledged by <@U024BE7LH> in <#C0456ABC> & <https://evil.example|click> <@lower>", 3000, false)[0]
	want := "acknowledged by &lt;@U024BE7LH&gt; in &lt;#C0456ABC&gt; &amp; &lt;https://evil.example|click&gt; &lt;@lower&gt;"
	if got != want {
		t.Errorf("text: got  %q\nwant %q", got, want)
	}
	if code := splitEscaped("<@U024BE7LH>", 3000, true)[0]; code != "&lt;@U024BE7LH&gt;" {
		t.Errorf("a mention inside code was not escaped: %q", code)
	}

	p := message.Phrase{message.Text("Acknowledged by "), message.Mention("U024BE7LH"), message.Text(" & not <@U0ADMIN01>; "), message.Mention("U0<x>")}
	if got, want := splitPhrase(p, 3000)[0], "Acknowledged by <@U024BE7LH> &amp; not &lt;@U0ADMIN01&gt;; @U0&lt;x&gt;"; got != want {
		t.Errorf("phrase: got  %q\nwant %q", got, want)
	}
	if got := p.Plain(); got != "Acknowledged by <@U024BE7LH> & not <@U0ADMIN01>; <@U0<x>>" {
		t.Errorf("Plain: %q", got)
	}
	// Split short, a mention is never cut.
	for _, c := range splitPhrase(message.Phrase{message.Text("by "), message.Mention("U024BE7LH"), message.Text(".")}, 8) {
		if strings.Count(c, "<") != strings.Count(c, ">") {
			t.Errorf("a chunk cuts a mention: %q", c)
		}
	}

	r := message.Response{Title: "t", Sections: []message.Section{{
		Lines:   []string{"554 5.7.1 <@U0ADMIN01> <#C0OKCHAN1> <!here>"},
		Phrases: []message.Phrase{{message.Text("Muted by "), message.Mention("U0G9QF9GZ"), message.Text(".")}},
	}}}
	rendered := RenderMessages(r)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rendered); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	if strings.Count(s, "<@") != 1 || !strings.Contains(s, `554 5.7.1 &lt;@U0ADMIN01&gt; &lt;#C0OKCHAN1&gt; &lt;!here&gt;\nMuted by <@U0G9QF9GZ>.`) {
		t.Errorf("rendered %s", s)
	}
}
