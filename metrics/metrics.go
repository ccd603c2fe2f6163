// Package metrics exposes gmailtls's Prometheus metrics and its /healthz,
// /readyz and /metrics endpoints. Probe results, escalation levels, outbox
// figures and Slack and agent errors flow in; the text exposition format
// flows out.
//
// No label carries unbounded values: relay names come from the config, MX
// names from the configured target, failure classes from a fixed list, and
// Slack methods and error codes are folded into a known set.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/escalation"
	"github.com/gmailtls/gmailtls/internal/httpserver"
	"github.com/gmailtls/gmailtls/probe"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Level values of gmailtls_relay_level.
var levelValues = map[escalation.Level]float64{
	escalation.LevelOK: 0, escalation.LevelWatch: 1, escalation.LevelInvestigate: 2, escalation.LevelIncident: 3,
}

// knownSlackMethods bounds the method label of Slack API errors.
var knownSlackMethods = map[string]bool{
	"auth.test": true, "apps.connections.open": true, "chat.postMessage": true,
	"chat.update": true, "chat.postEphemeral": true, "response_url": true,
	"files.upload": true,
}

// knownSlackCodes bounds the code label of Slack API errors. dns_error
// (Slack's name did not resolve) and network_error (no connection, or it
// broke) are the bot's own side; server_error is Slack answering 5xx.
var knownSlackCodes = map[string]bool{
	"rate_limited": true, "server_error": true, "network": true,
	"dns_error": true, "network_error": true,
	"channel_not_found": true, "not_in_channel": true, "invalid_auth": true,
	"missing_scope": true, "token_revoked": true, "account_inactive": true,
	"msg_too_long": true, "invalid_blocks": true,
}

// Metrics holds every collector of the process on its own registry.
type Metrics struct {
	reg *prometheus.Registry

	probes      *prometheus.CounterVec
	handshake   *prometheus.HistogramVec
	level       *prometheus.GaugeVec
	slackErrors *prometheus.CounterVec
	agentErrors *prometheus.CounterVec

	mu     sync.Mutex
	outbox func(context.Context) (pending int, oldest time.Duration, failed int, err error)
	leader func() bool

	levelMu     sync.Mutex
	levelRelays map[string]bool // relays with a level gauge
}

// New registers every collector on a fresh registry, with the Go and
// process collectors beside them.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), levelRelays: map[string]bool{}}
	m.probes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gmailtls_probes_total",
		Help: "Probes run, by relay, MX host, result (ok or fail) and failure class.",
	}, []string{"relay", "mx", "result", "failure"})
	m.handshake = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gmailtls_probe_handshake_duration_seconds",
		Help:    "Duration of the TLS handshake after STARTTLS, by relay.",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20},
	}, []string{"relay"})
	m.level = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gmailtls_relay_level",
		Help: "Current escalation level per relay (0 ok, 1 watch, 2 investigate, 3 incident); relay=\"\" is the global level.",
	}, []string{"relay"})
	m.slackErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gmailtls_slack_api_errors_total",
		Help: "Slack API calls that failed, by method and error code.",
	}, []string{"method", "code"})
	m.agentErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gmailtls_agent_request_errors_total",
		Help: "Requests to relay agents that failed, by relay and failure class.",
	}, []string{"relay", "failure"})
	outboxPending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gmailtls_outbox_pending_messages",
		Help: "Slack messages waiting in the outbox.",
	}, func() float64 { p, _, _ := m.outboxFigures(); return float64(p) })
	outboxOldest := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gmailtls_outbox_oldest_age_seconds",
		Help: "Age of the oldest undelivered outbox message.",
	}, func() float64 { _, o, _ := m.outboxFigures(); return o.Seconds() })
	leader := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gmailtls_leader",
		Help: "1 while this serve replica leads (runs the schedule, the alert loop and the outbox), 0 on a follower.",
	}, func() float64 {
		m.mu.Lock()
		f := m.leader
		m.mu.Unlock()
		if f != nil && f() {
			return 1
		}
		return 0
	})
	outboxFailed := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gmailtls_outbox_failed_messages",
		Help: "Outbox messages given up on (channel_not_found, not_in_channel, ...).",
	}, func() float64 { _, _, f := m.outboxFigures(); return float64(f) })
	m.reg.MustRegister(m.probes, m.handshake, m.level, m.slackErrors, m.agentErrors,
		outboxPending, outboxOldest, outboxFailed, leader,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry the collectors live on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveResults counts probe results and their handshake durations. Agent
// failures are also counted as agent request errors.
func (m *Metrics) ObserveResults(results []probe.Result) {
	if m == nil {
		return
	}
	for _, r := range results {
		outcome := "ok"
		if !r.OK {
			outcome = "fail"
		}
		m.probes.WithLabelValues(r.Relay, r.MX, outcome, string(r.Failure)).Inc()
		if r.Timings.Handshake > 0 {
			m.handshake.WithLabelValues(r.Relay).Observe(r.Timings.Handshake / 1000)
		}
		if r.Failure.IsRelayFailure() {
			m.agentErrors.WithLabelValues(r.Relay, string(r.Failure)).Inc()
		}
	}
}

// SetLevel records the current escalation level of a relay ("" = global).
// Unknown level names are ignored.
func (m *Metrics) SetLevel(relay string, level escalation.Level) {
	if m == nil {
		return
	}
	if v, ok := levelValues[level]; ok {
		m.levelMu.Lock()
		defer m.levelMu.Unlock()
		m.level.WithLabelValues(relay).Set(v)
		m.levelRelays[relay] = true
	}
}

// SetLevels sets the level of every relay in levels ("" the global
// level) and drops the gauge of every other relay (one removed from the
// configuration). Set every configured relay at start, from the levels
// stored before, so that /metrics shows each from the first scrape and
// not only after its first level change.
func (m *Metrics) SetLevels(levels map[string]escalation.Level) {
	if m == nil {
		return
	}
	m.levelMu.Lock()
	defer m.levelMu.Unlock()
	for relay := range m.levelRelays {
		if _, ok := levels[relay]; !ok {
			m.level.DeleteLabelValues(relay)
			delete(m.levelRelays, relay)
		}
	}
	for relay, level := range levels {
		if v, ok := levelValues[level]; ok {
			m.level.WithLabelValues(relay).Set(v)
			m.levelRelays[relay] = true
		}
	}
}

// SlackError counts one failed Slack API call. Methods and codes outside a
// known set are folded into "other" so the label set stays bounded.
func (m *Metrics) SlackError(method, code string) {
	if m == nil {
		return
	}
	if !knownSlackMethods[method] {
		method = "other"
	}
	if !knownSlackCodes[code] {
		code = "other"
	}
	m.slackErrors.WithLabelValues(method, code).Inc()
}

// SetOutboxSource sets the function that reports outbox figures at scrape
// time (storage's OutboxStats).
func (m *Metrics) SetOutboxSource(f func(context.Context) (pending int, oldest time.Duration, failed int, err error)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.outbox = f
}

// SetLeaderSource sets the function gmailtls_leader reads at scrape time:
// whether this replica leads (leader.Elector.IsLeader).
func (m *Metrics) SetLeaderSource(f func() bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leader = f
}

func (m *Metrics) outboxFigures() (int, time.Duration, int) {
	m.mu.Lock()
	f := m.outbox
	m.mu.Unlock()
	if f == nil {
		return 0, 0, 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p, o, failed, err := f(ctx)
	if err != nil {
		return 0, 0, 0
	}
	return p, o, failed
}

// Limits of the /metrics server. A scrape and the health checks answer
// within seconds (each check has 5 s); Prometheus keeps its connection
// between scrapes, so an idle one lives two minutes.
const (
	serverReadHeaderTimeout = 5 * time.Second
	serverReadTimeout       = 10 * time.Second
	serverWriteTimeout      = 30 * time.Second
	serverIdleTimeout       = 2 * time.Minute
	serverMaxConns          = 64
)

// Server returns the server of Handler(c) with timeouts against slow and
// idle clients and net/http's own errors logged through logger. Serve it
// on Listener(ln), which caps the connections open at once.
func (m *Metrics) Server(c Checks, logger *slog.Logger) *http.Server {
	return httpserver.New(m.Handler(c), logger, httpserver.Options{
		ReadHeaderTimeout: serverReadHeaderTimeout,
		ReadTimeout:       serverReadTimeout,
		WriteTimeout:      serverWriteTimeout,
		IdleTimeout:       serverIdleTimeout,
	})
}

// Listener caps the connections open at once on ln for Server.
func Listener(ln net.Listener) net.Listener { return httpserver.LimitListener(ln, serverMaxConns) }

// Checks are the probes behind /healthz and /readyz. Each returns nil when
// healthy, or an error worded for an operator.
type Checks struct {
	// Health: the process is up and the database is writable.
	Health func(context.Context) error
	// Ready: Slack is connected (socket mode) or the HTTP endpoint listens.
	Ready func(context.Context) error
	// Role, when set, names this replica's role for /readyz's body,
	// "leader" or "follower", and the replica that leads ("" when none
	// does); both roles are ready.
	Role func() (role, leader string)
}

// roleLines are the role lines of a /readyz body ("" without a role).
func roleLines(role func() (string, string)) string {
	if role == nil {
		return ""
	}
	r, leader := role()
	if leader == "" {
		leader = "none"
	}
	return "role: " + r + "\nleader: " + leader + "\n"
}

// ErrNotReady is returned by readiness checks that have not passed yet.
var ErrNotReady = errors.New("not ready")

// Handler serves /metrics, /healthz and /readyz.
func (m *Metrics) Handler(c Checks) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", checkHandler(c.Health, nil))
	mux.HandleFunc("GET /readyz", checkHandler(c.Ready, c.Role))
	return mux
}

// checkHandler answers "ok" or "fail: why" from check, followed by the
// role's lines when role is set:
//
//	ok
//	role: follower
//	leader: bot-1:4242:9f3a1c2e
func checkHandler(check func(context.Context) error, role func() (string, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if check != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			if err := check(ctx); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("fail: " + err.Error() + "\n" + roleLines(role)))
				return
			}
		}
		_, _ = w.Write([]byte("ok\n" + roleLines(role)))
	}
}
