package alerts

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/probe"
)

// Alert is everything an alert message shows. It is kept, as JSON, in
// storage's alert model of its incident (storage.Store.SetAlertModel) when
// the first message is written and when the level rises, so that later
// updates (acknowledged, muted, level risen, resolved) are rebuilt from it.
type Alert struct {
	IncidentID int64
	Relay      string // "" for the global level
	Level      escalation.Level
	Scope      escalation.Scope
	Advice     string
	OpenedAt   time.Time
	// FailingRelays are the relays behind a global alert.
	FailingRelays []string `json:",omitempty"`
	// Failing are the stored failing results behind the level (newest
	// last), Evidence their ids.
	Failing  []probe.Result `json:",omitempty"`
	Evidence []int64        `json:",omitempty"`
	// Confirmation: the automatic re-probe of the same relay, and, where
	// another relay exists, a second relay toward the same MX addresses.
	// Confirmed is false when there was none (ConfirmNote says why).
	Confirmed   bool
	ConfirmNote string         `json:",omitempty"`
	Again       []probe.Result `json:",omitempty"`
	SecondRelay string         `json:",omitempty"`
	Second      []probe.Result `json:",omitempty"`
	// Transcript is the tail of the failing transcript.
	Transcript []string `json:",omitempty"`

	// State, filled in when an update is rebuilt.
	AckedBy    string    `json:",omitempty"`
	AckedAt    time.Time `json:",omitzero"`
	MutedBy    string    `json:",omitempty"`
	MutedUntil time.Time `json:",omitzero"`
	ResolvedAt time.Time `json:",omitzero"`
	// ResolvedNote says why the incident was closed when it is not the
	// level back to ok.
	ResolvedNote string `json:",omitempty"`
}

// TranscriptLines is how many lines of the failing transcript an alert
// shows.
const TranscriptLines = 10

// Keys of the outbox messages of incident id. Every message about an
// incident has its own key, so producing it again (a second Sync, a
// restart) enqueues nothing.
func AlertKey(id int64) string { return "alert:" + strconv.FormatInt(id, 10) }

// LevelKey is the key of the update of alert id to level.
func LevelKey(id int64, level escalation.Level) string {
	return AlertKey(id) + ":level:" + string(level)
}

// LevelNoteKey is the key of the thread note about the rise to level.
func LevelNoteKey(id int64, level escalation.Level) string { return LevelKey(id, level) + ":note" }

// ResolutionKey is the key of the resolution note in the alert's thread.
func ResolutionKey(id int64) string { return "resolution:" + strconv.FormatInt(id, 10) }

// ResolvedKey is the key of the update of the alert to resolved.
func ResolvedKey(id int64) string { return AlertKey(id) + ":resolved" }

// AckKey is the key of the update of the alert to acknowledged.
func AckKey(id int64) string { return AlertKey(id) + ":ack" }

// MuteKey is the key of the update of the alert to muted until until.
func MuteKey(id int64, until time.Time) string {
	return AlertKey(id) + ":mute:" + strconv.FormatInt(until.Unix(), 10)
}

// RemindKey is the key of reminder number n of incident id.
func RemindKey(id int64, n int) string {
	return "remind:" + strconv.FormatInt(id, 10) + ":" + strconv.Itoa(n)
}

// FlapKey is the key of the flapping report of relay ("" global) for the
// flapping episode that began at episodeStart (its first level change
// after an hour without any): one report per episode, however long it
// lasts, and a new one when the relay flaps again after a quiet hour.
func FlapKey(relay string, episodeStart time.Time) string {
	return "flap:" + relayLabel(relay) + ":" + episodeStart.UTC().Format("2006-01-02T15:04:05Z")
}

// RerunValue is the Re-run button's value for relay, in the form the
// commands handler reads ("relay=relay-2"; "relay=all" for the global
// level).
func RerunValue(relay string) string {
	if relay == "" {
		relay = message.AllRelays
	}
	return url.Values{"relay": {relay}}.Encode()
}

// IncidentValue is the Acknowledge and Mute buttons' value: the incident id.
func IncidentValue(id int64) string { return strconv.FormatInt(id, 10) }

// ParseIncidentValue reads an Acknowledge or Mute button's value.
func ParseIncidentValue(s string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: %q is not an incident number", ErrButton, s)
	}
	return id, nil
}

// MuteFor is how long the Mute button silences an incident.
const MuteFor = time.Hour

func relayLabel(relay string) string {
	if relay == "" {
		return "global"
	}
	return relay
}

func who(relay string) string {
	if relay == "" {
		return "All relays"
	}
	return relay
}

func levelText(l escalation.Level, s escalation.Scope) string {
	if s == "" {
		return string(l)
	}
	return string(l) + " (" + string(s) + ")"
}

func verdict(l escalation.Level) message.Verdict {
	switch l {
	case escalation.LevelWatch:
		return message.VerdictWarn
	case escalation.LevelInvestigate, escalation.LevelIncident:
		return message.VerdictFail
	}
	return message.VerdictOK
}

// userRef shows a Slack user id as a mention; other names as they are.
func userRef(u string) string {
	if u == "" {
		return "someone"
	}
	if strings.HasPrefix(u, "<@") || !isSlackID(u) {
		return u
	}
	return "<@" + u + ">"
}

// userPart is u as a Phrase part: a mention of a Slack user id (also
// written "<@U…>"), other names ("console") as text.
func userPart(u string) message.Part {
	if id, ok := strings.CutPrefix(strings.TrimSuffix(u, ">"), "<@"); ok && isSlackID(id) {
		return message.Mention(id)
	}
	if isSlackID(u) {
		return message.Mention(u)
	}
	if u == "" {
		u = "someone"
	}
	return message.Text(u)
}

func isSlackID(s string) bool {
	if len(s) < 2 || (s[0] != 'U' && s[0] != 'W') {
		return false
	}
	for _, r := range s[1:] {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

func clockTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.Local
	}
	return t.In(loc).Format("15:04 MST")
}

func stamp(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.Local
	}
	return t.In(loc).Format("2006-01-02 15:04 MST")
}

// Duration writes how long an incident lasted: "42m", "1h5m", "3d2h".
func Duration(d time.Duration) string {
	d = d.Round(time.Minute)
	switch {
	case d < time.Minute:
		return "less than a minute"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, h)
}

func resultLines(rs []probe.Result) []string {
	sources := map[string]bool{}
	for _, r := range rs {
		sources[r.SourceIP] = true
	}
	lines := make([]string, 0, len(rs))
	for _, r := range rs {
		lines = append(lines, message.ResultRow(r, len(sources) > 1))
	}
	return lines
}

// Tail returns the last n lines of a transcript.
func Tail(lines []string, n int) []string {
	if len(lines) <= n {
		return lines
	}
	return lines[len(lines)-n:]
}

// AlertResponse is the alert message: level, scope and advice; the failing
// results; both confirmation results; the transcript excerpt; and the
// buttons Re-run, Acknowledge and Mute 1h. Once acknowledged, muted or
// resolved it says so, and a resolved alert has no buttons.
func AlertResponse(a Alert, loc *time.Location) message.Response {
	resp := message.Response{Verdict: verdict(a.Level)}
	resp.Title = fmt.Sprintf("%s: STARTTLS toward Gmail failing, %s", who(a.Relay), levelText(a.Level, a.Scope))
	if !a.ResolvedAt.IsZero() {
		resp.Title = fmt.Sprintf("Resolved: %s was at %s for %s", who(a.Relay), levelText(a.Level, a.Scope), Duration(a.ResolvedAt.Sub(a.OpenedAt)))
		resp.Verdict = message.VerdictOK
	}
	resp.Summary = fmt.Sprintf("gmailtls: %s at %s", who(a.Relay), levelText(a.Level, a.Scope))
	if a.Advice != "" {
		resp.Summary += ": " + a.Advice
	}

	fields := []message.Field{
		{Label: "Level", Value: levelText(a.Level, a.Scope)},
		{Label: "Since", Value: stamp(a.OpenedAt, loc)},
	}
	if a.Advice != "" {
		fields = append(fields, message.Field{Label: "Advice", Value: a.Advice})
	}
	if len(a.FailingRelays) > 0 {
		fields = append(fields, message.Field{Label: "Failing relays", Value: strings.Join(a.FailingRelays, ", ")})
	}
	resp.Sections = append(resp.Sections, message.Section{Fields: fields})

	if len(a.Failing) > 0 {
		resp.Sections = append(resp.Sections, message.Section{Heading: "Failing probes", Lines: resultLines(a.Failing)})
	}
	conf := message.Section{Heading: "Confirmation"}
	switch {
	case len(a.Again) > 0:
		head := "Re-probe from " + who(a.Relay) + ":"
		if a.ConfirmNote != "" {
			head = a.ConfirmNote
		}
		conf.Lines = append(conf.Lines, head)
		conf.Lines = append(conf.Lines, resultLines(a.Again)...)
	case a.ConfirmNote != "":
		conf.Lines = append(conf.Lines, a.ConfirmNote)
	}
	if a.SecondRelay != "" && len(a.Second) > 0 {
		conf.Lines = append(conf.Lines, "Second relay "+a.SecondRelay+" toward the same addresses:")
		conf.Lines = append(conf.Lines, resultLines(a.Second)...)
	} else if len(a.Again) > 0 {
		conf.Lines = append(conf.Lines, "No second relay reaches the same MX addresses.")
	}
	if len(conf.Lines) > 0 {
		resp.Sections = append(resp.Sections, conf)
	}
	if len(a.Transcript) > 0 {
		resp.Sections = append(resp.Sections, message.Section{Heading: "Transcript (end)", Lines: Tail(a.Transcript, TranscriptLines), Code: true})
	}

	// Who acknowledged or muted is mentioned (a message.Phrase: the only
	// live mentions of a message).
	var state []message.Phrase
	if !a.AckedAt.IsZero() {
		end := "."
		if a.Level == escalation.LevelIncident {
			// Only level incident is reminded (Remind).
			end = "; reminders stopped."
		}
		state = append(state, message.Phrase{message.Text("Acknowledged by "), userPart(a.AckedBy),
			message.Text(" at " + clockTime(a.AckedAt, loc) + end)})
	}
	if a.MutedUntil.After(a.OpenedAt) && a.ResolvedAt.IsZero() {
		line := message.Phrase{message.Text("Muted until " + clockTime(a.MutedUntil, loc) + ".")}
		if a.MutedBy != "" {
			line = message.Phrase{message.Text("Muted by "), userPart(a.MutedBy), message.Text(" until " + clockTime(a.MutedUntil, loc) + ".")}
		}
		state = append(state, line)
	}
	if !a.ResolvedAt.IsZero() {
		state = append(state, message.Phrase{message.Text(fmt.Sprintf("Resolved at %s after %s.", clockTime(a.ResolvedAt, loc), Duration(a.ResolvedAt.Sub(a.OpenedAt))))})
	}
	if len(state) > 0 {
		resp.Sections = append(resp.Sections, message.Section{Phrases: state})
	}

	if a.ResolvedAt.IsZero() {
		resp.Buttons = append(resp.Buttons, message.Button{Label: "Re-run", Action: message.ActionRerun, Value: RerunValue(a.Relay), Style: "primary"})
		if a.AckedAt.IsZero() {
			resp.Buttons = append(resp.Buttons, message.Button{Label: "Acknowledge", Action: message.ActionAcknowledge, Value: IncidentValue(a.IncidentID)})
		}
		resp.Buttons = append(resp.Buttons, message.Button{Label: "Mute 1h", Action: message.ActionMute, Value: IncidentValue(a.IncidentID), Style: "danger"})
	}
	resp.Context = fmt.Sprintf("incident #%d · %s", a.IncidentID, stamp(a.OpenedAt, loc))
	if len(a.Evidence) > 0 {
		ids := make([]string, len(a.Evidence))
		for i, id := range a.Evidence {
			ids[i] = strconv.FormatInt(id, 10)
		}
		resp.Context += " · evidence " + strings.Join(ids, ", ")
	}
	return resp
}

// LevelNoteResponse is the thread note when an open incident's level rises.
func LevelNoteResponse(a Alert, from escalation.Level, at time.Time, loc *time.Location) message.Response {
	return message.Response{
		Title:   fmt.Sprintf("%s rose from %s to %s at %s", who(a.Relay), from, levelText(a.Level, a.Scope), clockTime(at, loc)),
		Verdict: verdict(a.Level),
		Summary: fmt.Sprintf("%s is now at %s", who(a.Relay), levelText(a.Level, a.Scope)),
		Sections: []message.Section{{Lines: nonEmpty(a.Advice),
			Fields: failingField(a.FailingRelays)}},
	}
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{"Advice: " + s}
}

func failingField(relays []string) []message.Field {
	if len(relays) == 0 {
		return nil
	}
	return []message.Field{{Label: "Failing relays", Value: strings.Join(relays, ", ")}}
}

// ResolutionResponse is the note in the alert's thread when the level is
// back to ok: how long the incident lasted.
func ResolutionResponse(a Alert, resolvedAt time.Time, loc *time.Location) message.Response {
	d := Duration(resolvedAt.Sub(a.OpenedAt))
	line := fmt.Sprintf("Back to ok at %s after consecutive successful probes; it was at %s since %s.",
		clockTime(resolvedAt, loc), levelText(a.Level, a.Scope), clockTime(a.OpenedAt, loc))
	if a.ResolvedNote != "" {
		line = a.ResolvedNote
	}
	return message.Response{
		Title:    fmt.Sprintf("%s resolved after %s", who(a.Relay), d),
		Verdict:  message.VerdictOK,
		Summary:  fmt.Sprintf("gmailtls: %s is back to ok, resolved after %s", who(a.Relay), d),
		Sections: []message.Section{{Lines: []string{line}}},
		Context:  fmt.Sprintf("incident #%d", a.IncidentID),
	}
}

// ReminderResponse reminds, in the alert's thread, of an incident nobody
// has acknowledged.
func ReminderResponse(a Alert, at time.Time, loc *time.Location) message.Response {
	d := Duration(at.Sub(a.OpenedAt))
	return message.Response{
		Title:   fmt.Sprintf("Reminder: %s still at %s, for %s, not acknowledged", who(a.Relay), levelText(a.Level, a.Scope), d),
		Verdict: verdict(a.Level),
		Summary: fmt.Sprintf("gmailtls: %s still at %s for %s", who(a.Relay), a.Level, d),
		Sections: []message.Section{{Lines: append(nonEmpty(a.Advice),
			"Press Acknowledge on the alert to stop these reminders, or Mute 1h to silence it for an hour.")}},
		Buttons: []message.Button{
			{Label: "Acknowledge", Action: message.ActionAcknowledge, Value: IncidentValue(a.IncidentID)},
			{Label: "Mute 1h", Action: message.ActionMute, Value: IncidentValue(a.IncidentID), Style: "danger"},
		},
		Context: fmt.Sprintf("incident #%d · opened %s", a.IncidentID, stamp(a.OpenedAt, loc)),
	}
}

// FlapResponse reports, once per episode, a relay whose level changes too
// often; its alerts are held back while it keeps changing that often.
func FlapResponse(f escalation.Flap, level escalation.Level, at time.Time, loc *time.Location) message.Response {
	return message.Response{
		Title:   fmt.Sprintf("%s is flapping: %d level changes since %s", who(f.Relay), f.Changes, clockTime(f.Since, loc)),
		Verdict: message.VerdictWarn,
		Summary: fmt.Sprintf("gmailtls: %s is flapping (%d level changes within an hour)", who(f.Relay), f.Changes),
		Sections: []message.Section{{Lines: []string{
			fmt.Sprintf("The escalation level of %s went up and down %d times within an hour; it is %s now.", who(f.Relay), f.Changes, level),
			"Its further alerts are held back while it keeps changing level this often, and this report is not repeated until it has stayed at one level for an hour. Intermittent STARTTLS failures often mean a middlebox or a path that changes: check the relay's egress and its history.",
		}}},
		Buttons: []message.Button{{Label: "Re-run", Action: message.ActionRerun, Value: RerunValue(f.Relay)}},
		Context: "flapping · " + stamp(at, loc),
	}
}
