package metrics

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/pipenet"
)

// TestServerClosesIdleConnections: a scraper that keeps its connection
// open after a scrape and sends nothing more is disconnected after the
// idle timeout; one that never finishes its headers after the header
// timeout. Without them, net/http keeps both forever.
func TestServerClosesIdleConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := New().Server(Checks{}, slog.New(slog.DiscardHandler))
		ln := pipenet.Listen(9425)
		go srv.Serve(Listener(ln))
		defer srv.Close()

		c := ln.Dial()
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: metrics\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok\n" || resp.Close {
			t.Fatalf("/healthz: %d %q close=%v", resp.StatusCode, body, resp.Close)
		}
		start := time.Now()
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("idle connection: read %v, want EOF", err)
		}
		if waited := time.Since(start); waited < serverIdleTimeout || waited > serverIdleTimeout+time.Second {
			t.Errorf("the idle connection was closed after %s, want %s", waited, serverIdleTimeout)
		}

		slow := ln.Dial()
		defer slow.Close()
		if _, err := io.WriteString(slow, "GET /metrics HTTP/1.1\r\nHost: metr"); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		if _, err := io.ReadAll(slow); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited > serverReadTimeout {
			t.Errorf("a request whose headers never end was kept %s", waited)
		}
	})
}

// TestSetLevels: every relay given has its level, the global one too; a
// relay left out (removed from the configuration) loses its gauge.
func TestSetLevels(t *testing.T) {
	m := New()
	m.SetLevel("relay-9", escalation.LevelWatch)
	m.SetLevels(map[string]escalation.Level{"": escalation.LevelOK, "relay-1": escalation.LevelInvestigate, "relay-2": escalation.LevelOK})
	body := exposition(t, m)
	for _, want := range []string{`gmailtls_relay_level{relay=""} 0`, `gmailtls_relay_level{relay="relay-1"} 2`, `gmailtls_relay_level{relay="relay-2"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %s in\n%s", want, body)
		}
	}
	if strings.Contains(body, "relay-9") {
		t.Errorf("a relay no longer configured kept its level:\n%s", body)
	}
	m.SetLevel("relay-2", escalation.LevelIncident)
	m.SetLevels(map[string]escalation.Level{"": escalation.LevelOK, "relay-1": escalation.LevelInvestigate})
	if body := exposition(t, m); strings.Contains(body, "relay-2") {
		t.Errorf("relay-2 kept its level after it was removed:\n%s", body)
	}
}

// exposition is m's /metrics text.
func exposition(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler(Checks{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

// TestSlackNetworkCodes: DNS and connection failures toward Slack keep
// codes of their own, apart from Slack's server errors.
func TestSlackNetworkCodes(t *testing.T) {
	m := New()
	m.SlackError("chat.postMessage", "dns_error")
	m.SlackError("chat.postMessage", "network_error")
	m.SlackError("chat.postMessage", "server_error")
	body := exposition(t, m)
	for _, code := range []string{"dns_error", "network_error", "server_error"} {
		if want := `gmailtls_slack_api_errors_total{code="` + code + `",method="chat.postMessage"} 1`; !strings.Contains(body, want) {
			t.Errorf("missing %s in\n%s", want, body)
		}
	}
}
