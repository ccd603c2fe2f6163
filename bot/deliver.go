package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gmailtls/gmailtls/internal/retry"
	"github.com/gmailtls/gmailtls/message"
	"github.com/slack-go/slack"
)

// origin is where a command came from, and so where its answers go.
type origin struct {
	channel     string
	user        string
	responseURL string
	// messageTS is the message a button was on; threadTS its thread.
	messageTS string
	threadTS  string
	// ephemeral marks a button on an ephemeral message (which chat.update
	// cannot edit).
	ephemeral bool
}

// wireMessage is a message as Slack takes it in an HTTP reply, a Socket
// Mode ack payload or a response_url post.
type wireMessage struct {
	ResponseType    string        `json:"response_type,omitempty"`
	Text            string        `json:"text"`
	Blocks          []slack.Block `json:"blocks,omitempty"`
	ReplaceOriginal bool          `json:"replace_original,omitempty"`
	ThreadTS        string        `json:"thread_ts,omitempty"`
}

func responseType(ephemeral bool) string {
	if ephemeral {
		return slack.ResponseTypeEphemeral
	}
	return slack.ResponseTypeInChannel
}

// Delivery bounds. Slack takes about one message a second per channel
// (after a short burst) and answers faster posting with 429 and a
// Retry-After, so a thread of n replies needs about n seconds, more when
// other messages share the channel: the deadline of a delivery grows with
// its number of messages. A delivery is detached from shutdown, so that a
// result finished as shutdown begins still reaches Slack, but it is cut
// short shutdownGrace after shutdown began.
const (
	// deliveryTimeout bounds delivering a Response without a thread, and
	// is the base of a thread's deadline.
	deliveryTimeout = 20 * time.Second
	// replyBudget is added to the deadline for every thread reply.
	replyBudget = 5 * time.Second
	// callTimeout bounds one attempt at posting a thread reply.
	callTimeout = 20 * time.Second
	// replyRetries is how often a thread reply is retried after a server
	// or network error; 429s are waited out for as long as the deadline
	// allows.
	replyRetries = 3
	// shutdownGrace is how long deliveries go on after shutdown began.
	shutdownGrace = 20 * time.Second
)

// deliveryBudget is the deadline for delivering a message and n replies.
func deliveryBudget(n int) time.Duration {
	return deliveryTimeout + time.Duration(n)*replyBudget
}

// errShutdown is the cause of a delivery cut short by shutdown.
var errShutdown = errors.New("slack: the bot is shutting down")

// deliveryContext detaches a delivery from ctx, so that a result finished
// as shutdown begins still reaches Slack, and cancels it grace after ctx
// ends, so that a long thread under rate limiting cannot hold the shutdown
// up. The returned cancel must be called when the delivery is done.
func deliveryContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	dctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel(errShutdown)
		case <-dctx.Done():
		}
	})
	return dctx, func() {
		stop()
		cancel(context.Canceled)
	}
}

// runJob is the worker pool's body.
func (b *Bot) runJob(ctx context.Context, j job) {
	defer func() {
		if r := recover(); r != nil {
			b.log.Error("slack: a background command panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	// One delivery context for the job's deliveries, so that together they
	// end within shutdownGrace of shutdown, not each in its own.
	dctx, cancel := deliveryContext(ctx, shutdownGrace)
	defer cancel()
	if j.pre != nil {
		if err := b.deliver(dctx, j.org, *j.pre); err != nil {
			b.log.Warn("slack: could not deliver a reply", "channel", j.org.channel, "err", err)
		}
	}
	if !j.run {
		return
	}
	resp := b.safeRun(ctx, j.req)
	if err := b.deliver(dctx, j.org, resp); err != nil {
		b.log.Warn("slack: could not deliver a result", "channel", j.org.channel, "command", j.req.Text, "action", j.req.Action, "err", err)
	}
}

// safeRun calls Handler.Run and turns a panic into an error reply.
func (b *Bot) safeRun(ctx context.Context, req message.Request) (resp message.Response) {
	defer func() {
		if r := recover(); r != nil {
			b.log.Error("slack: command handler panicked", "command", req.Text, "action", req.Action, "panic", r, "stack", string(debug.Stack()))
			resp = internalError(req, b.now())
		}
	}()
	return b.h.Run(ctx, req)
}

// acknowledge calls Handler.Acknowledge with a deadline inside Slack's 3 s
// and turns a panic into an error reply.
func (b *Bot) acknowledge(ctx context.Context, req message.Request) (resp message.Response, more bool) {
	defer func() {
		if r := recover(); r != nil {
			b.log.Error("slack: command handler panicked while acknowledging", "command", req.Text, "action", req.Action, "panic", r, "stack", string(debug.Stack()))
			resp, more = internalError(req, b.now()), false
		}
	}()
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return b.h.Acknowledge(actx, req)
}

// internalError is the reply when a handler panicked.
func internalError(req message.Request, at time.Time) message.Response {
	what := strings.TrimSpace(req.Text)
	if what == "" {
		what = req.Action
	}
	return message.Response{
		Title:     "gmailtls hit an internal error",
		Verdict:   message.VerdictFail,
		Summary:   "gmailtls hit an internal error running " + what,
		Sections:  []message.Section{{Lines: []string{"The command `" + what + "` failed inside gmailtls. The bot's log has the details; please report it with the time below."}}},
		Context:   at.Format(time.RFC3339),
		Ephemeral: true,
	}
}

// isEmpty reports whether r has nothing to show.
func isEmpty(r message.Response) bool {
	return r.Title == "" && r.Summary == "" && r.Context == "" && len(r.Sections) == 0 &&
		len(r.Buttons) == 0 && len(r.Thread) == 0
}

// deliver sends r where org says: replacing the original message, as an
// ephemeral reply, or in the channel, with its thread.
func (b *Bot) deliver(ctx context.Context, org origin, r message.Response) error {
	if isEmpty(r) {
		return nil
	}
	rendered := RenderMessages(r)
	ctx, cancel := context.WithTimeout(ctx, deliveryBudget(len(rendered.Thread)))
	defer cancel()
	switch {
	case r.ReplaceOriginal && (org.responseURL != "" || org.messageTS != ""):
		errs := []error{b.replace(ctx, org, rendered.Main)}
		if len(rendered.Thread) > 0 {
			if org.ephemeral || r.Ephemeral || org.messageTS == "" {
				errs = append(errs, b.sendEphemeralAll(ctx, org, rendered.Thread))
			} else {
				parent := org.threadTS
				if parent == "" {
					parent = org.messageTS
				}
				errs = append(errs, b.postReplies(ctx, org.channel, parent, rendered.Thread))
			}
		}
		return errors.Join(errs...)
	case r.Ephemeral:
		return b.sendEphemeralAll(ctx, org, append([]Message{rendered.Main}, rendered.Thread...))
	case len(rendered.Thread) == 0:
		return b.sendInChannel(ctx, org, rendered.Main)
	}

	// A message with a thread needs its ts, which only chat.postMessage
	// returns.
	ts, err := b.postPatiently(ctx, org.channel, rendered.Main, "")
	if err == nil {
		return b.postReplies(ctx, org.channel, ts, rendered.Thread)
	}
	if !IsPermanent(err) || org.responseURL == "" {
		return err
	}
	// The bot cannot post here (typically not_in_channel): the
	// response_url still can, so send the thread as follow-up messages.
	b.log.Info("slack: posting through the response_url instead", "channel", org.channel, "reason", slackCode(err), "hint", hint(err))
	var errs []error
	for _, m := range append([]Message{rendered.Main}, rendered.Thread...) {
		if !b.urls.take(org.responseURL, b.now()) {
			errs = append(errs, fmt.Errorf("slack: the response_url is used up; %d messages of the reply were not delivered: %w", len(rendered.Thread)+1, err))
			break
		}
		if e := b.postResponseURL(ctx, org.responseURL, wireOf(m, slack.ResponseTypeInChannel)); e != nil {
			errs = append(errs, e)
			break
		}
	}
	return errors.Join(errs...)
}

func wireOf(m Message, responseType string) wireMessage {
	return wireMessage{ResponseType: responseType, Text: m.Text, Blocks: m.Blocks}
}

// replace replaces the message a button was on: through the response_url,
// else with chat.update, else (ephemeral original) as a new ephemeral.
func (b *Bot) replace(ctx context.Context, org origin, m Message) error {
	if b.urls.take(org.responseURL, b.now()) {
		w := wireOf(m, "")
		w.ReplaceOriginal = true
		err := b.postResponseURL(ctx, org.responseURL, w)
		if err == nil {
			return nil
		}
		b.log.Warn("slack: replacing through the response_url failed; falling back to the Web API", "err", err)
	}
	if !org.ephemeral && org.messageTS != "" && org.channel != "" {
		return b.updateMessage(ctx, org.channel, org.messageTS, m)
	}
	return b.postEphemeral(ctx, org, m)
}

// sendInChannel posts m in the channel: through the response_url while it
// lasts, then with chat.postMessage.
func (b *Bot) sendInChannel(ctx context.Context, org origin, m Message) error {
	if b.urls.take(org.responseURL, b.now()) {
		err := b.postResponseURL(ctx, org.responseURL, wireOf(m, slack.ResponseTypeInChannel))
		if err == nil {
			return nil
		}
		b.log.Warn("slack: posting through the response_url failed; falling back to chat.postMessage", "err", err)
	}
	_, err := b.postMessage(ctx, org.channel, m, "")
	return err
}

// sendEphemeralAll sends messages only the requester sees: through the
// response_url while it lasts, then with chat.postEphemeral.
func (b *Bot) sendEphemeralAll(ctx context.Context, org origin, ms []Message) error {
	var errs []error
	for _, m := range ms {
		if b.urls.take(org.responseURL, b.now()) {
			err := b.postResponseURL(ctx, org.responseURL, wireOf(m, slack.ResponseTypeEphemeral))
			if err == nil {
				continue
			}
			b.log.Warn("slack: posting through the response_url failed; falling back to chat.postEphemeral", "err", err)
		}
		if err := b.postEphemeral(ctx, org, m); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func msgOptions(m Message, threadTS string) []slack.MsgOption {
	opts := []slack.MsgOption{slack.MsgOptionText(m.Text, false)}
	if len(m.Blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(m.Blocks...))
	}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
	}
	return opts
}

// webAPIError words a Web API failure for an operator.
func webAPIError(method, channel string, err error) error {
	if h := hint(err); h != "" {
		return fmt.Errorf("slack: %s in channel %s failed (%s): %w", method, channel, h, err)
	}
	return fmt.Errorf("slack: %s in channel %s failed: %w", method, channel, err)
}

func (b *Bot) postMessage(ctx context.Context, channel string, m Message, threadTS string) (string, error) {
	var ts string
	err := b.call(ctx, func(ctx context.Context) error {
		var err error
		_, ts, err = b.api.PostMessageContext(ctx, channel, msgOptions(m, threadTS)...)
		return err
	})
	if err != nil {
		return "", webAPIError("chat.postMessage", channel, err)
	}
	return ts, nil
}

func (b *Bot) updateMessage(ctx context.Context, channel, ts string, m Message) error {
	err := b.call(ctx, func(ctx context.Context) error {
		_, _, _, err := b.api.UpdateMessageContext(ctx, channel, ts, msgOptions(m, "")...)
		return err
	})
	if err != nil {
		return webAPIError("chat.update", channel, err)
	}
	return nil
}

func (b *Bot) postEphemeral(ctx context.Context, org origin, m Message) error {
	if org.channel == "" || org.user == "" {
		return errors.New("slack: no channel and user to send an ephemeral reply to")
	}
	err := b.call(ctx, func(ctx context.Context) error {
		_, err := b.api.PostEphemeralContext(ctx, org.channel, org.user, msgOptions(m, "")...)
		return err
	})
	if err != nil {
		return webAPIError("chat.postEphemeral", org.channel, err)
	}
	return nil
}

// Web API retry policy (call), as slack-go's own retries had it: a 429 is
// waited out as its Retry-After says (at least a second; 30 s when it says
// nothing), server errors and dropped connections back off from 250 ms
// doubling to 10 s; each wait gets a little jitter.
const (
	apiBackoff          = 250 * time.Millisecond
	apiMaxBackoff       = 10 * time.Second
	apiBackoffJitter    = 100 * time.Millisecond
	apiRetryAfterJitter = 250 * time.Millisecond
	apiRetryAfterUnsaid = 30 * time.Second
)

// call runs one Web API call, retried Config.APIRetries times on rate
// limits, server errors and dropped connections. Slack's own answers
// (ok:false with an error code) are not retried.
func (b *Bot) call(ctx context.Context, op func(ctx context.Context) error) error {
	if b.retries <= 0 {
		return op(ctx)
	}
	backoff := retry.Backoff{Initial: apiBackoff, Max: apiMaxBackoff, Jitter: apiBackoffJitter}
	return retry.Do(ctx, op, func(err error, failures int) (time.Duration, error) {
		if failures > b.retries {
			return 0, err
		}
		if rl, ok := errors.AsType[*slack.RateLimitedError](err); ok {
			return max(rl.RetryAfter, time.Second) + retry.Jitter(apiRetryAfterJitter), nil
		}
		sc, isStatus := errors.AsType[slack.StatusCodeError](err)
		switch {
		case isStatus && sc.Code == http.StatusTooManyRequests:
			return apiRetryAfterUnsaid + retry.Jitter(apiRetryAfterJitter), nil
		case isStatus && sc.Code >= http.StatusInternalServerError, !isStatus && connectionDropped(err):
			return backoff.Next(), nil
		}
		return 0, err
	})
}

// connectionDropped reports whether err is the connection to Slack failing
// (reset, refused, closed early) rather than an answer.
func connectionDropped(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// postReplies posts ms as thread replies under parent, in order. Rate
// limits do not drop the rest of the thread: every 429 is waited out as
// its Retry-After says (Slack took nothing, so no reply is repeated),
// within a deadline that grows with len(ms) (deliveryBudget). On failure
// the error says how many replies went out.
func (b *Bot) postReplies(ctx context.Context, channel, parent string, ms []Message) error {
	if len(ms) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, deliveryBudget(len(ms)))
	defer cancel()
	for i, m := range ms {
		if _, err := b.postPatiently(ctx, channel, m, parent); err != nil {
			return fmt.Errorf("slack: %d of %d thread replies were posted: %w", i, len(ms), err)
		}
	}
	return nil
}

// postPatiently posts m with chat.postMessage and returns its ts. A 429 is
// waited out for as long as its Retry-After says (defaultRetryAfter when it
// says nothing), as often as ctx's deadline allows: Slack took nothing, so
// nothing is repeated. Server and network errors are retried replyRetries
// times with backoff; each attempt is bounded by callTimeout. It calls the
// Web API directly, not through call: call would give up after
// Config.APIRetries 429s.
func (b *Bot) postPatiently(ctx context.Context, channel string, m Message, threadTS string) (string, error) {
	backoff := retry.Backoff{Initial: 250 * time.Millisecond}
	failures, limited := 0, 0
	var ts string
	err := retry.Do(ctx, func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		_, t, err := b.api.PostMessageContext(cctx, channel, msgOptions(m, threadTS)...)
		if err != nil {
			return webAPIError("chat.postMessage", channel, err)
		}
		ts = t
		return nil
	}, func(err error, _ int) (time.Duration, error) {
		if IsPermanent(err) {
			return 0, err
		}
		wait, ok := IsRateLimited(err)
		if ok {
			limited++
			if wait <= 0 {
				wait = defaultRetryAfter
			}
			wait = max(wait, time.Second)
		} else {
			failures++
			if failures > replyRetries {
				return 0, err
			}
			wait = backoff.Next()
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return 0, fmt.Errorf("slack: gave up after %d rate limits and %d errors: waiting %v more would pass the delivery deadline: %w", limited, failures, wait, err)
		}
		b.log.Debug("slack: retrying chat.postMessage", "channel", channel, "thread_ts", threadTS, "wait", wait, "err", err)
		return wait, nil
	})
	switch {
	case err == nil:
		return ts, nil
	case ctx.Err() != nil:
		return "", fmt.Errorf("slack: gave up on chat.postMessage: %w", err)
	}
	return "", err
}

// Response_url retry policy: 429 waits as long as Retry-After says (at
// most maxRetryAfter), 5xx and network errors back off from 250 ms.
const (
	responseURLRetries = 3
	maxRetryAfter      = 2 * time.Minute
	defaultRetryAfter  = 5 * time.Second
)

// postResponseURL posts m to a response_url with the bot's own HTTP client.
func (b *Bot) postResponseURL(ctx context.Context, u string, m wireMessage) error {
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("slack: encoding a response_url message: %w", err)
	}
	backoff := retry.Backoff{Initial: 250 * time.Millisecond}
	err = retry.Do(ctx, func(ctx context.Context) error {
		return b.postResponseURLOnce(ctx, u, body)
	}, func(err error, failures int) (time.Duration, error) {
		if failures > responseURLRetries || IsPermanent(err) {
			return 0, err
		}
		wait, limited := IsRateLimited(err)
		switch {
		case limited && wait <= 0:
			wait = defaultRetryAfter
		case limited && wait > maxRetryAfter:
			return 0, err
		case !limited:
			wait = backoff.Next()
		}
		b.log.Debug("slack: retrying a response_url post", "attempt", failures, "wait", wait, "err", err)
		return wait, nil
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("slack: gave up on a response_url post: %w", err)
	}
	return err
}

func (b *Bot) postResponseURLOnce(ctx context.Context, u string, body []byte) error {
	if !responseURLAllowed(u, b.cfg.ResponseURLHosts) {
		return errResponseURLRefused
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("slack: bad response_url: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("slack: posting to the response_url: %w", err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		var ra time.Duration
		if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s >= 0 {
			ra = time.Duration(s) * time.Second
		}
		return fmt.Errorf("slack: response_url rate limited: %w", &slack.RateLimitedError{RetryAfter: ra})
	case resp.StatusCode != http.StatusOK:
		code := strings.TrimSpace(string(text))
		var se struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(text, &se) == nil && se.Error != "" {
			code = se.Error
		}
		if code != "" && !strings.ContainsAny(code, " <{") && permanentErrors[code] {
			return fmt.Errorf("slack: response_url answered %s: %w", resp.Status, slack.SlackErrorResponse{Err: code})
		}
		return fmt.Errorf("slack: response_url answered %s: %w", resp.Status, slack.StatusCodeError{Code: resp.StatusCode, Status: resp.Status})
	}
	var ok struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
	if json.Unmarshal(text, &ok) == nil && ok.OK != nil && !*ok.OK && ok.Error != "" {
		return fmt.Errorf("slack: response_url refused the message: %w", slack.SlackErrorResponse{Err: ok.Error})
	}
	return nil
}

// UploadPNG uploads a PNG image to channel (in the thread threadTS when
// set) with Slack's files upload v2 flow: files.getUploadURLExternal, the
// upload itself, files.completeUploadExternal. The app needs the
// files:write scope; without it the error satisfies IsMissingScope.
func (b *Bot) UploadPNG(ctx context.Context, channel, threadTS, filename, title string, png []byte) error {
	if len(png) == 0 {
		return errors.New("slack: refusing to upload an empty image")
	}
	err := b.call(ctx, func(ctx context.Context) error {
		_, err := b.api.UploadFileContext(ctx, slack.UploadFileParameters{
			Reader:          bytes.NewReader(png),
			FileSize:        len(png),
			Filename:        filename,
			Title:           title,
			Channel:         channel,
			ThreadTimestamp: threadTS,
		})
		return err
	})
	if err == nil {
		return nil
	}
	if IsMissingScope(err) {
		return fmt.Errorf("slack: uploading %s needs the files:write scope: add it under OAuth & Permissions and reinstall the app: %w", filename, err)
	}
	return webAPIError("file upload of "+filename, channel, err)
}
