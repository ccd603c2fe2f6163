package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/mtasts"
	"github.com/gmailtls/gmailtls/probe"
)

// Server defaults.
const (
	DefaultMaxProbes = 4
	DefaultMaxBody   = 64 << 10
	// replayCacheSize bounds the signatures remembered for replay detection.
	replayCacheSize = 100_000
	// maxRequestMX bounds the MX hosts one request may name.
	maxRequestMX = 64
	// maxRequestSources bounds the source IPs one request may name.
	maxRequestSources = 16
)

// ServerConfig configures the agent's HTTP server.
type ServerConfig struct {
	// Base is the agent's configured target; requests can only narrow it.
	Base probe.Config
	// ControlMX are the control MX hosts of the agent's own configuration
	// ([target] control_mx): the only hosts besides the target's that a
	// request may name. A bot cannot widen them.
	ControlMX []probe.Target
	// Secrets are the accepted shared secrets: the current one and, during
	// a rotation, the previous one. Empty secrets are ignored; with none,
	// every signed request is refused.
	Secrets [][]byte
	// SecretsFunc, when set, is asked for the accepted secrets on every
	// request instead of Secrets, so that a running agent can take a new
	// secret (SIGHUP) without a restart and without forgetting its replay
	// cache.
	SecretsFunc func() [][]byte
	// MaxProbes bounds the probes in flight (default 4); beyond, 429.
	MaxProbes int
	// MaxBody caps a request body in bytes (default 64 KiB); beyond, 413.
	MaxBody int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives request and error logs (default: discarded).
	Logger *slog.Logger
	// Version is the gmailtls version reported by /v1/info.
	Version string
	// Commands runs openssl, posttls-finger, postqueue, postconf, postmap
	// and exim (default ExecRunner).
	Commands CommandRunner
	// MTAStack allows requests to run the relay's own TLS tools.
	MTAStack bool
	// CAFile is the extra-roots PEM file of the target, handed to the
	// MTA-stack tools (the native probe uses Base.RootCAs).
	CAFile string
	// CAPath is the system trust store folder for posttls-finger (default
	// /etc/ssl/certs).
	CAPath string
	// Postqueue is the postqueue program (default "postqueue").
	Postqueue string
	// MailLog is the MTA's mail log GET /v1/log reads: a file path, or
	// "journald"; empty: none (the answer says so).
	MailLog string
	// LogCommands runs journalctl for GET /v1/log (default: an
	// ExecRunner with an output cap for the journal).
	LogCommands CommandRunner
	// GmailDomains are recipient domains counted as Gmail-bound in the
	// queue by hand ([agent] gmail_domains).
	GmailDomains []string
	// Resolver looks up recipient domains' MX records, to count those
	// whose MX hosts are Google's as Gmail-bound (nil: no lookups).
	Resolver MXResolver
	// MailLogBound, when set, reports whether the mail log shows queue
	// id's delivery attempts to domain going to the target's MX hosts,
	// which makes the recipient Gmail-bound too.
	MailLogBound func(queueID, domain string) bool
	// MailConfig is the Postfix configuration directory GET /v1/policy
	// reads (default: $MAIL_CONFIG).
	MailConfig string
	// MTASTS fetches the target domain's MTA-STS policy for GET
	// /v1/mtasts with the agent's own resolver and dialer (nil: the zero
	// mtasts.Client, the system's).
	MTASTS *mtasts.Client
	// Replay is the replay cache (default: a new one, in memory only).
	// Give one from OpenReplayCache so that a restart does not forget the
	// requests already accepted.
	Replay *ReplayCache
	// NotBefore, when set, refuses (401) every request whose timestamp is
	// earlier: an agent without a state directory sets it to its start,
	// so that a request captured before a restart cannot run again after
	// it (when the clocks agree).
	NotBefore time.Time
	// ProbeTimeout bounds one probe request, the MTA-stack tools included
	// (default DefaultProbeTimeout). A probe cut short answers 503 rather
	// than incomplete results.
	ProbeTimeout time.Duration
}

// DefaultProbeTimeout bounds one POST /v1/probe on the agent: far beyond
// what a probe of a few MX hosts with 20 s stages and the relay's own
// tools takes, and beyond any sensible relay timeout on the bot.
const DefaultProbeTimeout = 10 * time.Minute

// ServerWriteTimeout is the http.Server WriteTimeout the agent needs: longer
// than the longest request it serves (DefaultProbeTimeout), so that the
// answer of a long probe can still be written.
const ServerWriteTimeout = DefaultProbeTimeout + time.Minute

// errProbeDeadline is the cause of a probe cut short by ProbeTimeout.
var errProbeDeadline = errors.New("relay: the probe ran out of time")

type server struct {
	cfg    ServerConfig
	local  *Local
	sem    chan struct{}
	replay *ReplayCache
	log    *slog.Logger
	now    func() time.Time
}

// NewServer returns the agent's HTTP handler: POST /v1/probe, GET /v1/info,
// GET /v1/queue, GET /v1/log, GET /v1/policy (all signed) and GET /healthz
// (unsigned). Bodies are capped
// before the signature is checked over their exact bytes; nothing runs
// before the signature, the clock skew and the replay cache have passed.
// Panics in a handler are recovered, logged and answered with 500.
func NewServer(cfg ServerConfig) http.Handler {
	if cfg.MaxProbes <= 0 {
		cfg.MaxProbes = DefaultMaxProbes
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Commands == nil {
		r := &ExecRunner{Logger: cfg.Logger}
		for _, tool := range tools {
			if tool == "postqueue" && cfg.Postqueue != "" {
				tool = cfg.Postqueue
			}
			r.Resolve(tool) // logs where each tool is, once
		}
		cfg.Commands = r
	}
	if cfg.Replay == nil {
		cfg.Replay = newReplayCache(replayCacheSize)
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = DefaultProbeTimeout
	}
	base := cfg.Base
	if base.Logger == nil {
		base.Logger = cfg.Logger
	}
	local := NewLocal(base.Relay, base, nil)
	local.Control = cfg.ControlMX
	local.MTAStack = cfg.MTAStack
	local.CAFile = cfg.CAFile
	local.CAPath = cfg.CAPath
	local.Commands = cfg.Commands
	local.Postqueue = cfg.Postqueue
	local.MailLog = cfg.MailLog
	local.LogCommands = cfg.LogCommands
	local.MailConfig = cfg.MailConfig
	local.GmailBound = &GmailBound{Resolver: cfg.Resolver, Domains: cfg.GmailDomains, MailLog: cfg.MailLogBound, Now: cfg.Now}
	local.Version = cfg.Version
	local.Now = cfg.Now
	local.Logger = cfg.Logger
	s := &server{
		cfg:    cfg,
		local:  local,
		sem:    make(chan struct{}, cfg.MaxProbes),
		replay: cfg.Replay,
		log:    cfg.Logger,
		now:    cfg.Now,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathHealthz, s.healthz)
	mux.Handle("POST "+PathProbe, s.signed(s.probe))
	mux.Handle("GET "+PathInfo, s.signed(s.info))
	mux.Handle("GET "+PathQueue, s.signed(s.queue))
	mux.Handle("GET "+PathLog, s.signed(s.mailLog))
	mux.Handle("GET "+PathPolicy, s.signed(s.policy))
	mux.Handle("GET "+PathMTASTS, s.signed(s.mtasts))
	return s.recoverer(s.dated(mux))
}

// recoverer turns a panic into a 500 and a log line.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("agent: panic while serving a request", "method", r.Method, "path", r.URL.Path,
					"remote", r.RemoteAddr, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				httpError(w, http.StatusInternalServerError, "internal error: see the agent's log")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// signed caps and reads the body, checks the signature and the replay
// cache, and hands the exact body bytes to h.
func (s *server) signed(h func(w http.ResponseWriter, r *http.Request, body []byte)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				s.log.Warn("agent: request body too large", "path", r.URL.Path, "remote", r.RemoteAddr, "limit", s.cfg.MaxBody)
				httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", s.cfg.MaxBody))
				return
			}
			httpError(w, http.StatusBadRequest, "could not read the request body")
			return
		}
		now := s.now()
		tsh, sigh := r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature)
		secrets := s.cfg.Secrets
		if s.cfg.SecretsFunc != nil {
			secrets = s.cfg.SecretsFunc()
		}
		// The signed path carries the query string, when there is one (the
		// bot's nonce on reads).
		signed := r.URL.Path
		if r.URL.RawQuery != "" {
			signed += "?" + r.URL.RawQuery
		}
		if err := Verify(secrets, tsh, sigh, r.Method, signed, body, now); err != nil {
			s.log.Warn("agent: refused a request", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", err.Error())
			httpError(w, http.StatusUnauthorized, err.Error())
			return
		}
		ts, _ := parseTimestamp(tsh) // checked by Verify
		if nb := s.cfg.NotBefore; !nb.IsZero() && ts < nb.Unix() {
			msg := fmt.Sprintf("%s: request signed before the agent started (it keeps no replay cache across restarts): sign it again", ErrSignature)
			s.log.Warn("agent: refused a request", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", msg)
			httpError(w, http.StatusUnauthorized, msg)
			return
		}
		// Verify accepts the hex digits in either case, so the cache keys
		// on one spelling: a re-cased copy is the same signature.
		if err := s.replay.check(strings.ToLower(sigh), time.Unix(ts, 0).Add(MaxSkew), now); err != nil {
			if errors.Is(err, errReplayStore) {
				s.log.Error("agent: refused a request: its signature cannot be saved in the replay cache (check state_dir)",
					"path", r.URL.Path, "remote", r.RemoteAddr, "error", err.Error())
				httpError(w, http.StatusServiceUnavailable, "the agent cannot save its replay cache: see the agent's log")
				return
			}
			s.log.Warn("agent: refused a request", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", err.Error())
			httpError(w, http.StatusUnauthorized, err.Error())
			return
		}
		h(w, r, body)
	})
}

// dated sets the Date header from the agent's clock, so that a client
// refused for clock skew can tell how far off the clocks are.
func (s *server) dated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", s.now().UTC().Format(http.TimeFormat))
		next.ServeHTTP(w, r)
	})
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

// decodeProbeRequest parses the body of POST /v1/probe strictly: unknown
// fields, trailing data, a bad family or malformed MX names are errors. An
// empty body means default options.
func decodeProbeRequest(body []byte) (Options, error) {
	var opts Options
	if len(bytes.TrimSpace(body)) == 0 {
		return opts, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&opts); err != nil {
		return Options{}, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Options{}, fmt.Errorf("%w: data after the JSON object", ErrOptions)
	}
	if !ValidFamily(opts.Family) {
		return Options{}, fmt.Errorf("%w: family %q (want 4, 6 or any)", ErrOptions, truncate(opts.Family, 20))
	}
	if len(opts.MX) > maxRequestMX {
		return Options{}, fmt.Errorf("%w: %d MX hosts (at most %d)", ErrOptions, len(opts.MX), maxRequestMX)
	}
	if len(opts.Sources) > maxRequestSources {
		return Options{}, fmt.Errorf("%w: %d source IPs (at most %d)", ErrOptions, len(opts.Sources), maxRequestSources)
	}
	for _, src := range opts.Sources {
		a, err := netip.ParseAddr(src)
		if err != nil {
			return Options{}, fmt.Errorf("%w: source IP %q is not an IP address", ErrOptions, truncate(src, 40))
		}
		if err := CheckSourceIP(a); err != nil {
			return Options{}, fmt.Errorf("%w: %w", ErrOptions, err)
		}
	}
	for _, mx := range opts.MX {
		if mx == "" || len(mx) > 261 {
			return Options{}, fmt.Errorf("%w: MX host %q", ErrOptions, truncate(mx, 40))
		}
		for _, c := range mx {
			if c <= ' ' || c == 0x7f || c == '/' || c == '@' {
				return Options{}, fmt.Errorf("%w: MX host %q", ErrOptions, truncate(mx, 40))
			}
		}
	}
	return opts, nil
}

func (s *server) probe(w http.ResponseWriter, r *http.Request, body []byte) {
	opts, err := decodeProbeRequest(body)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		httpError(w, http.StatusTooManyRequests, fmt.Sprintf("%d probes already running: try again shortly", s.cfg.MaxProbes))
		return
	}
	start := s.now()
	ctx, cancel := context.WithTimeoutCause(r.Context(), s.cfg.ProbeTimeout, errProbeDeadline)
	defer cancel()
	rep, err := s.local.Probe(ctx, opts)
	// A read whose deadline came from ctx can return a moment before ctx's
	// own timer fires: a probe that ran up to the deadline was cut short
	// whichever noticed first.
	dl, _ := ctx.Deadline()
	if context.Cause(ctx) == errProbeDeadline || !time.Now().Before(dl) {
		// Results cut short by the agent's own deadline would read as
		// timeouts toward Gmail: none are reported.
		s.log.Error("agent: probe cut short", "remote", r.RemoteAddr, "limit", s.cfg.ProbeTimeout.String(), "mx", opts.MX)
		httpError(w, http.StatusServiceUnavailable, fmt.Sprintf("the probe took longer than the agent's limit of %s and was stopped; its results are dropped: narrow the probe or lower [target] timeout",
			s.cfg.ProbeTimeout))
		return
	}
	switch {
	case errors.Is(err, ErrNotConfigured):
		s.log.Warn("agent: refused a probe outside the configured target", "remote", r.RemoteAddr, "reason", err.Error())
		// err reads "relay: not a configured target: <why>": the answer
		// says it once, without the package's prefix.
		httpError(w, http.StatusForbidden, "not a configured target: "+strings.TrimPrefix(err.Error(), ErrNotConfigured.Error()+": "))
		return
	case errors.Is(err, ErrOptions):
		httpError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.log.Error("agent: probe could not run", "error", err.Error())
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	failed := 0
	for _, res := range rep.Results {
		if !res.OK {
			failed++
		}
	}
	s.log.Info("agent: probe done", "remote", r.RemoteAddr, "results", len(rep.Results), "failed", failed,
		"mx", opts.MX, "mta_stack", opts.MTAStack, "duration", s.now().Sub(start).Round(time.Millisecond).String())
	writeJSON(w, rep)
}

func (s *server) info(w http.ResponseWriter, r *http.Request, _ []byte) {
	info, err := s.local.Info(r.Context())
	if err != nil {
		s.log.Error("agent: info failed", "error", err.Error())
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, info)
}

func (s *server) queue(w http.ResponseWriter, r *http.Request, _ []byte) {
	q, err := s.local.Queue(r.Context())
	if err != nil {
		s.log.Error("agent: queue failed", "error", err.Error())
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, q)
}

func (s *server) policy(w http.ResponseWriter, r *http.Request, _ []byte) {
	p, err := s.local.Policy(r.Context())
	if err != nil {
		s.log.Error("agent: policy failed", "error", err.Error())
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, p)
}

func writeJSON(w http.ResponseWriter, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(data, '\n'))
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}
