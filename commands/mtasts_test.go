package commands

import (
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/mtasts"
	"github.com/gmailtls/gmailtls/probe"
)

// TestMTASTSSection: the evidence's MTA-STS section shows the policy's
// mode, id, max_age and patterns, the MTA-STS verdict on its own line and
// the TLS verdict on another, and each MX host in or not in the policy
// with its certificate verdict; without a report it says why.
func TestMTASTSSection(t *testing.T) {
	pol, err := mtasts.ParsePolicy("version: STSv1\nmode: enforce\nmx: *.gmail-smtp-in.l.google.com\nmax_age: 86400\n")
	if err != nil {
		t.Fatal(err)
	}
	d := mtasts.Discovery{Domain: "gmail.com", Class: mtasts.ClassOK, ID: "20190429T010101", Policy: &pol}
	results := []probe.Result{
		{MX: "alt1.gmail-smtp-in.l.google.com", Preference: 5, Stage: probe.StageHandshake, Failure: "tls_reset"},
		{MX: "mx.evil.example", Preference: 10, Stage: probe.StageHandshake, Failure: "tls_reset"},
	}
	r := mtasts.Judge(d, nil, results)
	sec := mtastsSection(&r, "")
	fields := map[string]string{}
	for _, f := range sec.Fields {
		fields[f.Label] = f.Value
	}
	for label, want := range map[string]string{
		"MTA-STS verdict": "mx_not_in_policy", "Mode": "enforce", "Policy id": "20190429T010101",
		"max_age": "86400 s", "MX patterns": "*.gmail-smtp-in.l.google.com",
	} {
		if fields[label] != want {
			t.Errorf("%s = %q, want %q", label, fields[label], want)
		}
	}
	text := strings.Join(sec.Lines, "\n")
	var stsLine, tlsLine bool
	for _, l := range sec.Lines {
		stsLine = stsLine || strings.HasPrefix(l, "MTA-STS gmail.com: mx_not_in_policy")
		tlsLine = tlsLine || strings.HasPrefix(l, "TLS, not MTA-STS:")
	}
	if !stsLine || !tlsLine {
		t.Errorf("the MTA-STS and TLS verdicts are not on lines of their own:\n%s", text)
	}
	for _, want := range []string{
		"alt1.gmail-smtp-in.l.google.com: in policy (*.gmail-smtp-in.l.google.com); certificate no_tls",
		"mx.evil.example: not in policy; certificate no_tls",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("lacks %q:\n%s", want, text)
		}
	}
	if sec := mtastsSection(nil, "the MTA-STS policy is not fetched from agent relays yet"); len(sec.Lines) != 1 || !strings.HasPrefix(sec.Lines[0], "Not checked: ") {
		t.Errorf("without a report: %+v", sec)
	}
}
