package commands

import (
	"errors"
	"fmt"
	"slices"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/message"
)

// ErrRefused marks a request that the access rules refuse. Every refusal
// wraps it; its text is the reason shown to the requester.
var ErrRefused = errors.New("commands: refused")

// Authorize decides whether req may run a command with verb v under the
// access rules: channels and users allowlists (empty means any), admins for
// the admin-only verbs. Users are matched by Slack user ID only, never by
// name. Local requests are always allowed. The error wraps
// ErrRefused and its text is the reason to show.
func Authorize(a config.Access, req message.Request, v Verb) error {
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
func matchUser(list []string, req message.Request) bool {
	return req.UserID != "" && slices.Contains(list, req.UserID)
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
