package commands

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gmailtls/gmailtls/message"
)

// HelpResponse is the answer to help: every verb with its syntax, or the
// details of one verb. prefix is what a command is typed after, with its
// space ("/gmailtls " in Slack, "gmailtls " in a shell, "" in the
// console).
func HelpResponse(prefix string, topic Verb) message.Response {
	if spec := lookupVerb(topic); spec != nil {
		lines := []string{fmt.Sprintf("`%s%s`: %s", prefix, spec.usage, spec.explain)}
		lines = append(lines, spec.detail...)
		return message.Response{
			Title:     fmt.Sprintf("gmailtls help: %s", topic),
			Verdict:   message.VerdictInfo,
			Summary:   prefix + topic.Usage(),
			Sections:  []message.Section{{Lines: lines}},
			Ephemeral: true,
		}
	}
	var lines, admin []string
	for _, spec := range verbTable {
		line := fmt.Sprintf("`%s%s`: %s", prefix, spec.usage, spec.explain)
		if spec.admin {
			admin = append(admin, line)
		} else {
			lines = append(lines, line)
		}
	}
	return message.Response{
		Title:   "gmailtls: STARTTLS toward Gmail, from your relays",
		Verdict: message.VerdictInfo,
		Summary: "commands: " + verbList(),
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
// the reason and, for syntax errors, the usage of the verb typed after
// prefix (as HelpResponse's).
func ErrorResponse(prefix string, err error) message.Response {
	msg := UserText(err)
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
			lines = append(lines, fmt.Sprintf("Usage: `%s%s`", prefix, pe.Verb.Usage()))
		} else {
			lines = append(lines, fmt.Sprintf("Type `%shelp` for the list of commands.", prefix))
		}
		r.Sections = []message.Section{{Lines: lines}}
	}
	return r
}

// UserText is an error's text for the person who typed the command: the
// package prefixes of the sentinels are left out.
func UserText(err error) string {
	msg := err.Error()
	for _, s := range []error{ErrUnknownRelay, ErrTarget, ErrButton, ErrRefused, ErrSyntax} {
		if errors.Is(err, s) {
			msg = strings.TrimPrefix(msg, s.Error()+": ")
		}
	}
	return msg
}
