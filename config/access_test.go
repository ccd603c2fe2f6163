package config

import (
	"strings"
	"testing"
)

// TestAccessListsTakeUserIDs: [access] users and admins hold Slack user
// IDs (U… or W… for Enterprise Grid), which do not change and are unique;
// a display name, a handle or anything else is refused with a message
// saying where to find the member ID.
func TestAccessListsTakeUserIDs(t *testing.T) {
	good := []string{"U0123ABCD", "W0123ABCD", "UADMIN", "U01ABCDEFGH"}
	for _, id := range good {
		c := Default()
		c.Access.Users = []string{id}
		c.Access.Admins = []string{id}
		if err := c.Validate(); err != nil {
			t.Errorf("users = admins = [%q]: %v", id, err)
		}
	}
	bad := []string{"alice", "@alice", "Alice Smith", "u0123abcd", "U", "C0123ABCD", "U0123 ", " U0123", "U01-23", "*"}
	for _, id := range bad {
		for _, key := range []string{"users", "admins"} {
			c := Default()
			if key == "users" {
				c.Access.Users = []string{"U0OK", id}
			} else {
				c.Access.Admins = []string{"U0OK", id}
			}
			probs := Problems(c.Validate())
			if len(probs) != 1 {
				t.Errorf("%s = [\"U0OK\", %q]: %d problems, want 1: %v", key, id, len(probs), probs)
				continue
			}
			msg := probs[0].Error()
			for _, w := range []string{"access." + key + "[1]: ", "member ID", "Copy member ID", "not the display name"} {
				if !strings.Contains(msg, w) {
					t.Errorf("%s = [%q]: %q does not say %q", key, id, msg, w)
				}
			}
		}
	}
}

// TestChannelIDShape: a channel ID is C, G or D followed by at least 8
// upper-case letters and digits; names, lower case, user IDs and short
// made-up IDs are refused with a hint on where to copy the real one.
func TestChannelIDShape(t *testing.T) {
	for _, bad := range []string{"mail-alerts", "c0456abc", "U0123ABCD", "C0123", "C0456", "C0123abcd", "#mail-alerts"} {
		for _, key := range []string{"alerts", "report", "access"} {
			var text string
			switch key {
			case "alerts":
				text = "[alerts]\nchannel = \"" + bad + "\"\n"
			case "report":
				text = "[[report]]\ncron = \"@daily\"\nchannel = \"" + bad + "\"\n"
			case "access":
				text = "[access]\nchannels = [\"" + bad + "\"]\n"
			}
			_, err := Parse([]byte(text), "config.toml", "", fakeenv(nil))
			if err == nil {
				t.Errorf("%s %q: accepted", key, bad)
				continue
			}
			if !strings.HasPrefix(bad, "#") && !strings.Contains(err.Error(), "Channel ID at the bottom") {
				t.Errorf("%s %q: %v; want the hint on where to copy the ID", key, bad, err)
			}
		}
	}
	for _, good := range []string{"C0123ABCD", "G01ABCDEFGH", "D0123ABCD", "CREPLACE1"} {
		text := "[alerts]\nchannel = \"" + good + "\"\n[access]\nchannels = [\"" + good + "\"]\n[[report]]\ncron = \"@daily\"\nchannel = \"" + good + "\"\n"
		if _, err := Parse([]byte(text), "config.toml", "", fakeenv(nil)); err != nil {
			t.Errorf("%q refused: %v", good, err)
		}
	}
	// The example's placeholders pass config check but not serve.
	c, err := Parse([]byte("[alerts]\nchannel = \"CREPLACE2\"\n[[report]]\ncron = \"@daily\"\nchannel = \"CREPLACE1\"\n"), "config.toml", "",
		fakeenv(map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}))
	if err != nil {
		t.Fatal(err)
	}
	err = c.RequireSlack()
	if err == nil || !strings.Contains(err.Error(), `report[0]: channel: "CREPLACE1" is the example's placeholder`) || !strings.Contains(err.Error(), `alerts.channel: "CREPLACE2" is the example's placeholder`) {
		t.Errorf("RequireSlack with the example's placeholders = %v", err)
	}
}
