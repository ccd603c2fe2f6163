package commands

import (
	"errors"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/config"
	"github.com/gmailtls/gmailtls/message"
)

func TestAuthorize(t *testing.T) {
	open := config.Access{Admins: []string{"UADMIN"}}
	closed := config.Access{Channels: []string{"COPS"}, Users: []string{"UALICE", "UBOB"}, Admins: []string{"UADMIN"}}
	// Lists written with names (which Validate now refuses) must not let
	// anyone in by choosing that display name: names are neither fixed nor
	// unique, only the user ID identifies a person.
	named := config.Access{Users: []string{"alice"}, Admins: []string{"alice"}}
	slash := func(user, name, channel string) message.Request {
		return message.Request{UserID: user, UserName: name, ChannelID: channel, Source: message.SourceSlash}
	}
	tests := []struct {
		name   string
		access config.Access
		req    message.Request
		verb   Verb
		reason string // "" means allowed
	}{
		{"anyone may check when lists are empty", open, slash("UX", "x", "CANY"), VerbCheck, ""},
		{"pause needs an admin", open, slash("UX", "x", "CANY"), VerbPause, "pause is for gmailtls admins only"},
		{"admin may pause", open, slash("UADMIN", "", "CANY"), VerbPause, ""},
		{"resume needs an admin", open, slash("UX", "x", "CANY"), VerbResume, "resume is for gmailtls admins only"},
		{"channel not allowed", closed, slash("UALICE", "", "COTHER"), VerbStatus, "does not take commands in this channel"},
		{"user not allowed", closed, slash("UEVE", "eve", "COPS"), VerbStatus, "not on the gmailtls user list"},
		{"user allowed by id", closed, slash("UALICE", "", "COPS"), VerbStatus, ""},
		{"user allowed by id, whatever the name", closed, slash("UBOB", "robert", "COPS"), VerbCheck, ""},
		{"a user name is not an id", closed, slash("UMALLORY", "UALICE", "COPS"), VerbCheck, "not on the gmailtls user list"},
		{"an admin's name does not make an admin", config.Access{Admins: []string{"alice"}}, slash("UMALLORY", "alice", "CANY"), VerbPause, "for gmailtls admins only"},
		{"an admin's id as a name does not make an admin", open, slash("UMALLORY", "UADMIN", "CANY"), VerbPause, "for gmailtls admins only"},
		{"names on the user list match nobody", named, slash("UMALLORY", "alice", "CANY"), VerbCheck, "not on the gmailtls user list"},
		{"admin not on user list still allowed", closed, slash("UADMIN", "", "COPS"), VerbResume, ""},
		{"allowed user is not admin", closed, slash("UALICE", "", "COPS"), VerbPause, "for gmailtls admins only"},
		{"button presses follow the same rules", closed, message.Request{UserID: "UEVE", ChannelID: "COPS", Source: message.SourceButton}, VerbCheck, "not on the gmailtls user list"},
		{"console is trusted", closed, message.Request{UserName: "console", Source: message.SourceConsole}, VerbPause, ""},
		{"cli is trusted", closed, message.Request{Source: message.SourceCLI}, VerbCheck, ""},
		{"scheduler is trusted", closed, message.Request{Source: message.SourceSchedule}, VerbCheck, ""},
		{"unknown source is not trusted", closed, message.Request{UserID: "UEVE"}, VerbCheck, "does not take commands in this channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Authorize(tt.access, tt.req, tt.verb)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("allowed, want refusal %q", tt.reason)
			}
			if !errors.Is(err, ErrRefused) {
				t.Errorf("%v does not wrap ErrRefused", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("refusal %q does not say %q", err, tt.reason)
			}
		})
	}
}
