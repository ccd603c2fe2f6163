package config

import (
	"slices"
	"testing"
)

// TestResponseURLHosts: Slack's own host by default; a list in the file
// replaces it (a test server's host:port), not adds to it.
func TestResponseURLHosts(t *testing.T) {
	c, err := Parse(nil, "", t.TempDir(), fakeenv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Slack.ResponseURLHosts, []string{"hooks.slack.com"}) {
		t.Errorf("default response_url_hosts = %q", c.Slack.ResponseURLHosts)
	}
	c, err = Parse([]byte("[slack]\nresponse_url_hosts = [\"127.0.0.1:8099\", \"[::1]:8099\"]\n"), "config.toml", t.TempDir(), fakeenv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Slack.ResponseURLHosts, []string{"127.0.0.1:8099", "[::1]:8099"}) {
		t.Errorf("response_url_hosts = %q", c.Slack.ResponseURLHosts)
	}
	if !slices.Equal(Default().Slack.ResponseURLHosts, []string{"hooks.slack.com"}) {
		t.Error("parsing changed the defaults")
	}
}
