// Package logging builds gmailtls's log/slog loggers from the [log] section
// (text or JSON, a level) and redacts secrets on the way out: Slack tokens
// (xoxb-, xoxp-, xapp-, …), signing secrets and agent signatures never reach
// a log line, whether they arrive as an attribute, inside an error's text or
// in the message itself.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
)

// Redacted replaces a secret in log output.
const Redacted = "[redacted]"

// tokenRE matches Slack tokens and gmailtls request signatures.
var tokenRE = regexp.MustCompile(`\b(xox[abposr]|xapp|xoxe(?:\.xox[bp])?)-[A-Za-z0-9-]{6,}|\bv[01]=[0-9a-f]{64}\b`)

// secretKeys are attribute keys whose values are always redacted.
var secretKeys = map[string]bool{
	"token": true, "bot_token": true, "app_token": true, "secret": true,
	"signing_secret": true, "password": true, "authorization": true,
	"x-slack-signature": true, "x-gmailtls-signature": true,
}

// Redact removes anything that looks like a token or signature from s.
func Redact(s string) string {
	if !strings.Contains(s, "-") && !strings.Contains(s, "=") {
		return s
	}
	return tokenRE.ReplaceAllString(s, Redacted)
}

// ParseLevel turns "debug", "info", "warn" or "error" into a level; anything
// else is info.
func ParseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// New returns a logger writing to w in format ("text" or "json") at level,
// with secrets redacted.
func New(w io.Writer, format, level string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: ParseLevel(level), ReplaceAttr: replaceAttr}
	var h slog.Handler
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(redactor{h})
}

func replaceAttr(_ []string, a slog.Attr) slog.Attr {
	if secretKeys[strings.ToLower(a.Key)] {
		return slog.String(a.Key, Redacted)
	}
	switch a.Value.Kind() {
	case slog.KindString:
		if r := Redact(a.Value.String()); r != a.Value.String() {
			return slog.String(a.Key, r)
		}
	case slog.KindAny:
		v := a.Value.Any()
		switch v := v.(type) {
		case error:
			return slog.String(a.Key, Redact(v.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, Redact(v.String()))
		}
	}
	return a
}

// redactor redacts the message of each record; attributes are handled by
// replaceAttr.
type redactor struct{ slog.Handler }

func (r redactor) Handle(ctx context.Context, rec slog.Record) error {
	if red := Redact(rec.Message); red != rec.Message {
		n := slog.NewRecord(rec.Time, rec.Level, red, rec.PC)
		rec.Attrs(func(a slog.Attr) bool { n.AddAttrs(a); return true })
		rec = n
	}
	return r.Handler.Handle(ctx, rec)
}

func (r redactor) WithAttrs(as []slog.Attr) slog.Handler {
	return redactor{r.Handler.WithAttrs(as)}
}

func (r redactor) WithGroup(name string) slog.Handler {
	return redactor{r.Handler.WithGroup(name)}
}
