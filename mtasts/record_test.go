package mtasts

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRecord(t *testing.T) {
	for _, tc := range []struct {
		txt  string
		want Record
	}{
		{"v=STSv1; id=20190429T010101;", Record{ID: "20190429T010101"}},
		{"v=STSv1; id=20190429T010101", Record{ID: "20190429T010101"}},
		{"v=STSv1;id=1", Record{ID: "1"}},
		{"v=STSv1 ;\tid=abc ; ", Record{ID: "abc"}},
		{"v=STSv1; id=" + strings.Repeat("a", 32), Record{ID: strings.Repeat("a", 32)}},
		// The first id counts (§3.2); extensions are kept, in order.
		{"v=STSv1; id=first; id=second", Record{ID: "first"}},
		{"v=STSv1; ext.1=a:b/c; id=x; x_y-z=!", Record{ID: "x", Extensions: []Field{{"ext.1", "a:b/c"}, {"x_y-z", "!"}}}},
	} {
		got, err := ParseRecord(tc.txt)
		if err != nil {
			t.Errorf("ParseRecord(%q): %v", tc.txt, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseRecord(%q) = %+v, want %+v", tc.txt, got, tc.want)
		}
	}
}

func TestParseRecordInvalid(t *testing.T) {
	for txt, want := range map[string]string{
		"v=STSv1":                                "no id",
		"v=STSv1;":                               "no id",
		"v=STSv1; ext=1":                         "no id",
		"v=STSv2; id=1":                          "does not start with",
		"v=stsv1; id=1":                          "does not start with",
		" v=STSv1; id=1":                         "does not start with",
		"id=1; v=STSv1":                          "does not start with",
		"v=STSv1 id=1":                           `expected ";"`,
		"v=STSv1; id=1 ext=2":                    `expected ";"`,
		"v=STSv1;; id=1":                         "not key=value",
		"v=STSv1; id":                            "not key=value",
		"v=STSv1; id=":                           "id \"\"",
		"v=STSv1; id=2019-04-29":                 "not 1 to 32 letters and digits",
		"v=STSv1; id=" + strings.Repeat("a", 33): "not 1 to 32 letters and digits",
		"v=STSv1; id=1; ext=":                    "is empty",
		"v=STSv1; id=1; ext=a=b":                 "is empty or has",
		"v=STSv1; id=1; =x":                      "field name",
		"v=STSv1; id=1; _x=1":                    "field name",
		"v=STSv1; id=1; ext=\x01":                "is empty or has",
		"v=STSv1; id=1; ext=é":                   "is empty or has",
		"v=STSv1; id=1; " + strings.Repeat("k", 33) + "=1": "field name",
	} {
		_, err := ParseRecord(txt)
		if !errors.Is(err, ErrRecordSyntax) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRecord(%q) = %v, want ErrRecordSyntax saying %q", txt, err, want)
		}
	}
}

func TestIsCandidate(t *testing.T) {
	for txt, want := range map[string]bool{
		"v=STSv1; id=1": true, "v=STSv1": true, "v=STSv1 ; id=1": true, "v=STSv1\t;id=1": true,
		"v=STSv10; id=1": false, "v=spf1 -all": false, "": false, "V=STSv1; id=1": false,
		"google-site-verification=abc": false,
	} {
		if got := IsCandidate(txt); got != want {
			t.Errorf("IsCandidate(%q) = %v, want %v", txt, got, want)
		}
	}
}
