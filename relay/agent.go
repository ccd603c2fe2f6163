package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/internal/retry"
	"github.com/gmailtls/gmailtls/probe"
)

// Agent paths.
const (
	PathProbe   = "/v1/probe"
	PathInfo    = "/v1/info"
	PathQueue   = "/v1/queue"
	PathLog     = "/v1/log"
	PathPolicy  = "/v1/policy"
	PathMTASTS  = "/v1/mtasts"
	PathHealthz = "/healthz"
)

// MaxResponseBytes caps what the Agent client reads of an answer.
const MaxResponseBytes = 8 << 20

// DefaultAgentTimeout bounds one request to an agent when no timeout is
// given.
const DefaultAgentTimeout = 60 * time.Second

// Agent is a relay whose probes run on a remote host through its
// `gmailtls agent`, over signed HTTP(S).
type Agent struct {
	name    string
	base    *url.URL
	secret  []byte
	client  *http.Client
	timeout time.Duration
	now     func() time.Time

	sources []string

	mu     sync.Mutex
	lastTS int64
}

// WithSources sets the relay's outbound addresses (its source_ips): each
// probe that names no sources of its own asks the agent to probe from each
// of them separately. It returns a, and is meant to be called once, before
// the first probe.
func (a *Agent) WithSources(ips []string) *Agent {
	a.sources = slices.Clone(ips)
	return a
}

// NewAgent returns a relay that asks the agent at baseURL (e.g.
// "https://relay-2.internal:9426") with the shared secret. client may be nil
// (http.DefaultClient); give one whose TLS config trusts the agent's
// certificate (the relay's ca_file). The Agent uses a copy of client that
// never follows a redirect, whatever client's CheckRedirect says: a signed
// request goes to the configured agent only, and an answer from anywhere
// else never reaches a result. timeout bounds each request (default
// DefaultAgentTimeout); now is the clock (default time.Now).
func NewAgent(name, baseURL string, secret []byte, client *http.Client, timeout time.Duration, now func() time.Time) *Agent {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		// Kept so that every probe reports agent_error with the reason;
		// config validation is where a bad URL should be caught.
		u = nil
	}
	if client == nil {
		client = http.DefaultClient
	}
	c := *client // the caller's client keeps its own redirect policy
	c.CheckRedirect = noRedirects
	client = &c
	if timeout <= 0 {
		timeout = DefaultAgentTimeout
	}
	if now == nil {
		now = time.Now
	}
	return &Agent{name: name, base: u, secret: bytes.Clone(secret), client: client, timeout: timeout, now: now}
}

// Name is the relay's name.
func (a *Agent) Name() string { return a.name }

// Kind is KindAgent.
func (a *Agent) Kind() string { return KindAgent }

// timestamp returns the request timestamp: the clock's unix seconds, but
// strictly increasing per Agent so that two identical requests in the same
// second do not carry the same signature (the agent would refuse the second
// as a replay). It never runs more than a minute ahead of the clock.
func (a *Agent) timestamp() int64 {
	ts := a.now().Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	if ts <= a.lastTS && a.lastTS+1 <= ts+60 {
		ts = a.lastTS + 1
	}
	a.lastTS = max(a.lastTS, ts)
	return ts
}

// do sends one signed request and returns the answer's body. Errors wrap
// ErrAgentUnreachable or ErrAgentError.
func (a *Agent) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	if a.base == nil {
		return nil, fmt.Errorf("%w: relay %s has no valid agent URL", ErrAgentError, a.name)
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	if body != nil {
		data, _, err := a.send(ctx, method, path, body, false)
		return data, err
	}
	// A read has no body to carry the nonce: the query does, signed with
	// the path, so that two reads in the same second by two processes (a
	// restart, the CLI beside serve) sign differently and the second is
	// not refused as a replay. An agent of an earlier version signs the
	// bare path only and refuses that (401): the read is then sent again
	// without the nonce.
	nonce := true
	var data []byte
	var status int
	err := retry.Do(ctx, func(ctx context.Context) error {
		var err error
		data, status, err = a.send(ctx, method, path, nil, nonce)
		return err
	}, func(err error, failures int) (time.Duration, error) {
		if failures > 1 || !nonce || status != http.StatusUnauthorized {
			return 0, err
		}
		nonce = false
		return 0, nil
	})
	return data, err
}

// send sends one signed request, with a signed nonce query when nonce is
// set, and returns the answer's body and HTTP status (0 when none came).
func (a *Agent) send(ctx context.Context, method, path string, body []byte, nonce bool) ([]byte, int, error) {
	u := *a.base
	path, query, _ := strings.Cut(path, "?")
	u.Path = a.base.Path + path
	u.RawPath = ""
	u.RawQuery = query
	if nonce {
		if u.RawQuery != "" {
			u.RawQuery += "&"
		}
		u.RawQuery += "nonce=" + rand.Text()
	}
	signed := u.Path
	if u.RawQuery != "" {
		signed += "?" + u.RawQuery
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrAgentError, err)
	}
	ts := a.timestamp()
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(a.secret, ts, method, signed, body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	sent := a.now()
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s: %w", ErrAgentUnreachable, u.Redacted(), err)
	}
	defer resp.Body.Close()
	if isRedirect(resp.StatusCode) {
		// Neither the redirect's body nor its Location are shown: they come
		// from whatever answers there, and the error is posted to Slack.
		return nil, resp.StatusCode, fmt.Errorf("%w: %s answered %d %s, a redirect, which is not followed: set the relay's url to the agent's own address",
			ErrAgentError, u.Redacted(), resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("%w: %s: answer cut off: %w", ErrAgentUnreachable, u.Redacted(), err)
	}
	if len(data) > MaxResponseBytes {
		return nil, resp.StatusCode, fmt.Errorf("%w: %s: answer larger than %d bytes", ErrAgentError, u.Redacted(), MaxResponseBytes)
	}
	if resp.StatusCode != http.StatusOK {
		advice := statusAdvice(resp.StatusCode)
		if resp.StatusCode == http.StatusUnauthorized {
			if h := a.skewFromDate(resp.Header.Get("Date"), sent); h != "" {
				advice = " (" + h + ")"
			}
		}
		return nil, resp.StatusCode, fmt.Errorf("%w: %s answered %s: %s%s", ErrAgentError, u.Redacted(), resp.Status,
			strings.TrimSpace(truncate(string(data), 300)), advice)
	}
	return data, resp.StatusCode, nil
}

// noRedirects is the agents' http.Client CheckRedirect: the redirect
// itself is the answer.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func isRedirect(code int) bool { return code >= 300 && code < 400 }

// skewFromDate explains a refused request by the agent's clock when its
// Date header is more than MaxSkew away from ours: signatures then cannot
// pass, whatever the secret.
func (a *Agent) skewFromDate(date string, sent time.Time) string {
	t, err := http.ParseTime(date)
	if err != nil {
		return ""
	}
	skew := ClockSkew(Info{Clock: t}, sent, a.now())
	if skew > -MaxSkew+time.Second && skew < MaxSkew-time.Second {
		return ""
	}
	dir := "ahead of"
	if skew < 0 {
		dir, skew = "behind", -skew
	}
	// Date has a resolution of one second: minutes are all that is known.
	return fmt.Sprintf("the agent's clock is about %s %s the bot's: signed requests cannot pass until NTP is fixed on the relay or the bot",
		skew.Round(time.Minute), dir)
}

func statusAdvice(code int) string {
	switch code {
	case http.StatusUnauthorized:
		return " (check that the bot and the agent share the same secret and that both clocks are within 5 minutes)"
	case http.StatusForbidden:
		return " (the agent only probes its own configured target: align [target] on both sides)"
	case http.StatusTooManyRequests:
		return " (the agent is already running its maximum of probes; try again shortly)"
	}
	return ""
}

// Probe asks the agent to run a probe. It always returns a report: when the
// agent cannot be reached, times out or answers badly, the report carries
// one result per requested MX host (or one without an MX host) with failure
// agent_unreachable or agent_error at stage "agent". When results fail with
// cert_expired, the agent's clock is checked and a skew hint is added.
func (a *Agent) Probe(ctx context.Context, opts Options) (probe.Report, error) {
	if !ValidFamily(opts.Family) {
		return probe.Report{}, fmt.Errorf("%w: family %q (want 4, 6 or any)", ErrOptions, opts.Family)
	}
	started := a.now()
	if len(opts.Sources) == 0 {
		opts.Sources = a.sources
	}
	opts.Nonce = rand.Text()
	body, err := json.Marshal(opts)
	if err != nil {
		return probe.Report{}, fmt.Errorf("relay %s: encoding options: %w", a.name, err)
	}
	data, err := a.do(ctx, http.MethodPost, PathProbe, body)
	if err != nil {
		return a.failedReport(started, opts, err), nil
	}
	rep, err := decodeReport(data)
	if err != nil {
		return a.failedReport(started, opts, fmt.Errorf("%w: %w", ErrAgentError, err)), nil
	}
	rep.Relay = a.name
	expired := false
	for i := range rep.Results {
		rep.Results[i].Relay = a.name
		if rep.Results[i].Hints == nil {
			rep.Results[i].Hints = []string{}
		}
		if rep.Results[i].Transcript == nil {
			rep.Results[i].Transcript = []string{}
		}
		expired = expired || rep.Results[i].Failure == probe.FailCertExpired
	}
	if expired {
		if _, skew, err := a.InfoSkew(ctx); err == nil {
			ApplyClockSkew(&rep, skew)
		}
	}
	return rep, nil
}

// decodeReport parses and sanity-checks an agent's probe answer.
func decodeReport(data []byte) (probe.Report, error) {
	var rep probe.Report
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&rep); err != nil {
		return rep, fmt.Errorf("the agent's answer is not a probe report: %w", err)
	}
	if dec.More() {
		return rep, errors.New("the agent's answer has data after the report")
	}
	if len(rep.Results) == 0 {
		return rep, errors.New("the agent's report has no results")
	}
	known := make(map[probe.Failure]bool, len(probe.Failures))
	for _, f := range probe.Failures {
		known[f] = true
	}
	for i, r := range rep.Results {
		if r.OK && r.Failure != probe.FailNone {
			return rep, fmt.Errorf("result %d is both ok and failed (%s)", i, r.Failure)
		}
		if !r.OK && !known[r.Failure] {
			return rep, fmt.Errorf("result %d has an unknown failure class %q", i, truncate(string(r.Failure), 40))
		}
	}
	return rep, nil
}

// failedReport turns a transport or answer error into agent results.
func (a *Agent) failedReport(started time.Time, opts Options, err error) probe.Report {
	failure := probe.FailAgentError
	hint := "the agent answered, but not with a usable result: check the agent's log"
	if errors.Is(err, ErrAgentUnreachable) {
		failure = probe.FailAgentUnreachable
		hint = "the relay's agent could not be reached or did not answer in time: check that gmailtls agent runs on the relay and that the bot may reach its port; this is not a Gmail failure"
	}
	elapsed := ms(a.now().Sub(started))
	mk := func(mx string) probe.Result {
		return probe.Result{
			Relay: a.name, MX: mx, StartedAt: started,
			Stage: probe.StageAgent, Failure: failure, Error: err.Error(),
			Timings: probe.Timings{Total: elapsed}, Hints: []string{hint}, Transcript: []string{},
		}
	}
	rep := probe.Report{Relay: a.name, StartedAt: started}
	if len(opts.MX) == 0 {
		rep.Results = []probe.Result{mk("")}
	}
	for _, mx := range opts.MX {
		rep.Results = append(rep.Results, mk(mx))
	}
	return rep
}

// Info asks the agent to describe its host. Errors wrap
// ErrAgentUnreachable or ErrAgentError.
func (a *Agent) Info(ctx context.Context) (Info, error) {
	info, _, err := a.InfoSkew(ctx)
	return info, err
}

// InfoSkew is Info plus the estimated skew of the agent's clock against
// ours (positive: the agent is ahead), see ClockSkew.
func (a *Agent) InfoSkew(ctx context.Context) (Info, time.Duration, error) {
	sent := a.now()
	data, err := a.do(ctx, http.MethodGet, PathInfo, nil)
	received := a.now()
	if err != nil {
		return Info{}, 0, err
	}
	var info Info
	if err := json.Unmarshal(data, &info); err != nil {
		return Info{}, 0, fmt.Errorf("%w: relay %s: the agent's info is not valid JSON: %w", ErrAgentError, a.name, err)
	}
	return info, ClockSkew(info, sent, received), nil
}

// Queue asks the agent for Gmail-bound mail in its queue. Errors wrap
// ErrAgentUnreachable or ErrAgentError; a relay without Postfix answers
// normally with Available false.
func (a *Agent) Queue(ctx context.Context) (Queue, error) {
	data, err := a.do(ctx, http.MethodGet, PathQueue, nil)
	if err != nil {
		return Queue{}, err
	}
	var q Queue
	if err := json.Unmarshal(data, &q); err != nil {
		return Queue{}, fmt.Errorf("%w: relay %s: the agent's queue answer is not valid JSON: %w", ErrAgentError, a.name, err)
	}
	return q, nil
}
