package mtasts

import (
	"errors"
	"fmt"
	"strings"
)

// ErrRecordSyntax is wrapped by every error of ParseRecord.
var ErrRecordSyntax = errors.New("mtasts: invalid _mta-sts TXT record")

// Record is a parsed "_mta-sts.<domain>" TXT record (RFC 8461 §3.1), such
// as "v=STSv1; id=20190429T010101;".
type Record struct {
	// ID names the policy instance: 1 to 32 letters and digits. A sender
	// fetches the policy again when the ID changes.
	ID string
	// Extensions are the other key=value fields, in order; RFC 8461 gives
	// them no meaning, so they are kept only to be shown.
	Extensions []Field
}

// Field is one key and value of a record or policy that RFC 8461 does not
// define.
type Field struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// recordVersion starts every MTA-STS TXT record.
const recordVersion = "v=STSv1"

// IsCandidate reports whether a TXT record is an MTA-STS record at all: it
// starts with "v=STSv1" followed by the end, a space, a tab or ";". RFC
// 8461 §3.1 discards the others before counting, so a domain's SPF or
// verification TXT records at the same name do not matter. (The RFC
// literally says "v=STSv1;"; "v=STSv1 ;" is taken as an MTA-STS record
// too, and then judged by its syntax, rather than silently ignored.)
func IsCandidate(txt string) bool {
	rest, ok := strings.CutPrefix(txt, recordVersion)
	return ok && (rest == "" || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t')
}

// ParseRecord parses one MTA-STS TXT record by the grammar of RFC 8461
// §3.1:
//
//	v=STSv1 *WSP ";" *WSP id=<1*32 ALPHA/DIGIT> [ *WSP ";" *WSP key=value ... ] [;]
//
// "v=STSv1" must come first and is case-sensitive, "id" is required and,
// when repeated, the first one counts (§3.2); other keys are extensions
// whose names and values must still be well formed. Whitespace at the end
// is tolerated.
func ParseRecord(txt string) (Record, error) {
	if !IsCandidate(txt) {
		return Record{}, fmt.Errorf("%w: %q does not start with %q", ErrRecordSyntax, clip(txt), recordVersion+";")
	}
	rest := strings.TrimRight(txt[len(recordVersion):], " \t")
	var rec Record
	seenID := false
	for rest != "" {
		var ok bool
		if rest, ok = cutDelim(rest); !ok {
			return Record{}, fmt.Errorf("%w: expected \";\" before %q", ErrRecordSyntax, clip(rest))
		}
		if rest == "" {
			break // one trailing ";" is allowed
		}
		field := rest
		if i := strings.IndexAny(rest, "; \t"); i >= 0 {
			field, rest = rest[:i], rest[i:]
		} else {
			rest = ""
		}
		key, value, ok := strings.Cut(field, "=")
		if !ok {
			return Record{}, fmt.Errorf("%w: field %q is not key=value", ErrRecordSyntax, clip(field))
		}
		if !validKey(key) {
			return Record{}, fmt.Errorf("%w: field name %q is not 1 to 32 letters, digits, \"_\", \"-\" or \".\" starting with a letter or digit", ErrRecordSyntax, clip(key))
		}
		switch {
		case key == "id":
			if !validID(value) {
				return Record{}, fmt.Errorf("%w: id %q is not 1 to 32 letters and digits", ErrRecordSyntax, clip(value))
			}
			if !seenID {
				rec.ID, seenID = value, true
			}
		case !validRecordValue(value):
			return Record{}, fmt.Errorf("%w: value %q of %q is empty or has a character other than printable ASCII without \"=\"", ErrRecordSyntax, clip(value), key)
		default:
			rec.Extensions = append(rec.Extensions, Field{Key: key, Value: value})
		}
	}
	if !seenID {
		return Record{}, fmt.Errorf("%w: no id field (a record looks like \"v=STSv1; id=20190429T010101;\")", ErrRecordSyntax)
	}
	return rec, nil
}

// cutDelim removes one field delimiter, *WSP ";" *WSP, from the front of s.
func cutDelim(s string) (string, bool) {
	s = strings.TrimLeft(s, " \t")
	s, ok := strings.CutPrefix(s, ";")
	return strings.TrimLeft(s, " \t"), ok
}

// validKey reports whether k is a field name of RFC 8461 §3.1 and §3.2:
// (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").
func validKey(k string) bool {
	if len(k) == 0 || len(k) > 32 || !isAlnum(k[0]) {
		return false
	}
	for i := 1; i < len(k); i++ {
		if c := k[i]; !isAlnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// validID reports whether id is 1*32(ALPHA / DIGIT).
func validID(id string) bool {
	if len(id) == 0 || len(id) > 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isAlnum(id[i]) {
			return false
		}
	}
	return true
}

// validRecordValue reports whether v is an extension value of a TXT record:
// 1*(%x21-3A / %x3C / %x3E-7E), printable ASCII without ";" and "=".
func validRecordValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x21 || c > 0x7e || c == ';' || c == '=' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// clip shortens outside text quoted in an error to 64 bytes, so that a
// hostile record or policy cannot flood a log line or a Slack message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
