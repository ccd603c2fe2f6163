package config

import (
	"strings"
	"testing"
)

// TestDecodeErrorsDoNotHideOtherProblems: a value of the wrong type is one
// problem among others. The unknown keys and invalid values of the same
// section, and of every other section, are reported in the same run, each
// with its line, and a field that failed to decode is reported once (not
// again by validation for the default it kept).
func TestDecodeErrorsDoNotHideOtherProblems(t *testing.T) {
	in := `[target]
timeout = "abc"
domian = "gmail.com"
family = "7"

[[relay]]
name = "Relay_1"
kind = "remote"

[[relay]]
name = 5
kind = "local"

[escalation]
m_of_k = [6, 5]

[access]
users = "UALICE"
`
	_, err := Parse([]byte(in), "c.toml", t.TempDir(), fakeenv(nil))
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`c.toml:2: target.timeout: "abc" is not a duration`,
		`c.toml:3: unknown key target.domian (did you mean domain?)`,
		`c.toml:4: target.family: "7" is not one of "4", "6" or "any"`,
		`c.toml:7: relay[0]: name: "Relay_1" is not a valid relay name`,
		`c.toml:8: relay[0]: kind: "remote" is not a relay kind`,
		`c.toml:11: relay[1]: name: expected a string, got an integer`,
		`c.toml:15: escalation.m_of_k: [6, 5]: need 1 ≤ M ≤ K ≤ 100`,
		`c.toml:18: access.users: expected an array, got a string`,
	}
	probs := Problems(err)
	if len(probs) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(probs), len(want), err)
	}
	for i, w := range want {
		if i >= len(probs) {
			t.Errorf("missing: %s", w)
			continue
		}
		if got := probs[i].Error(); !strings.HasPrefix(got, w) {
			t.Errorf("problem %d = %q, want it to start with %q", i, got, w)
		}
	}
}

// TestDecodeErrorKeepsTheOtherFields: a bad field leaves the
// rest of that section decoded (a valid value next to it is kept).
func TestDecodeErrorKeepsTheOtherFields(t *testing.T) {
	in := `[target]
timeout = 20
domain = "example.org"

[[relay]]
name = "relay-1"
timeout = true
kind = "local"
`
	_, err := Parse([]byte(in), "c.toml", t.TempDir(), fakeenv(nil))
	probs := Problems(err)
	if len(probs) != 2 {
		t.Fatalf("got %d problems, want 2:\n%v", len(probs), err)
	}
	if !strings.Contains(probs[1].Error(), "relay[0] (relay-1): timeout:") {
		t.Errorf("the relay's problem does not name it: %v", probs[1])
	}
}
