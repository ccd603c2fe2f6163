package config

import (
	"errors"
	"testing"
	"time"
)

// fakeenv returns a getenv over a map.
func fakeenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseEmptyGivesDefaults(t *testing.T) {
	c, err := Parse(nil, "config.toml", "/etc/gmailtls", fakeenv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Target.Domain != "gmail.com" || c.Target.Timeout.Duration != 20*time.Second || c.Target.Family != "any" {
		t.Errorf("target defaults: %+v", c.Target)
	}
	if len(c.Relays) != 1 || c.Relays[0].Name != "local" || c.Relays[0].Kind != "local" {
		t.Errorf("implicit relay: %+v", c.Relays)
	}
	if got := c.StoragePath(); got != "/etc/gmailtls/gmailtls.db" {
		t.Errorf("StoragePath = %q", got)
	}
}

func TestParseBadWrapsErrInvalid(t *testing.T) {
	_, err := Parse([]byte("[target]\nfamily = \"5\"\n"), "config.toml", "", fakeenv(nil))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if want := `config.toml:2: target.family: "5" is not one of "4", "6" or "any"`; err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
}
