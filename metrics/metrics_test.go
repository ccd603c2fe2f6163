package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gmailtls/gmailtls/probe"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func scrape(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestMetricsScrapeParses(t *testing.T) {
	m := New()
	m.ObserveResults([]probe.Result{
		{Relay: "relay-1", MX: "mx1.test.example", OK: true, Timings: probe.Timings{Handshake: 42}},
		{Relay: "relay-1", MX: "mx1.test.example", Failure: probe.FailTLSReset, Stage: probe.StageHandshake},
		{Relay: "relay-2", MX: "mx1.test.example", Failure: probe.FailAgentUnreachable, Stage: probe.StageAgent},
	})
	m.SetLevel("relay-1", "investigate")
	m.SetLevel("relay-1", "bogus") // ignored
	m.SlackError("chat.postMessage", "rate_limited")
	m.SlackError("users.list", "weird_code_from_user_input")
	m.SetOutboxSource(func(context.Context) (int, time.Duration, int, error) { return 3, 90 * time.Second, 1, nil })

	srv := httptest.NewServer(m.Handler(Checks{}))
	defer srv.Close()
	code, body := scrape(t, srv.URL+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics status %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	get := func(name string, labels map[string]string) float64 {
		t.Helper()
		f, ok := fams[name]
		if !ok {
			t.Fatalf("metric %s missing", name)
		}
	next:
		for _, mm := range f.GetMetric() {
			for _, lp := range mm.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			switch {
			case mm.Counter != nil:
				return mm.GetCounter().GetValue()
			case mm.Gauge != nil:
				return mm.GetGauge().GetValue()
			case mm.Histogram != nil:
				return float64(mm.GetHistogram().GetSampleCount())
			}
		}
		t.Fatalf("metric %s%v not found", name, labels)
		return 0
	}
	if v := get("gmailtls_probes_total", map[string]string{"relay": "relay-1", "result": "fail", "failure": "tls_reset"}); v != 1 {
		t.Errorf("tls_reset probes = %v, want 1", v)
	}
	if v := get("gmailtls_probe_handshake_duration_seconds", map[string]string{"relay": "relay-1"}); v != 1 {
		t.Errorf("handshake observations = %v, want 1", v)
	}
	if v := get("gmailtls_relay_level", map[string]string{"relay": "relay-1"}); v != 2 {
		t.Errorf("level = %v, want 2", v)
	}
	if v := get("gmailtls_agent_request_errors_total", map[string]string{"relay": "relay-2"}); v != 1 {
		t.Errorf("agent errors = %v, want 1", v)
	}
	if v := get("gmailtls_slack_api_errors_total", map[string]string{"method": "other", "code": "other"}); v != 1 {
		t.Errorf("folded slack errors = %v, want 1", v)
	}
	if v := get("gmailtls_outbox_pending_messages", nil); v != 3 {
		t.Errorf("outbox pending = %v, want 3", v)
	}
	if v := get("gmailtls_outbox_oldest_age_seconds", nil); v != 90 {
		t.Errorf("outbox oldest = %v, want 90", v)
	}
	if strings.Contains(body, "weird_code_from_user_input") || strings.Contains(body, "users.list") {
		t.Error("unbounded label value leaked into the exposition")
	}
}

func TestHealthAndReady(t *testing.T) {
	m := New()
	ready := errors.New("slack socket not connected")
	srv := httptest.NewServer(m.Handler(Checks{
		Health: func(context.Context) error { return nil },
		Ready:  func(context.Context) error { return ready },
	}))
	defer srv.Close()
	if code, body := scrape(t, srv.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	code, body := scrape(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "slack socket not connected") {
		t.Errorf("/readyz = %d %q, want 503 with the reason", code, body)
	}
}

// TestLeaderRole: gmailtls_leader follows the leader source (0 without
// one) and /readyz names the role and the leader, on both roles ready.
func TestLeaderRole(t *testing.T) {
	m := New()
	var leading atomic.Bool
	srv := httptest.NewServer(m.Handler(Checks{
		Ready: func(context.Context) error { return nil },
		Role: func() (string, string) {
			if leading.Load() {
				return "leader", "bot-1:42:aa"
			}
			return "follower", "bot-2:7:bb"
		},
	}))
	defer srv.Close()
	if _, body := scrape(t, srv.URL+"/metrics"); !strings.Contains(body, "\ngmailtls_leader 0\n") {
		t.Errorf("without a source gmailtls_leader is not 0:\n%s", body)
	}
	m.SetLeaderSource(func() bool { return leading.Load() })
	if code, body := scrape(t, srv.URL+"/readyz"); code != 200 || body != "ok\nrole: follower\nleader: bot-2:7:bb\n" {
		t.Errorf("/readyz on a follower = %d %q", code, body)
	}
	if _, body := scrape(t, srv.URL+"/metrics"); !strings.Contains(body, "\ngmailtls_leader 0\n") {
		t.Errorf("gmailtls_leader on a follower:\n%s", body)
	}
	leading.Store(true)
	if code, body := scrape(t, srv.URL+"/readyz"); code != 200 || body != "ok\nrole: leader\nleader: bot-1:42:aa\n" {
		t.Errorf("/readyz on the leader = %d %q", code, body)
	}
	if _, body := scrape(t, srv.URL+"/metrics"); !strings.Contains(body, "\ngmailtls_leader 1\n") {
		t.Errorf("gmailtls_leader on the leader:\n%s", body)
	}
}
