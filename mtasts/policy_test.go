package mtasts

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// gmailPolicy is gmail.com's policy as Google serves it.
const gmailPolicy = "version: STSv1\nmode: enforce\nmx: gmail-smtp-in.l.google.com\nmx: *.gmail-smtp-in.l.google.com\nmax_age: 86400\n"

func TestParsePolicy(t *testing.T) {
	gmail := Policy{Version: "STSv1", Mode: ModeEnforce, MaxAge: 86400,
		MX: []string{"gmail-smtp-in.l.google.com", "*.gmail-smtp-in.l.google.com"}}
	for _, tc := range []struct {
		name, text string
		want       Policy
	}{
		{"gmail", gmailPolicy, gmail},
		{"CRLF", strings.ReplaceAll(gmailPolicy, "\n", "\r\n"), gmail},
		{"no final newline", strings.TrimSuffix(gmailPolicy, "\n"), gmail},
		{"blank lines and spaces", "\nversion:STSv1 \r\n\nmode:\tenforce\nmx:   gmail-smtp-in.l.google.com\n" +
			"mx: *.gmail-smtp-in.l.google.com\t\nmax_age: 86400\n\n\n", gmail},
		{"any order", "max_age: 86400\nmx: gmail-smtp-in.l.google.com\nmode: enforce\nmx: *.gmail-smtp-in.l.google.com\nversion: STSv1\n", gmail},
		{"first of a repeated key counts", "version: STSv1\nmode: testing\nmode: enforce\nmx: a.example\nmax_age: 5\nmax_age: 6\n",
			Policy{Version: "STSv1", Mode: ModeTesting, MX: []string{"a.example"}, MaxAge: 5}},
		{"unknown keys kept and ignored", "version: STSv1\nmode: none\nmax_age: 0\nreport-uri: mailto:x@example.com, y\nX.y_z-1: é ü\n",
			Policy{Version: "STSv1", Mode: ModeNone, MaxAge: 0,
				Extensions: []Field{{"report-uri", "mailto:x@example.com, y"}, {"X.y_z-1", "é ü"}}}},
		{"mode none needs no mx", "version: STSv1\nmode: none\nmax_age: 86400\n",
			Policy{Version: "STSv1", Mode: ModeNone, MaxAge: 86400}},
		{"largest max_age", "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 31557600\n",
			Policy{Version: "STSv1", Mode: ModeTesting, MX: []string{"mx.example.com"}, MaxAge: MaxMaxAge}},
		{"leading zeros", "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 0000000001\n",
			Policy{Version: "STSv1", Mode: ModeTesting, MX: []string{"mx.example.com"}, MaxAge: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePolicy(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			again, err := ParsePolicy(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("String() does not parse back: %+v, %v\n%s", again, err, got.String())
			}
		})
	}
}

func TestParsePolicyInvalid(t *testing.T) {
	const ok = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n"
	for _, tc := range []struct{ name, text, want string }{
		{"empty", "", `no "version" line`},
		{"no version", "mode: enforce\nmx: mx.example.com\nmax_age: 1\n", `no "version" line`},
		{"no mode", "version: STSv1\nmx: mx.example.com\nmax_age: 1\n", `no "mode" line`},
		{"no max_age", "version: STSv1\nmode: testing\nmx: mx.example.com\n", `no "max_age" line`},
		{"no mx in enforce", "version: STSv1\nmode: enforce\nmax_age: 1\n", `mode enforce but no "mx" line`},
		{"no mx in testing", "version: STSv1\nmode: testing\nmax_age: 1\n", `mode testing but no "mx" line`},
		{"keys are case-sensitive", "Version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n", `keys are case-sensitive; the file has ["Version"]`},
		{"version", strings.Replace(ok, "STSv1", "STSv2", 1), `line 1: version "STSv2"`},
		{"version case", strings.Replace(ok, "STSv1", "stsv1", 1), `version "stsv1"`},
		{"mode", strings.Replace(ok, "enforce", "Enforce", 1), `line 2: mode "Enforce"`},
		{"mode unknown", strings.Replace(ok, "enforce", "strict", 1), `mode "strict"`},
		{"repeated mode still checked", ok + "mode: sometimes\n", `line 5: mode "sometimes"`},
		{"max_age too big", strings.Replace(ok, "86400", "31557601", 1), "exceeds 31557600"},
		{"max_age 11 digits", strings.Replace(ok, "86400", "00000086400", 1), "not 1 to 10 digits"},
		{"max_age negative", strings.Replace(ok, "86400", "-1", 1), "not 1 to 10 digits"},
		{"max_age empty", strings.Replace(ok, "86400", "", 1), "not 1 to 10 digits"},
		{"max_age words", strings.Replace(ok, "86400", "1 day", 1), "not 1 to 10 digits"},
		{"mx with a path", strings.Replace(ok, "mx.example.com", "mx.example.com/x", 1), "is not a host name"},
		{"mx wildcard inside", strings.Replace(ok, "mx.example.com", "mx.*.example.com", 1), "is not a host name"},
		{"mx bare wildcard", strings.Replace(ok, "mx.example.com", "*", 1), "is not a host name"},
		{"mx root dot", strings.Replace(ok, "mx.example.com", "mx.example.com.", 1), "is not a host name"},
		{"mx U-label", strings.Replace(ok, "mx.example.com", "mx.bücher.de", 1), "is not a host name"},
		{"mx empty", strings.Replace(ok, "mx.example.com", "", 1), "is not a host name"},
		{"mx two names", strings.Replace(ok, "mx.example.com", "a.example b.example", 1), "is not a host name"},
		{"no colon", ok + "garbage\n", `line 5: "garbage" is not "key: value"`},
		{"key with space", ok + "bad key: 1\n", `key "bad key"`},
		{"indented key", ok + " ext: 1\n", `key " ext"`},
		{"empty extension", ok + "ext:\n", `empty value of "ext"`},
		{"control character", ok + "ext: a\x00b\n", "control character"},
		{"bare CR", "version: STSv1\rmode: enforce\nmx: a.example\nmax_age: 1\n", `line 1: the value of "version" has a control character`},
		{"not UTF-8", ok + "ext: \xff\n", "not valid UTF-8"},
		{"HTML", "<html><body>Not Found</body></html>\n", `"<html><body>Not Found</body></html>" is not "key: value"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePolicy(tc.text)
			if !errors.Is(err, ErrPolicySyntax) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParsePolicy(%q) = %v, want ErrPolicySyntax saying %q", tc.text, err, tc.want)
			}
		})
	}
}

func TestPolicyMatch(t *testing.T) {
	p, err := ParsePolicy(gmailPolicy)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"gmail-smtp-in.l.google.com":        "gmail-smtp-in.l.google.com",
		"alt4.gmail-smtp-in.l.google.com.":  "*.gmail-smtp-in.l.google.com",
		"mx.google.com":                     "",
		"x.alt4.gmail-smtp-in.l.google.com": "",
	} {
		got, ok := p.Match(host)
		if got != want || ok != (want != "") {
			t.Errorf("Match(%q) = %q, %v; want %q", host, got, ok, want)
		}
	}
}
