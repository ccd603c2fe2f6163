package mtasts

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParseRecord: ParseRecord never panics, accepts only what the RFC's
// grammar allows, and what it accepts says the same when written back.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		gmailRecord, "v=STSv1; id=1", "v=STSv1 ; id=abc ;  ", "v=STSv1; ext.1=a:b; id=x; id=y",
		"v=STSv1", "v=STSv1;;", "v=STSv1; id=a b", "v=STSv1; id=é", "v=spf1 -all", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		rec, err := ParseRecord(txt)
		if err != nil {
			return
		}
		if !IsCandidate(txt) || !validID(rec.ID) {
			t.Fatalf("accepted %q: %+v", txt, rec)
		}
		out := "v=STSv1; id=" + rec.ID
		for _, e := range rec.Extensions {
			if e.Key == "id" || !validKey(e.Key) || !validRecordValue(e.Value) {
				t.Fatalf("accepted %q with extension %+v", txt, e)
			}
			out += "; " + e.Key + "=" + e.Value
		}
		again, err := ParseRecord(out)
		if err != nil || !reflect.DeepEqual(again, rec) {
			t.Fatalf("%q parsed to %+v, written back as %q, reparsed to %+v, %v", txt, rec, out, again, err)
		}
	})
}

// FuzzParsePolicy: ParsePolicy never panics, what it accepts is a whole
// policy within the RFC's bounds, String writes it back losslessly, and LF
// or CRLF line endings make no difference.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		gmailPolicy, strings.ReplaceAll(gmailPolicy, "\n", "\r\n"),
		"version: STSv1\nmode: none\nmax_age: 0\n",
		"version: STSv1\nmode: testing\nmx: a.example\nmax_age: 31557600\next: x y\n\n",
		"version: STSv1\nmode: enforce\nmode: none\nmx: *.a.example\nmax_age: 1\n",
		"version:STSv1\nmode:enforce\nmx:*\nmax_age:99999999999\n", "Version: STSv1\n", "no colon", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		p, err := ParsePolicy(text)
		if err != nil {
			return
		}
		if p.Version != "STSv1" || p.MaxAge < 0 || p.MaxAge > MaxMaxAge ||
			(p.Mode != ModeEnforce && p.Mode != ModeTesting && p.Mode != ModeNone) ||
			(p.Mode != ModeNone && len(p.MX) == 0) {
			t.Fatalf("accepted %q: %+v", text, p)
		}
		for _, mx := range p.MX {
			if !validMXPattern(mx) {
				t.Fatalf("accepted %q with mx %q", text, mx)
			}
		}
		again, err := ParsePolicy(p.String())
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("%q parsed to %+v, written back as %q, reparsed to %+v, %v", text, p, p.String(), again, err)
		}
		if !strings.Contains(text, "\r") {
			crlf, err := ParsePolicy(strings.ReplaceAll(text, "\n", "\r\n"))
			if err != nil || !reflect.DeepEqual(crlf, p) {
				t.Fatalf("%q with CRLF parsed to %+v, %v; with LF to %+v", text, crlf, err, p)
			}
		}
	})
}

// FuzzMatchPattern: MatchPattern agrees with matching label by label.
func FuzzMatchPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"*.example.com", "mx1.example.com"}, {"*.example.com", "example.com"}, {"*.example.com", "a.b.example.com"},
		{"Example.com.", "example.COM"}, {"*.", "a."}, {"*", "a"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, host string) {
		got := MatchPattern(pattern, host)
		p := strings.Split(canonical(pattern), ".")
		h := strings.Split(canonical(host), ".")
		want := len(p) == len(h) && canonical(host) != ""
		for i := range p {
			if !want {
				break
			}
			switch {
			case i == 0 && p[0] == "*" && len(p) > 1:
				want = h[0] != ""
			default:
				want = p[i] == h[i]
			}
		}
		if canonical(pattern) == "" || canonical(pattern) == "*" {
			want = canonical(pattern) == "*" && canonical(host) == "*"
		}
		if got != want {
			t.Fatalf("MatchPattern(%q, %q) = %v, label by label %v", pattern, host, got, want)
		}
	})
}
