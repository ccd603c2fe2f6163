// Package commands implements the /gmailtls grammar and its handlers. It is
// transport-agnostic: a Request comes in (from Slack, the console or a test),
// a Response model goes out, and the bot or the console renders it. It never
// imports a Slack library.
package commands

// Source tells what started a command.
type Source string

// Command sources, recorded in the audit log and on probe runs.
const (
	SourceSlash    Source = "slash"
	SourceButton   Source = "button"
	SourceSchedule Source = "schedule"
	SourceConsole  Source = "console"
	SourceCLI      Source = "cli"
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

// Button actions. The bot uses them as Slack action_ids.
const (
	ActionRerun       = "gmailtls_rerun"
	ActionTranscript  = "gmailtls_transcript"
	ActionEvidence    = "gmailtls_evidence"
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
