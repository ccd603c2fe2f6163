package relay

import (
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/config"
)

// TestPrepareOneOff: the configuration's target and relay, then what was
// given on top; options an agent relay cannot take and unknown relays are
// refused before anything runs.
func TestPrepareOneOff(t *testing.T) {
	file := config.Default()
	file.Relays = []config.Relay{
		{Name: "relay-1", Kind: KindLocal, SourceIPs: []string{"127.0.0.1"}},
		{Name: "relay-2", Kind: KindAgent, URL: "https://relay-2.test.example:8443"},
	}
	one, err := PrepareOneOff(file, OneOffRequest{Relay: "relay-1", MX: []string{"127.0.0.1:2525"}, Given: map[string]bool{"mx": true}})
	if err != nil {
		t.Fatal(err)
	}
	if c := one.Config; c.Relay != "relay-1" || len(c.Sources) != 1 || len(c.MX) != 1 || c.MX[0].Port != 2525 {
		t.Errorf("config %+v", c)
	}
	if one, err = PrepareOneOff(nil, OneOffRequest{Domain: "gmail.com"}); err != nil || one.Config.Relay != "local" {
		t.Errorf("without a configuration: %+v %v", one, err)
	}
	for _, tc := range []struct {
		file *config.Config
		req  OneOffRequest
		want string
	}{
		{file, OneOffRequest{Relay: "relay-2", Domain: "example.org", Given: map[string]bool{"domain": true}}, "--domain cannot be used with the agent relay relay-2"},
		{file, OneOffRequest{Relay: "relay-9"}, `there is no relay "relay-9"; the relays are relay-1, relay-2`},
		{nil, OneOffRequest{Relay: "relay-9"}, "no configuration names any"},
		{file, OneOffRequest{Timeout: -1, Given: map[string]bool{"timeout": true}}, "want a positive duration"},
	} {
		if _, err := PrepareOneOff(tc.file, tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.req, err, tc.want)
		}
	}
}
