package logging

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gmailtls/gmailtls/config"
)

func TestSecretsNeverReachTheLog(t *testing.T) {
	bot := "xoxb-" + "1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"
	app := "xapp-" + "1-A0123456789-0123456789012-abcdef0123456789"
	sig := "v1=" + strings.Repeat("ab", 32)
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log := New(&buf, format, "debug")
		log.Info("connecting with "+bot, "app_token", app)
		log.Warn("request refused", "err", fmt.Errorf("bad header X-Gmailtls-Signature: %s", sig))
		log.With("secret", "hunter2").Error("agent", "cfg", config.Secret("s3cr3t-value"))
		log.WithGroup("slack").Info("auth", "token", "anything", "note", "token is "+bot)
		out := buf.String()
		for _, s := range []string{bot, app, sig, "hunter2", "s3cr3t-value", "anything"} {
			if strings.Contains(out, s) {
				t.Errorf("%s log leaks %q:\n%s", format, s, out)
			}
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("%s log shows no redaction marker:\n%s", format, out)
		}
		if !strings.Contains(out, "request refused") || !strings.Contains(out, "connecting with") {
			t.Errorf("%s log lost the messages themselves:\n%s", format, out)
		}
	}
}

func TestRedactKeepsOrdinaryText(t *testing.T) {
	for _, s := range []string{
		"gmail-smtp-in.l.google.com", "relay-2", "SSL_connect error to 142.250.1.26:25", "x-single=1.02",
	} {
		if got := Redact(s); got != s {
			t.Errorf("Redact(%q) = %q", s, got)
		}
	}
	err := errors.New("slack: invalid_auth for xoxp-12345678-abcdef")
	if got := Redact(err.Error()); strings.Contains(got, "xoxp-12345678") {
		t.Errorf("user token survived: %q", got)
	}
}

func TestParseLevel(t *testing.T) {
	if ParseLevel("warn").String() != "WARN" || ParseLevel("bogus").String() != "INFO" || ParseLevel("debug").String() != "DEBUG" {
		t.Error("levels parse wrongly")
	}
}

func FuzzRedact(f *testing.F) {
	f.Add("xoxb-123456-abcdef")
	f.Add("v1=" + strings.Repeat("0", 64))
	f.Fuzz(func(t *testing.T, s string) {
		out := Redact(s)
		if tokenRE.MatchString(out) {
			t.Fatalf("Redact(%q) = %q still matches a token", s, out)
		}
	})
}
