package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/commands"
	"github.com/gmailtls/gmailtls/internal/smtptest"
)

// TestRelaysShowState: relays (text and --json) shows each relay's state
// as status derives it: level and scope, last success, last failure and
// its class; retired relays have no level.
func TestRelaysShowState(t *testing.T) {
	cfgPath, srv := svcTestSetup(t)
	svcTestConsole(t, cfgPath, "check all")
	srv.SetBehavior(smtptest.ResetAfterReady)
	svcTestConsole(t, cfgPath, "check relay-1")
	svcTestConsole(t, cfgPath, "check relay-2", "check relay-2", "check relay-2")

	code, out, errOut := svcTestRun(t, "", "relays", "--config", cfgPath, "--json")
	if code != exitOK {
		t.Fatalf("relays --json: exit %d: %s", code, errOut)
	}
	var m commands.RelayListing
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("relays --json: %v\n%s", err, out)
	}
	for _, k := range []string{`"level": "investigate"`, `"scope": "one_host"`, `"last_failure_class": "tls_reset"`, `"last_success": "`} {
		if !strings.Contains(out, k) {
			t.Errorf("relays --json lacks %s:\n%s", k, out)
		}
	}
	want := map[string][3]string{
		"relay-1": {"watch", "one_event", "tls_reset"},
		"relay-2": {"investigate", "one_host", "tls_reset"},
		"relay-3": {"ok", "", ""},
	}
	if len(m.Relays) != 3 {
		t.Fatalf("%d relays:\n%s", len(m.Relays), out)
	}
	for _, r := range m.Relays {
		w := want[r.Name]
		if string(r.Level) != w[0] || string(r.Scope) != w[1] || r.LastFailureClass != w[2] || r.Kind != "local" || !r.Configured {
			t.Errorf("%s: level %q scope %q class %q, want %q", r.Name, r.Level, r.Scope, r.LastFailureClass, w)
		}
		if r.LastSuccess == nil || (w[2] != "") != (r.LastFailure != nil) {
			t.Errorf("%s: last success %v, last failure %v", r.Name, r.LastSuccess, r.LastFailure)
		}
	}

	code, text, _ := svcTestRun(t, "", "relays", "--config", cfgPath)
	if code != exitOK {
		t.Fatalf("relays: exit %d", code)
	}
	for _, w := range []string{"gmailtls relays: 3 configured", "State", "relay-1 · watch (one_event)",
		"relay-2 · investigate (one_host)", "relay-3 · ok", "last success", "tls_reset"} {
		if !strings.Contains(text, w) {
			t.Errorf("relays text lacks %q:\n%s", w, text)
		}
	}
}
