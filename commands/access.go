package commands

import (
	"errors"
	"fmt"
	"slices"

	"github.com/gmailtls/gmailtls/config"
)

// ErrRefused marks a request that the access rules refuse. Every refusal
// wraps it; its text is the reason shown to the requester.
var ErrRefused = errors.New("commands: refused")

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

// who names the requester for messages and the audit log.
func (r Request) who() string {
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

// requester is the short name recorded on probe runs.
func (r Request) requester() string {
	switch {
	case r.UserID != "":
		return r.UserID
	case r.UserName != "":
		return r.UserName
	}
	return string(r.Source)
}

// Authorize decides whether req may run a command with verb v under the
// access rules: channels and users allowlists (empty means any), admins for
// the admin-only verbs. Users are matched by Slack user ID only, never by
// name. Local requests are always allowed. The error wraps
// ErrRefused and its text is the reason to show.
func Authorize(a config.Access, req Request, v Verb) error {
	if req.Local() {
		return nil
	}
	if len(a.Channels) > 0 && !slices.Contains(a.Channels, req.ChannelID) {
		return fmt.Errorf("%w: gmailtls does not take commands in this channel; ask an admin to add %s to [access] channels, or use one of the allowed channels", ErrRefused, orUnknown(req.ChannelID))
	}
	if len(a.Users) > 0 && !matchUser(a.Users, req) && !matchUser(a.Admins, req) {
		return fmt.Errorf("%w: you are not on the gmailtls user list ([access] users); ask an admin to add %s", ErrRefused, orUnknown(req.UserID))
	}
	if v.AdminOnly() && !matchUser(a.Admins, req) {
		return fmt.Errorf("%w: %s is for gmailtls admins only ([access] admins); ask one of them to run it", ErrRefused, v)
	}
	return nil
}

// matchUser reports whether the requester's Slack user ID is on the list.
// Only the ID counts: a display or user name can be changed by its owner
// and is not unique, so a name on the list, or an ID typed as a name,
// matches nobody (config validation refuses names).
func matchUser(list []string, req Request) bool {
	return req.UserID != "" && slices.Contains(list, req.UserID)
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
