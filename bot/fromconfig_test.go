package bot

import (
	"testing"

	"github.com/gmailtls/gmailtls/config"
)

// TestNeedsRestart: tokens, mode and listen address need a restart; the
// slash command and the response_url hosts do not.
func TestNeedsRestart(t *testing.T) {
	old := config.Slack{Mode: "socket", Listen: "127.0.0.1:3000", Command: "/gmailtls"}
	for _, tc := range []struct {
		name string
		edit func(*config.Slack)
		want bool
	}{
		{"nothing", func(*config.Slack) {}, false},
		{"command", func(s *config.Slack) { s.Command = "/tls" }, false},
		{"response hosts", func(s *config.Slack) { s.ResponseURLHosts = []string{"127.0.0.1:1"} }, false},
		{"mode", func(s *config.Slack) { s.Mode = "http" }, true},
		{"listen", func(s *config.Slack) { s.Listen = "127.0.0.1:3001" }, true},
	} {
		next := old
		tc.edit(&next)
		if got := NeedsRestart(old, next); got != tc.want {
			t.Errorf("%s: NeedsRestart = %v, want %v", tc.name, got, tc.want)
		}
	}
}
