package probe

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrProtocol marks a server reply that breaks SMTP's syntax or the probe's
// bounds: a malformed, oversized or endless reply. Classify maps it to
// smtp_protocol_error.
var ErrProtocol = errors.New("probe: SMTP protocol error")

// reply is one SMTP reply, possibly of several lines.
type reply struct {
	// Code is the three-digit reply code, the same on every line.
	Code int
	// Enhanced is the RFC 3463 enhanced status code of the first line
	// ("2.0.0"), when present.
	Enhanced string
	// Lines are the raw lines without their line ending; after an error
	// they hold what was read so far.
	Lines []string
}

// Text is the reply's text for people: the first line after its code, then
// the text of every further line with its repeated enhanced code dropped.
func (r reply) Text() string {
	var b strings.Builder
	for i, line := range r.Lines {
		_, _, text, ok := splitReplyLine(line)
		if !ok {
			continue
		}
		if i > 0 {
			if r.Enhanced != "" {
				text = strings.TrimSpace(strings.TrimPrefix(text, r.Enhanced))
			}
			if text == "" {
				continue
			}
			b.WriteByte(' ')
		}
		b.WriteString(text)
	}
	return b.String()
}

// readReply reads one SMTP reply from br. A line may hold at most maxLine
// bytes before its line ending and a reply at most maxLines lines; more is
// an ErrProtocol error, never a larger allocation. br must have been made
// with a buffer of at least maxLine+2 bytes: a longer line is detected by
// bufio.ErrBufferFull without buffering it whole.
func readReply(br *bufio.Reader, maxLine, maxLines int) (reply, error) {
	var r reply
	for {
		line, err := readLine(br, maxLine)
		if err != nil {
			return r, err
		}
		r.Lines = append(r.Lines, line)
		code, sep, text, ok := splitReplyLine(line)
		if !ok {
			return r, fmt.Errorf("%w: malformed reply line %q", ErrProtocol, clip(line, 80))
		}
		if len(r.Lines) == 1 {
			r.Code = code
			r.Enhanced = enhancedCode(code, text)
		} else if code != r.Code {
			return r, fmt.Errorf("%w: reply code changed from %d to %d within one reply", ErrProtocol, r.Code, code)
		}
		if sep != '-' {
			return r, nil
		}
		if len(r.Lines) >= maxLines {
			return r, fmt.Errorf("%w: reply longer than %d lines", ErrProtocol, maxLines)
		}
	}
}

// readLine reads one line of at most maxLine bytes (not counting CRLF or a
// bare LF) from br.
func readLine(br *bufio.Reader, maxLine int) (string, error) {
	b, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(b) > maxLine+2 {
		return "", fmt.Errorf("%w: reply line longer than %d bytes", ErrProtocol, maxLine)
	}
	if err != nil {
		return "", err
	}
	b = bytes.TrimSuffix(b[:len(b)-1], []byte{'\r'})
	if len(b) > maxLine {
		return "", fmt.Errorf("%w: reply line longer than %d bytes", ErrProtocol, maxLine)
	}
	return string(b), nil
}

// splitReplyLine splits "250-SIZE 35882577" into 250, '-', "SIZE 35882577".
// A bare code ("250") is a last line with empty text.
func splitReplyLine(line string) (code int, sep byte, text string, ok bool) {
	if len(line) < 3 {
		return 0, 0, "", false
	}
	d0, d1, d2 := line[0], line[1], line[2]
	if d0 < '2' || d0 > '5' || d1 < '0' || d1 > '5' || d2 < '0' || d2 > '9' {
		return 0, 0, "", false
	}
	code = int(d0-'0')*100 + int(d1-'0')*10 + int(d2-'0')
	if len(line) == 3 {
		return code, ' ', "", true
	}
	sep = line[3]
	if sep != ' ' && sep != '-' {
		return 0, 0, "", false
	}
	return code, sep, line[4:], true
}

// enhancedCode returns the RFC 3463 status code ("5.7.1") that starts text,
// when its class agrees with the reply code; "" otherwise.
func enhancedCode(code int, text string) string {
	word, _, _ := strings.Cut(text, " ")
	parts := strings.Split(word, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || int(parts[0][0]-'0') != code/100 {
		return ""
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return ""
		}
		for i := range len(p) {
			if p[i] < '0' || p[i] > '9' {
				return ""
			}
		}
	}
	return word
}

// capability is one EHLO extension: an upper-cased keyword and its
// parameters.
type capability struct {
	Keyword string
	Params  []string
}

// ehloInfo is a parsed EHLO reply.
type ehloInfo struct {
	// Domain is the server's name from the first line.
	Domain string
	// Caps are the extensions in the order the server listed them.
	Caps []capability
	// Masked are keywords an SMTP-inspection firewall overwrote with X
	// ("XXXXXXXA" for STARTTLS, "XXXA" for AUTH).
	Masked []string
}

// has reports whether the extension keyword (upper case) was offered.
func (e ehloInfo) has(keyword string) bool {
	for _, c := range e.Caps {
		if c.Keyword == keyword {
			return true
		}
	}
	return false
}

// maskedStartTLS reports whether STARTTLS was overwritten by a firewall.
func (e ehloInfo) maskedStartTLS() bool {
	for _, m := range e.Masked {
		if m == "XXXXXXXA" {
			return true
		}
	}
	return false
}

// parseEHLO parses the lines of a successful EHLO reply. Lines that do not
// parse as reply lines are skipped; keywords are upper-cased.
func parseEHLO(r reply) ehloInfo {
	var e ehloInfo
	for i, line := range r.Lines {
		_, _, text, ok := splitReplyLine(line)
		if !ok {
			continue
		}
		fields := strings.Fields(text)
		if i == 0 {
			if len(fields) > 0 {
				e.Domain = fields[0]
			}
			continue
		}
		if len(fields) == 0 {
			continue
		}
		kw := strings.ToUpper(fields[0])
		if isMaskedKeyword(kw) {
			e.Masked = append(e.Masked, kw)
			continue
		}
		e.Caps = append(e.Caps, capability{Keyword: kw, Params: fields[1:]})
	}
	return e
}

// isMaskedKeyword reports whether kw looks like an extension keyword masked
// by Cisco ASA/PIX ESMTP inspection: X's, usually ending in A.
func isMaskedKeyword(kw string) bool {
	if len(kw) < 4 {
		return false
	}
	body := strings.TrimSuffix(kw, "A")
	return strings.Trim(body, "X") == "" && len(body) >= 3
}

// maskedGreeting reports whether a greeting's text was overwritten by an
// SMTP-inspection firewall ("220 ********...", sometimes with a few digits
// left standing).
func maskedGreeting(text string) bool {
	stars, other := 0, 0
	for i := range len(text) {
		switch c := text[i]; {
		case c == '*':
			stars++
		case c == ' ' || (c >= '0' && c <= '9'):
		default:
			other++
		}
	}
	return stars >= 4 && other == 0
}

// printable makes a server line safe for a transcript: control bytes and
// invalid UTF-8 become \xNN escapes.
func printable(s string) string {
	clean := true
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r < 0x20 && r != '\t' || r == 0x7f {
			clean = false
			break
		}
		i += size
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r < 0x20 && r != '\t' || r == 0x7f {
			fmt.Fprintf(&b, `\x%02x`, s[i])
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// clip shortens s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
