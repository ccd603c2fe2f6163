// Package message is the Slack-free message model that flows between the
// layers: a Request comes in from Slack, the console, the CLI or a test; a
// Response goes out to whatever renders it (Block Kit in bot, text in the
// console, the outbox's stored payloads). It is a leaf: it imports only probe,
// for the one-line rendering of a result that every surface shares.
package message

import "strings"

// Source tells what started a command or a probe run. It is the one
// vocabulary of the audit log's source and of a stored run's trigger:
// storage imports it (message stays a leaf, importing only probe) rather
// than keeping constants of its own.
type Source string

// Command sources, recorded in the audit log and on probe runs.
const (
	SourceSlash    Source = "slash"
	SourceButton   Source = "button"
	SourceSchedule Source = "schedule"
	SourceConsole  Source = "console"
	SourceCLI      Source = "cli"
	// SourceConfirm marks the automatic re-probe that confirms a failure
	// before an alert goes out; it is a run's trigger, never a request's.
	SourceConfirm Source = "confirm"
)

// Request is one command to run.
type Request struct {
	// Text is what follows the slash command, e.g. "check relay-2".
	Text      string
	UserID    string
	UserName  string
	ChannelID string
	Source    Source
	// Action and Value are set when a button was pressed: Action is one of
	// the Action* constants and Value the button's value.
	Action string
	Value  string
}

// Local reports whether a request comes from the machine itself (console,
// CLI, scheduler) rather than from chat: local requests are trusted, the
// person at the terminal already has the database and the configuration.
func (r Request) Local() bool {
	switch r.Source {
	case SourceConsole, SourceCLI, SourceSchedule:
		return true
	}
	return false
}

// Who names the requester for messages and the audit log.
func (r Request) Who() string {
	switch {
	case r.UserName != "" && r.UserID != "" && r.UserName != r.UserID:
		return r.UserName + " (" + r.UserID + ")"
	case r.UserName != "":
		return r.UserName
	case r.UserID != "":
		return r.UserID
	case r.Source != "":
		return string(r.Source)
	}
	return "unknown"
}

// Requester is the short name recorded on probe runs.
func (r Request) Requester() string {
	switch {
	case r.UserID != "":
		return r.UserID
	case r.UserName != "":
		return r.UserName
	}
	return string(r.Source)
}

// Button actions. The bot uses them as Slack action_ids.
const (
	ActionRerun       = "gmailtls_rerun"
	ActionTranscript  = "gmailtls_transcript"
	ActionEvidence    = "gmailtls_evidence"
	ActionCompare     = "gmailtls_compare"
	ActionAcknowledge = "gmailtls_ack"
	ActionMute        = "gmailtls_mute"
)

// Verdict colours a response.
type Verdict string

// Verdicts, from good to bad.
const (
	VerdictInfo    Verdict = "info"
	VerdictOK      Verdict = "ok"
	VerdictWarn    Verdict = "warn"
	VerdictFail    Verdict = "fail"
	VerdictRefused Verdict = "refused"
)

// Response is what a handler returns: a Slack-free message model.
type Response struct {
	// Title is the header line, e.g. "relay-2: STARTTLS to Gmail failed".
	Title   string
	Verdict Verdict
	// Summary is a one-line plain-text version (notifications, fallbacks).
	Summary  string
	Sections []Section
	Buttons  []Button
	// Context is a small footer line (times, result ids).
	Context string
	// Ephemeral responses are shown only to the requester.
	Ephemeral bool
	// ReplaceOriginal replaces the message a button was pressed on.
	ReplaceOriginal bool
	// Thread holds follow-up messages for the thread of this one, used when
	// the content is too long for one message.
	Thread []Response
}

// Section is a block of text lines, optionally with label/value fields.
type Section struct {
	Heading string
	// Lines are shown one per line. Code sections are preformatted
	// (transcripts); other lines may use *bold* and `code` spans.
	Lines  []string
	Code   bool
	Fields []Field
	// Phrases follow Lines, one per line, never as code: the lines that
	// mention Slack users on purpose.
	Phrases []Phrase `json:",omitempty"`
}

// Phrase is a line that mentions Slack users on purpose ("Acknowledged
// by @alice at 12:03."). Mentions are live only in a Phrase: renderers
// show every other text, and a Phrase's text parts, as text (for Slack,
// with &, < and > escaped), so that a mention, a broadcast or a link in
// text that came from outside (an SMTP banner or reply, a transcript, an
// agent's or a tool's error) shows as typed and pings no one.
type Phrase []Part

// Part is a piece of a Phrase: literal text, or a mention of a Slack user.
type Part struct {
	Text string `json:",omitempty"`
	// User is the Slack member ID (U… or W…) to mention. Set it only from
	// an ID Slack itself sent (who ran a command, who pressed a button),
	// never from text that came from outside.
	User string `json:",omitempty"`
}

// Text is a Part of literal text.
func Text(s string) Part { return Part{Text: s} }

// Mention is a Part that mentions the Slack user with member ID userID.
func Mention(userID string) Part { return Part{User: userID} }

// Plain is the phrase as plain text, mentions written as Slack writes
// them ("<@U024BE7LH>"): for terminals and logs, which ping no one.
func (p Phrase) Plain() string {
	var b strings.Builder
	for _, part := range p {
		if part.User != "" {
			b.WriteString("<@" + part.User + ">")
			continue
		}
		b.WriteString(part.Text)
	}
	return b.String()
}

// Field is a label and a value shown side by side.
type Field struct {
	Label string
	Value string
}

// Button is a message button.
type Button struct {
	Label  string
	Action string
	Value  string
	// Style is "", "primary" or "danger".
	Style string
}

// AllRelays is the relay argument of "check all".
const AllRelays = "all"
