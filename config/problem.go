package config

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every error that Load, Parse, LoadAgent and
// Validate return, so that callers can tell a configuration mistake
// (exit status 2) from anything else.
var ErrInvalid = errors.New("config: invalid configuration")

// Problem is one thing wrong with a configuration. Errors returned by this
// package are a Problem or an errors.Join of several; Problem wraps
// ErrInvalid and, where there is one, the underlying cause.
type Problem struct {
	File string // the file name given to Load or Parse; "" when none
	Line int    // 1-based line, 0 when unknown
	Col  int    // 1-based column, syntax errors only
	// Key is the key in question with array indexes, e.g. "relay[2].url";
	// "" for problems of the whole file.
	Key string
	// Subject is how the key is shown: "target.family",
	// "relay[2] (relay-3): url". Empty for problems of the whole file.
	Subject string
	Msg     string // what is wrong and what to do, for an operator
	Err     error  // the underlying cause, if any
}

// Error renders the problem on one line:
// "config.toml:12: relay[2] (relay-3): url: ...".
func (p *Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Line))
			if p.Col > 0 {
				b.WriteByte(':')
				b.WriteString(strconv.Itoa(p.Col))
			}
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	if p.Subject != "" {
		b.WriteString(p.Subject)
		b.WriteString(": ")
	}
	b.WriteString(oneLine(p.Msg))
	return b.String()
}

// Unwrap returns ErrInvalid and the cause.
func (p *Problem) Unwrap() []error {
	if p.Err != nil {
		return []error{ErrInvalid, p.Err}
	}
	return []error{ErrInvalid}
}

// Problems returns the individual problems in an error returned by this
// package, in order; an error of another kind is returned as it is.
func Problems(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if _, isProblem := err.(*Problem); !isProblem {
			var out []error
			for _, e := range j.Unwrap() {
				out = append(out, Problems(e)...)
			}
			return out
		}
	}
	return []error{err}
}

func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(s)), " ")
}

// WriteProblems prints every problem of err (Problems) on its own line.
func WriteProblems(w io.Writer, err error) {
	for _, p := range Problems(err) {
		fmt.Fprintln(w, p)
	}
}
