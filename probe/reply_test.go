package probe

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func newReader(s string, maxLine int) *bufio.Reader {
	return bufio.NewReaderSize(strings.NewReader(s), maxLine+2)
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		code     int
		enhanced string
		lines    int
		text     string
		err      error
	}{
		{"greeting", "220 mx.google.com ESMTP x - gsmtp\r\n", 220, "", 1, "mx.google.com ESMTP x - gsmtp", nil},
		{"multi-line", "250-mx.google.com at your service\r\n250-SIZE 157286400\r\n250 SMTPUTF8\r\n", 250, "", 3,
			"mx.google.com at your service SIZE 157286400 SMTPUTF8", nil},
		{"enhanced", "550-5.7.1 [192.0.2.1] Our system has detected\r\n550 5.7.1 unsolicited mail.\r\n", 550, "5.7.1", 2,
			"5.7.1 [192.0.2.1] Our system has detected unsolicited mail.", nil},
		{"bare LF", "220 ok\n", 220, "", 1, "ok", nil},
		{"bare code", "250\r\n", 250, "", 1, "", nil},
		{"enhanced class mismatch", "250 5.0.0 odd\r\n", 250, "", 1, "5.0.0 odd", nil},
		{"code changes", "250-a\r\n251 b\r\n", 250, "", 2, "", ErrProtocol},
		{"not a reply", "HTTP/1.1 400 Bad Request\r\n", 0, "", 1, "", ErrProtocol},
		{"bad separator", "250_ok\r\n", 0, "", 1, "", ErrProtocol},
		{"code out of range", "650 no\r\n", 0, "", 1, "", ErrProtocol},
		{"too long", "220 " + strings.Repeat("x", 100) + "\r\n", 0, "", 0, "", ErrProtocol},
		{"too many lines", strings.Repeat("220-x\r\n", 11), 220, "", 10, "", ErrProtocol},
		{"eof mid-reply", "250-a\r\n", 250, "", 1, "", io.EOF},
		{"eof mid-line", "250 a", 0, "", 0, "", io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := readReply(newReader(tc.in, 64), 64, 10)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if r.Code != tc.code || r.Enhanced != tc.enhanced || len(r.Lines) != tc.lines {
				t.Errorf("reply = %+v; want code %d enhanced %q and %d lines", r, tc.code, tc.enhanced, tc.lines)
			}
			if err == nil && r.Text() != tc.text {
				t.Errorf("Text() = %q, want %q", r.Text(), tc.text)
			}
		})
	}
}

func TestParseEHLO(t *testing.T) {
	gmail := reply{Code: 250, Lines: []string{
		"250-mx.google.com at your service, [192.0.2.1]", "250-SIZE 157286400", "250-8BITMIME",
		"250-starttls", "250-ENHANCEDSTATUSCODES", "250-PIPELINING", "250-CHUNKING", "250 SMTPUTF8",
	}}
	e := parseEHLO(gmail)
	if e.Domain != "mx.google.com" || !e.has("STARTTLS") || e.has("AUTH") || len(e.Masked) != 0 {
		t.Errorf("gmail EHLO = %+v", e)
	}
	if e.Caps[0].Keyword != "SIZE" || len(e.Caps[0].Params) != 1 || e.Caps[0].Params[0] != "157286400" {
		t.Errorf("SIZE = %+v", e.Caps[0])
	}
	asa := reply{Code: 250, Lines: []string{"250-mx.google.com", "250-XXXXXXXA", "250-XXXA", "250 8BITMIME"}}
	e = parseEHLO(asa)
	if e.has("STARTTLS") || !e.maskedStartTLS() || len(e.Masked) != 2 {
		t.Errorf("masked EHLO = %+v", e)
	}
}

func TestMaskedGreeting(t *testing.T) {
	for text, want := range map[string]bool{
		"****************************":                    true,
		"*****************************0*0*0****2*0*0*0**": true,
		"mx.google.com ESMTP x - gsmtp":                   false,
		"***":                                             false,
		"":                                                false,
		"** mx.google.com **":                             false,
	} {
		if got := maskedGreeting(text); got != want {
			t.Errorf("maskedGreeting(%q) = %v, want %v", text, got, want)
		}
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"220 ok":          "220 ok",
		"220 é ünïcode":   "220 é ünïcode",
		"a\x00b\x1b[31m":  `a\x00b\x1b[31m`,
		"bad \xff utf8":   `bad \xff utf8`,
		"tab\tstays":      "tab\tstays",
		"del\x7f escaped": `del\x7f escaped`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzReadReply feeds arbitrary bytes to the reply reader: it must never
// panic, and whatever it returns stays within its bounds.
func FuzzReadReply(f *testing.F) {
	f.Add([]byte("220 mx.google.com ESMTP - gsmtp\r\n"))
	f.Add([]byte("250-mx.google.com\r\n250-STARTTLS\r\n250 SMTPUTF8\r\n"))
	f.Add([]byte("550-5.7.1 a\r\n550 5.7.1 b\r\n"))
	f.Add([]byte("220-" + strings.Repeat("x", 200)))
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	f.Add([]byte("250\n250 x\r\n"))
	const maxLine, maxLines = 64, 8
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(strings.NewReader(string(data)), maxLine+2)
		for range 4 {
			r, err := readReply(br, maxLine, maxLines)
			if len(r.Lines) > maxLines {
				t.Fatalf("%d lines, bound %d", len(r.Lines), maxLines)
			}
			for _, l := range r.Lines {
				if len(l) > maxLine {
					t.Fatalf("line of %d bytes, bound %d", len(l), maxLine)
				}
			}
			if err == nil {
				if r.Code < 200 || r.Code > 559 || len(r.Lines) == 0 {
					t.Fatalf("accepted reply %+v", r)
				}
				_ = r.Text()
				_ = parseEHLO(r)
				continue
			}
			if !errors.Is(err, ErrProtocol) && !errors.Is(err, io.EOF) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
	})
}

// FuzzParseEHLO parses arbitrary EHLO reply lines: keywords come out upper
// case and non-empty, and masked keywords never count as extensions.
func FuzzParseEHLO(f *testing.F) {
	f.Add("250-mx.google.com at your service\n250-SIZE 157286400\n250-STARTTLS\n250 SMTPUTF8")
	f.Add("250-mx\n250-XXXXXXXA\n250 XXXA")
	f.Add("250 only")
	f.Add("250-\n250- \n250 \t")
	f.Fuzz(func(t *testing.T, s string) {
		e := parseEHLO(reply{Code: 250, Lines: strings.Split(s, "\n")})
		for _, c := range e.Caps {
			if c.Keyword == "" || c.Keyword != strings.ToUpper(c.Keyword) || isMaskedKeyword(c.Keyword) {
				t.Fatalf("bad capability %+v", c)
			}
		}
		for _, m := range e.Masked {
			if !isMaskedKeyword(m) || e.has(m) {
				t.Fatalf("bad masked keyword %q", m)
			}
		}
	})
}
