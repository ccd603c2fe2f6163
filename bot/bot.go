// Package bot is the Slack side of gmailtls. Slash commands and button
// presses come in over Socket Mode (the default: an outbound WebSocket, no
// public URL) or HTTP (signed requests to /slack/commands and
// /slack/interactivity, each run only when its signature verifies, is
// fresh and was never accepted before: see ReplayMemory); each becomes a
// message.Request for the Handler.
//
// The flow of one slash command:
//
//  1. Slack delivers the command; the bot calls Handler.Acknowledge and
//     acknowledges at once (Slack allows 3 s) with its reply, e.g.
//     "probing relay-2 → 5 Gmail MX hosts…".
//  2. If more work is needed, a bounded worker pool calls Handler.Run.
//  3. The Response is rendered to Block Kit within Slack's limits (overflow
//     folds into the thread; all text is escaped, so that only a
//     message.Phrase's mentions are live) and delivered through the
//     command's response_url (Slack's hosts only: Config.ResponseURLHosts)
//     — at most five times and within 30 minutes, then through
//     chat.postMessage — honouring 429 Retry-After and retrying 5xx.
//
// Button presses (Re-run, Transcript, Evidence…) arrive as block_actions,
// are acknowledged empty, and run the same way; a Response with
// ReplaceOriginal replaces the message the button was on.
//
// Sender (NewSender) is the outbox's Slack: the outbox's scheduled reports
// and alerts go out through it, with the same Web API client as the
// replies, so one client serves the whole process. ClassifySlackError
// sorts its errors for the outbox and names them for the metrics.
//
// Every retry goes through internal/retry: a Web API call is retried as
// Config.APIRetries says (slack-go's own retries are off), the replies of
// a long thread wait out Slack's rate limits for as long as their deadline
// allows, a response_url post is retried a few times, and auth.test is
// retried at start until Slack answers. Tokens and signing secrets are
// never logged.
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gmailtls/gmailtls/internal/retry"
	"github.com/gmailtls/gmailtls/message"
	"github.com/slack-go/slack"
)

// Transport modes.
const (
	ModeSocket = "socket"
	ModeHTTP   = "http"
)

// DefaultAPIURL is Slack's Web API base.
const DefaultAPIURL = "https://slack.com/api/"

// Handler runs commands. commands implements it; tests use fakes.
type Handler interface {
	// Acknowledge parses req fast (no I/O that can wait) and returns the
	// immediate reply (e.g. "probing relay-2 → 5 Gmail MX hosts…", or the
	// full answer for help, errors and refusals). more=true means the bot
	// must then call Run in the background and deliver its Response via
	// the response_url.
	Acknowledge(ctx context.Context, req message.Request) (ack message.Response, more bool)
	// Run does the work (probes, queries) and returns the full answer.
	Run(ctx context.Context, req message.Request) message.Response
}

// Config configures a Bot.
type Config struct {
	// Mode is ModeSocket (default) or ModeHTTP.
	Mode string
	// BotToken is the xoxb- bot token (both modes).
	BotToken string
	// AppToken is the xapp- app-level token with connections:write
	// (Socket Mode only).
	AppToken string
	// SigningSecret verifies HTTP-mode requests (HTTP mode only).
	SigningSecret string
	// Replay remembers the HTTP-mode requests the bot accepted and the
	// Socket Mode envelopes it handled, so that none runs twice
	// (*storage.Store, which keeps them across restarts and shares them
	// between replicas: Slack may redeliver an envelope on another
	// replica's connection). Nil keeps them in memory; then HTTP-mode
	// requests signed before the bot started are refused.
	Replay ReplayMemory
	// APIURL is the Web API base (default DefaultAPIURL); a missing
	// trailing "/" is added.
	APIURL string
	// ResponseURLHosts are the hosts the bot posts to when a payload
	// names a response_url (default DefaultResponseURLHosts): https only,
	// http only toward loopback (tests). Any other response_url is
	// ignored and the answer goes through the Web API.
	ResponseURLHosts []string
	// Listen is the HTTP-mode address, e.g. "127.0.0.1:3000".
	Listen string
	// Command is the slash command the app defines (default "/gmailtls").
	Command string
	Logger  *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// HTTPClient carries Web API calls and response_url posts (default: a
	// client of the bot's own with a 30 s timeout).
	HTTPClient *http.Client
	// Workers bounds how many Handler.Run calls run at once (default 8).
	Workers int
	// QueueSize bounds how many commands may wait for a worker (default
	// 1024); beyond it, commands are answered "busy".
	QueueSize int
	// PingInterval is how long Socket Mode waits for Slack's WebSocket ping
	// before it reconnects (default 30 s).
	PingInterval time.Duration
	// APIRetries is how often a Web API call (chat.postMessage,
	// chat.update, chat.postEphemeral, a file upload) is retried on 429,
	// 5xx and dropped connections (0: 3; negative: never). The replies of
	// a thread and auth.test at start have policies of their own.
	APIRetries int
	// StartBackoff is the first wait between auth.test attempts at start
	// while Slack cannot be reached (network errors, 5xx, 429); it doubles
	// up to a minute (default 2 s). A rejected token ends Run at once.
	StartBackoff time.Duration
}

// maxStartBackoff caps the wait between auth.test attempts at start.
const maxStartBackoff = time.Minute

// webAPI is the part of slack.Client the bot calls. New builds one client
// for the process; the replies, the outbox's Sender and Socket Mode all
// use it.
type webAPI interface {
	AuthTestContext(ctx context.Context) (*slack.AuthTestResponse, error)
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
	PostEphemeralContext(ctx context.Context, channelID, userID string, options ...slack.MsgOption) (string, error)
	UploadFileContext(ctx context.Context, params slack.UploadFileParameters) (*slack.FileSummary, error)
}

// Bot connects a Handler to Slack. Create it with New, start it with Run.
type Bot struct {
	cfg Config
	h   Handler
	log *slog.Logger
	now func() time.Time
	// slack is the process's one Web API client; api is the same client
	// as the bot calls it.
	slack   *slack.Client
	api     webAPI
	retries int // of a Web API call (call); 0: none
	client  *http.Client
	ownTr   *http.Transport

	urls   *responseURLs
	seen   *dedupe
	replay ReplayMemory
	// replayFrom, when set (a replay memory in memory only), refuses
	// HTTP-mode requests signed before it; memoryOnly says so.
	replayFrom time.Time
	memoryOnly bool
	pool       *pool
	ackSem     chan struct{}
	acks       sync.WaitGroup

	running atomic.Bool
	ready   atomic.Bool
	addr    atomic.Pointer[net.Addr]
}

// New checks cfg and returns a Bot for h. It makes no network calls.
func New(cfg Config, h Handler) (*Bot, error) {
	var errs []error
	if cfg.Mode == "" {
		cfg.Mode = ModeSocket
	}
	if h == nil {
		errs = append(errs, errors.New("no command handler"))
	}
	if strings.TrimSpace(cfg.BotToken) == "" {
		errs = append(errs, errors.New("the bot token is empty: set SLACK_BOT_TOKEN (xoxb-…)"))
	}
	switch cfg.Mode {
	case ModeSocket:
		switch {
		case strings.TrimSpace(cfg.AppToken) == "":
			errs = append(errs, errors.New("socket mode needs an app-level token: set SLACK_APP_TOKEN (xapp-…, scope connections:write)"))
		case !strings.HasPrefix(cfg.AppToken, "xapp-"):
			errs = append(errs, errors.New("the app-level token does not start with xapp-: SLACK_APP_TOKEN must be the app-level token from Basic Information, not the bot token"))
		}
	case ModeHTTP:
		if cfg.SigningSecret == "" {
			errs = append(errs, errors.New("http mode needs the signing secret: set SLACK_SIGNING_SECRET"))
		}
		if cfg.Listen == "" {
			errs = append(errs, errors.New("http mode needs a listen address ([slack] listen)"))
		}
	default:
		errs = append(errs, fmt.Errorf("mode %q is not \"socket\" or \"http\"", cfg.Mode))
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	if !strings.HasSuffix(cfg.APIURL, "/") {
		cfg.APIURL += "/"
	}
	if u, err := url.Parse(cfg.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("api_url %q is not an http(s) URL", cfg.APIURL))
	}
	if cfg.Command == "" {
		cfg.Command = "/gmailtls"
	}
	if len(cfg.ResponseURLHosts) == 0 {
		cfg.ResponseURLHosts = DefaultResponseURLHosts
	}
	if !strings.HasPrefix(cfg.Command, "/") {
		errs = append(errs, fmt.Errorf("command %q must start with /", cfg.Command))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	b := &Bot{
		cfg:    cfg,
		h:      h,
		log:    cfg.Logger,
		now:    cfg.Now,
		client: cfg.HTTPClient,
		urls:   newResponseURLs(),
		seen:   newDedupe(),
		replay: cfg.Replay,
		ackSem: make(chan struct{}, 32),
	}
	if b.replay != nil {
		b.replay = newGroupReplay(b.replay)
	} else {
		b.replay = newMemoryReplay()
		b.replayFrom = cfg.Now().Truncate(time.Second)
		b.memoryOnly = cfg.Mode == ModeHTTP
	}
	if b.client == nil {
		b.ownTr = http.DefaultTransport.(*http.Transport).Clone()
		b.client = &http.Client{Timeout: 30 * time.Second, Transport: b.ownTr}
	}
	b.pool = newPool(cfg.Workers, cfg.QueueSize, b.runJob)

	switch {
	case cfg.APIRetries == 0:
		b.retries = 3
	case cfg.APIRetries > 0:
		b.retries = cfg.APIRetries
	}
	// No slack-go retries: every call is retried by the bot's own policy
	// (call, postPatiently), which each caller chooses.
	opts := []slack.Option{
		slack.OptionAPIURL(cfg.APIURL),
		slack.OptionHTTPClient(b.client),
		slack.OptionLog(slog.NewLogLogger(b.log.Handler(), slog.LevelDebug)),
	}
	if cfg.Mode == ModeSocket {
		opts = append(opts, slack.OptionAppLevelToken(cfg.AppToken))
	}
	b.slack = slack.New(cfg.BotToken, opts...)
	b.api = b.slack
	return b, nil
}

// Ready reports whether the bot can take commands: the Socket Mode
// connection is up, or the HTTP listener is listening.
func (b *Bot) Ready() bool { return b.ready.Load() }

// Addr is the HTTP-mode listener's address once it listens (nil before,
// and always in Socket Mode).
func (b *Bot) Addr() net.Addr {
	if a := b.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// Run checks the bot token with auth.test, then serves Slack until ctx is
// cancelled (SIGTERM): Socket Mode connects and reconnects on its own; HTTP
// mode listens on Config.Listen. It returns nil after a clean stop and an
// error when a token is rejected or the listener cannot start.
func (b *Bot) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("bot: Run called twice")
	}
	defer b.running.Store(false)
	defer func() {
		if b.ownTr != nil {
			b.ownTr.CloseIdleConnections()
		}
	}()

	who, err := b.authTest(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	b.log.Info("slack: bot token accepted", "team", who.Team, "team_id", who.TeamID, "bot_user", who.User, "bot_user_id", who.UserID, "mode", b.cfg.Mode)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var workers sync.WaitGroup
	b.pool.start(ctx, &workers)

	switch b.cfg.Mode {
	case ModeHTTP:
		err = b.runHTTP(ctx)
	default:
		err = b.runSocket(ctx)
	}
	b.ready.Store(false)
	cancel()
	b.acks.Wait()
	workers.Wait()
	if dropped := b.pool.drain(); dropped > 0 {
		b.log.Warn("slack: commands still queued at shutdown were dropped", "count", dropped)
	}
	return err
}

// authTest checks the bot token with auth.test. While Slack cannot be
// reached it keeps trying, with a growing wait, until ctx ends: the rest of
// serve (probing, the outbox, which keeps every message) runs meanwhile,
// and a Slack outage at start must not stop it. A rejected token is an
// error at once.
func (b *Bot) authTest(ctx context.Context) (*slack.AuthTestResponse, error) {
	wait := retry.Backoff{Initial: b.cfg.StartBackoff, Max: maxStartBackoff}
	if wait.Initial <= 0 {
		wait.Initial = 2 * time.Second
	}
	var who *slack.AuthTestResponse
	err := retry.Do(ctx, func(ctx context.Context) error {
		authCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var err error
		who, err = b.api.AuthTestContext(authCtx)
		return err
	}, func(err error, _ int) (time.Duration, error) {
		if code := slackCode(err); isAuthCode(code) {
			return 0, &authError{msg: fmt.Sprintf("slack: the bot token was rejected (%s): check SLACK_BOT_TOKEN", code), err: err}
		}
		// An HTTP 4xx other than 429 will not change by waiting: a wrong
		// api_url, a proxy refusing the bot.
		if sc, ok := errors.AsType[slack.StatusCodeError](err); ok && sc.Code >= 400 && sc.Code < 500 && sc.Code != http.StatusTooManyRequests {
			return 0, fmt.Errorf("slack: auth.test at %s answered %s, so the bot token could not be checked: check [slack] api_url: %w", b.cfg.APIURL, sc.Status, err)
		}
		next := wait.Next()
		b.log.Warn("slack: auth.test failed, so the bot token could not be checked yet; retrying (probing and alerts keep running, messages wait in the outbox)",
			"api_url", b.cfg.APIURL, "error", err.Error(), "retry_in", next.String())
		return next, nil
	})
	if err != nil {
		return nil, err
	}
	return who, nil
}

// isAuthCode reports whether a Slack error code means a rejected token.
func isAuthCode(code string) bool {
	return authErrors[code]
}

// authError is a rejected token: errors.Is(err, ErrAuth) holds and the
// Slack error stays reachable with errors.As.
type authError struct {
	msg string
	err error
}

func (e *authError) Error() string   { return e.msg }
func (e *authError) Unwrap() []error { return []error{ErrAuth, e.err} }
