package commands

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gmailtls/gmailtls/message"
)

// explain is the one-line description of each verb.
func (v Verb) explain() string {
	switch v {
	case VerbCheck:
		return "probe STARTTLS from a relay (or all relays) to the target's MX hosts now"
	case VerbStatus:
		return "escalation level of every relay and across relays"
	case VerbHistory:
		return "stored probe results of a relay, newest first (default 24h)"
	case VerbRelays:
		return "configured relays: kind, source IPs, paused, retired"
	case VerbEvidence:
		return "full evidence of a relay's latest failing probe"
	case VerbReport:
		return "health summary: success rate, failures by class, hourly trend"
	case VerbHelp:
		return "this help"
	case VerbPause:
		return "stop scheduled probing of a relay for a while (admins, default 1h)"
	case VerbResume:
		return "resume scheduled probing of a paused relay (admins)"
	}
	return ""
}

// detail is the longer help of a verb.
func (v Verb) detail() []string {
	switch v {
	case VerbCheck:
		return []string{
			"Runs a real STARTTLS probe from the relay toward every MX host of the configured target,",
			"per IP address and per source IP, and shows which stage failed and how.",
			"`--mx host` narrows the probe to one of the configured MX hosts; no command can aim",
			"gmailtls at any other host or port.",
			"Examples: `check relay-2` · `check all` · `check relay-2 --mx alt1.gmail-smtp-in.l.google.com`",
		}
	case VerbHistory:
		return []string{
			"The window is a duration: 30m, 24h, 7d, 1d12h.",
			"Example: `history relay-2 7d`",
		}
	case VerbReport:
		return []string{
			"Per relay: level, success rate, failures by class, median handshake time, last failure,",
			"open incidents and a trend with one character per hour (▁ all passed … █ all failed).",
		}
	case VerbPause:
		return []string{
			"A paused relay is skipped by scheduled probing until the pause ends; `check` still works.",
			"Example: `pause relay-2 2h`",
		}
	}
	return nil
}

// HelpResponse is the answer to help: every verb with its syntax, or the
// details of one verb.
func HelpResponse(command string, topic Verb) message.Response {
	if command == "" {
		command = "/gmailtls"
	}
	if topic != "" && knownVerb(topic) {
		lines := []string{fmt.Sprintf("`%s %s`: %s", command, topic.Usage(), topic.explain())}
		lines = append(lines, topic.detail()...)
		return message.Response{
			Title:     fmt.Sprintf("gmailtls help: %s", topic),
			Verdict:   message.VerdictInfo,
			Summary:   fmt.Sprintf("%s %s", command, topic.Usage()),
			Sections:  []message.Section{{Lines: lines}},
			Ephemeral: true,
		}
	}
	var lines, admin []string
	for _, v := range Verbs {
		line := fmt.Sprintf("`%s %s`: %s", command, v.Usage(), v.explain())
		if v.AdminOnly() {
			admin = append(admin, line)
		} else {
			lines = append(lines, line)
		}
	}
	return message.Response{
		Title:   "gmailtls: STARTTLS toward Gmail, from your relays",
		Verdict: message.VerdictInfo,
		Summary: "commands: check, status, history, relays, evidence, report, help, pause, resume",
		Sections: []message.Section{
			{Heading: "Commands", Lines: lines},
			{Heading: "Admins only", Lines: admin},
			{Lines: []string{
				"Levels: ok → watch (one failure: a blip, let the retry queue work) → investigate (the same relay keeps failing) → incident (several relays fail toward Gmail).",
			}},
		},
		Ephemeral: true,
	}
}

// ErrorResponse is the ephemeral answer to a command that could not run:
// the reason and, for syntax errors, the usage of the verb.
func ErrorResponse(command string, err error) message.Response {
	if command == "" {
		command = "/gmailtls"
	}
	msg := userText(err)
	r := message.Response{
		Title:     "gmailtls could not do that",
		Verdict:   message.VerdictWarn,
		Summary:   msg,
		Sections:  []message.Section{{Lines: []string{msg}}},
		Ephemeral: true,
	}
	if pe, ok := err.(*ParseError); ok {
		r.Title = "gmailtls could not read that command"
		lines := []string{pe.Message}
		if pe.Verb != "" {
			lines = append(lines, fmt.Sprintf("Usage: `%s %s`", command, pe.Verb.Usage()))
		} else {
			lines = append(lines, fmt.Sprintf("Type `%s help` for the list of commands.", command))
		}
		r.Sections = []message.Section{{Lines: lines}}
	}
	return r
}

// userText is an error's text for the person who typed the command: the
// package prefixes of this package's sentinels are left out.
func userText(err error) string {
	msg := err.Error()
	for _, s := range []error{ErrUnknownRelay, ErrTarget, ErrButton} {
		if errors.Is(err, s) {
			msg = strings.TrimPrefix(msg, s.Error()+": ")
		}
	}
	return msg
}
