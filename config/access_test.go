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
