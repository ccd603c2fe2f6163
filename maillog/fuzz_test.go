package maillog

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse: any line parses or not without panicking, and what it keeps
// never holds a local part that Redact would have removed.
func FuzzParse(f *testing.F) {
	for l := range strings.Lines(issueLog) {
		f.Add(l)
	}
	for _, s := range []string{
		"2026-12-04 19:40:02 1tJxQa-000Abc-5D == alice@gmail.com R=dnslookup T=remote_smtp defer (-38) H=gmail-smtp-in.l.google.com [142.250.102.26]: a TLS session is required",
		"2026-12-04 19:45:00.123 +0000 [4242] 1tJxUf-00000000042-AbCd TLS error on connection to alt1.gmail-smtp-in.l.google.com [142.251.9.26]:25 (SSL_connect): x",
		"2026-12-04T19:40:01+0000 h postfix/smtp[1]: connect to a[1.2.3.4]:25: Connection timed out",
		"Dec 04 19:37:16 relay postfix/smtp[30368]: 7DA3F988FCF: to=<", "Dec  4 ", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		l, ok := Parse(line, utc)
		if !ok {
			return
		}
		if l.Raw != Redact(l.Raw) {
			t.Errorf("Raw %q is not redacted", l.Raw)
		}
		a := NewAggregator(time.Time{}, utc.Now.Add(time.Hour), utc, Limits{QueueIDs: 2, Lines: 2, MX: 2, Attempts: 2})
		a.Add(l)
		a.Add(l)
		_ = a.Summary()
	})
}
