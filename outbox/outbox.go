// Package outbox delivers the messages that gmailtls writes to its SQLite
// outbox (alerts, updates, resolutions, reminders, reports) to Slack, so that
// nothing is lost while Slack is unreachable, rate-limiting, or the process
// is down.
//
// A message flows like this:
//
//  1. a producer (alerts, schedule) encodes a Payload and writes it with
//     storage.Enqueue under an idempotency key, so a second write of the same
//     alert is a no-op, and calls Worker.Notify;
//  2. Worker reads the pending messages in the order they were enqueued,
//     renders each one once with its Sender (bot.Sender for Slack) and
//     sends it: thread replies only once their parent has a Slack ts,
//     updates of an already posted message as chat.update, a file (a
//     report's heatmap) as an upload;
//  3. the Sender classifies an error (Class) and the outcome is stored:
//     the Slack ts of a delivered message (MarkSent); a rate limit pauses
//     the whole worker for Retry-After; Slack refusing
//     the bot token or the app's scopes pauses it too, from a minute
//     doubling to 15, keeping every message pending until an operator
//     fixes the token; a server or network error backs that message off; a
//     permanent error of the message itself (channel_not_found,
//     not_in_channel, msg_too_long) marks it failed with a log line and it
//     shows in `gmailtls status`.
//
// A long message is several Slack messages: the main message and the
// content folded out of it as replies in its thread. It is rendered once
// per delivery and its parts are posted in order; each of them is
// recorded as soon as Slack took it (MarkPartSent), so a retry after an
// error or a restart resumes with the first one missing, and the message
// counts as delivered, and its thread's later messages go out, only once
// its last reply did.
//
// Messages of one channel are delivered in order: while an earlier message
// of a channel waits for a retry, the later ones of that channel wait too.
// Because each outcome is written right after Slack answered, a restart
// delivers every message once; only a crash in the few milliseconds between
// Slack's answer and the write can post a message (or one thread reply of
// it) twice (chat.postMessage has no idempotency key).
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gmailtls/gmailtls/storage"
)

// Store is the part of storage.Store the worker uses.
type Store interface {
	PendingMessages(ctx context.Context, afterID int64, limit int) ([]storage.OutboxMessage, error)
	MarkSent(ctx context.Context, id int64, ts string) error
	MarkRetry(ctx context.Context, id int64, next time.Time, errText string) error
	MarkFailed(ctx context.Context, id int64, errText string) error
	MarkPartSent(ctx context.Context, id int64, part int, ts string) error
	RepliesSent(ctx context.Context, key string) (int, error)
	MessageByKey(ctx context.Context, key string) (storage.OutboxMessage, bool, error)
	// Enqueue writes the worker's own notes (see NoteKeyFilesWrite).
	Enqueuer
}

// ErrSuspended marks the stored error of a message kept while the service
// refuses the bot token or the app's scopes (Class.Suspended). The worker
// then pauses all delivery, from AuthPause doubling up to MaxAuthPause,
// and keeps the message pending.
var ErrSuspended = errors.New("outbox: Slack refuses the bot token or the app's scopes")

// Worker delivers due outbox messages. Set the exported fields before the
// first call; the zero values of the optional ones take the defaults.
type Worker struct {
	Store  Store
	Sender Sender
	// DrawChart draws the charts that an earlier release enqueued as
	// figures (see Payload.Chart); nil: they are left out with a warning.
	DrawChart DrawChart
	Now       func() time.Time
	Logger    *slog.Logger
	// MinBackoff and MaxBackoff bound the per-message retry delay after a
	// transient error (defaults 2s and 10m).
	MinBackoff, MaxBackoff time.Duration
	// Poll is how often the worker looks for due messages when not woken
	// (default 5s).
	Poll time.Duration
	// Batch is how many pending messages one read returns (default 100).
	Batch int
	// Claim, when set, is called before a message is sent, with its id:
	// the fenced claim of a leader among replicas (storage.ClaimMessage
	// under the leader's fence). storage.ErrDeposed stops delivery: Run
	// returns it, since another replica delivers now; storage.ErrNotPending
	// skips the message, delivered or given up meanwhile; any other error
	// ends the pass until the next poll. Nil sends without a claim (a
	// single process).
	Claim func(ctx context.Context, id int64) error
	// AuthPause and MaxAuthPause bound the pause of all delivery after an
	// ErrSuspended error: the first pause, doubled after each refusal in a
	// row (defaults 1m and 15m).
	AuthPause, MaxAuthPause time.Duration

	once      sync.Once
	wake      chan struct{}
	mu        sync.Mutex
	pausedTil time.Time
	refusals  int // ErrSuspended errors since the last delivery
}

// Defaults of the Worker's optional fields.
const (
	DefaultMinBackoff = 2 * time.Second
	DefaultMaxBackoff = 10 * time.Minute
	DefaultPoll       = 5 * time.Second
	DefaultBatch      = 100
	// DefaultRetryAfter is the pause after a rate limit without a
	// Retry-After.
	DefaultRetryAfter = 5 * time.Second
	// DefaultAuthPause and DefaultMaxAuthPause bound the pause after Slack
	// refused the bot token or the app's scopes.
	DefaultAuthPause    = time.Minute
	DefaultMaxAuthPause = 15 * time.Minute
)

func (w *Worker) init() {
	w.once.Do(func() {
		w.wake = make(chan struct{}, 1)
		if w.Now == nil {
			w.Now = time.Now
		}
		if w.Logger == nil {
			w.Logger = slog.New(slog.DiscardHandler)
		}
		if w.MinBackoff <= 0 {
			w.MinBackoff = DefaultMinBackoff
		}
		if w.MaxBackoff <= 0 {
			w.MaxBackoff = DefaultMaxBackoff
		}
		if w.Poll <= 0 {
			w.Poll = DefaultPoll
		}
		if w.Batch <= 0 {
			w.Batch = DefaultBatch
		}
		if w.AuthPause <= 0 {
			w.AuthPause = DefaultAuthPause
		}
		if w.MaxAuthPause <= 0 {
			w.MaxAuthPause = DefaultMaxAuthPause
		}
	})
}

// Notify wakes the worker after a message was enqueued. It never blocks.
func (w *Worker) Notify() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// PausedUntil reports until when a rate limit or a refused token pauses
// delivery.
func (w *Worker) PausedUntil() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pausedTil
}

// Run delivers messages until ctx ends; it returns ctx's error, or
// storage.ErrDeposed when Claim refused a message because this replica no
// longer leads.
func (w *Worker) Run(ctx context.Context) error {
	w.init()
	for {
		_, next, err := w.drain(ctx)
		if errors.Is(err, storage.ErrDeposed) {
			w.Logger.Warn("outbox: this replica no longer leads; delivery stops here, the leader delivers", "err", err)
			return err
		}
		if err != nil && ctx.Err() == nil {
			w.Logger.Error("outbox: delivery pass failed; retrying at the next poll", "err", err)
		}
		now := w.Now()
		wait := w.Poll
		if p := w.PausedUntil().Sub(now); p > 0 && p < wait {
			wait = p
		}
		if !next.IsZero() {
			if d := next.Sub(now); d < wait {
				wait = max(d, 10*time.Millisecond)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-w.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// Drain delivers the messages that are due now and returns how many it
// delivered. It stops early while Slack rate-limits or refuses the token.
func (w *Worker) Drain(ctx context.Context) (int, error) {
	w.init()
	n, _, err := w.drain(ctx)
	return n, err
}

// drain makes one delivery pass over every pending message, oldest first,
// reading them Batch at a time. next is the earliest retry time of a
// message left pending (zero when none).
func (w *Worker) drain(ctx context.Context) (delivered int, next time.Time, err error) {
	now := w.Now()
	if now.Before(w.PausedUntil()) {
		return 0, w.PausedUntil(), nil
	}
	blocked := map[string]bool{} // channels held back by an earlier message
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	var after int64
	for {
		// Every pending message in enqueue order, due or not: due-ness is
		// judged here, per channel, so that a message in backoff holds
		// back the later ones of its channel and no other.
		msgs, err := w.Store.PendingMessages(ctx, after, w.Batch)
		if err != nil {
			return delivered, next, fmt.Errorf("outbox: read pending messages: %w", err)
		}
		for _, m := range msgs {
			if ctx.Err() != nil {
				return delivered, next, ctx.Err()
			}
			if blocked[m.Channel] {
				continue
			}
			if m.NextAttempt.After(now) {
				blocked[m.Channel] = true
				earliest(m.NextAttempt)
				continue
			}
			out, err := w.deliver(ctx, m, now)
			if err != nil {
				return delivered, next, err
			}
			switch out.state {
			case sent:
				delivered++
			case waiting:
				blocked[m.Channel] = true
				earliest(now.Add(w.MinBackoff))
			case retry:
				blocked[m.Channel] = true
				earliest(out.next)
			case stop:
				return delivered, w.PausedUntil(), nil
			case skipped:
			}
		}
		if len(msgs) < w.Batch {
			return delivered, next, nil
		}
		after = msgs[len(msgs)-1].ID
	}
}

type state int

const (
	sent    state = iota
	waiting       // the parent has no ts yet: try again later, no attempt counted
	retry         // transient error: backed off until next
	failed        // permanent error: given up
	stop          // rate limited, token refused or ctx ended: end the pass
	skipped       // no longer pending (Claim): nothing to do
)

type outcome struct {
	state state
	next  time.Time
}

// deliver sends one message and records the outcome.
func (w *Worker) deliver(ctx context.Context, m storage.OutboxMessage, now time.Time) (outcome, error) {
	d := delivery{key: m.Key, channel: m.Channel, threadKey: m.ThreadKey}
	if m.ThreadKey != "" {
		ts, ready, err := w.parentTS(ctx, m.ThreadKey)
		if err != nil || !ready {
			return outcome{state: waiting}, err
		}
		d.threadTS = ts
	}
	if m.UpdateKey != "" {
		ts, ready, err := w.parentTS(ctx, m.UpdateKey)
		if err != nil || !ready {
			return outcome{state: waiting}, err
		}
		d.updateTS = ts
	}
	if w.Claim != nil {
		if err := w.Claim(ctx, m.ID); errors.Is(err, storage.ErrNotPending) {
			return outcome{state: skipped}, nil
		} else if err != nil {
			return outcome{}, fmt.Errorf("outbox: claim message %s before sending it: %w", m.Key, err)
		}
	}
	// The outcome is recorded even when ctx ends now: Slack has answered.
	wctx := context.WithoutCancel(ctx)
	if m.TS != "" {
		// An earlier attempt posted the main message, and perhaps some of
		// its thread replies.
		n, err := w.Store.RepliesSent(ctx, m.Key)
		if err != nil {
			return outcome{}, fmt.Errorf("outbox: read what was delivered of message %s: %w", m.Key, err)
		}
		d.postedTS, d.repliesPosted = m.TS, n
	}
	var recordErr error
	d.partSent = func(part int, ts string) error {
		if err := w.Store.MarkPartSent(wctx, m.ID, part, ts); err != nil {
			recordErr = fmt.Errorf("outbox: part %d of message %s was delivered but could not be recorded: %w", part, m.Key, err)
			return recordErr
		}
		return nil
	}
	ts, upload, sendErr := w.send(ctx, d, m.Payload)
	if recordErr != nil {
		return outcome{}, recordErr
	}
	if sendErr != nil && ctx.Err() != nil {
		return outcome{state: stop}, nil
	}
	var class Class
	if sendErr != nil {
		class = w.Sender.Classify(sendErr)
		if upload && class.MissingScope {
			// Not worth a retry: the report's text trend stands alone.
			w.noteMissingScope(ctx, d)
			sendErr = nil
		}
	}
	if sendErr == nil {
		if err := w.Store.MarkSent(wctx, m.ID, ts); err != nil {
			return outcome{}, fmt.Errorf("outbox: message %s was delivered but could not be marked sent: %w", m.Key, err)
		}
		w.mu.Lock()
		w.refusals = 0
		w.mu.Unlock()
		w.Logger.Info("outbox: delivered", "key", m.Key, "kind", m.Kind, "channel", m.Channel, "attempts", m.Attempts+1)
		return outcome{state: sent}, nil
	}
	switch {
	case class.Suspended:
		// Not the message's fault: every message would meet it. Checked
		// before Permanent, which the Sender may also say.
		sendErr = fmt.Errorf("%w: %w", ErrSuspended, sendErr)
		w.mu.Lock()
		pause := Backoff(w.refusals, w.AuthPause, w.MaxAuthPause)
		w.refusals++
		until := now.Add(pause)
		w.pausedTil = until
		w.mu.Unlock()
		w.Logger.Error("outbox: Slack refused the bot token or the app's scopes; all delivery is paused and every message kept: check SLACK_BOT_TOKEN (the xoxb- token of the installed app) and the app's OAuth scopes (chat:write), and reinstall the app after changing them",
			"pause", pause, "key", m.Key, "channel", m.Channel, "err", sendErr)
		return outcome{state: stop}, w.Store.MarkRetry(wctx, m.ID, until, sendErr.Error())
	case class.RateLimited:
		retryAfter := class.RetryAfter
		if retryAfter <= 0 {
			retryAfter = DefaultRetryAfter
		}
		until := now.Add(retryAfter)
		w.mu.Lock()
		w.pausedTil = until
		w.mu.Unlock()
		w.Logger.Warn("outbox: Slack is rate limiting; pausing delivery", "retry_after", retryAfter, "key", m.Key)
		return outcome{state: stop}, w.Store.MarkRetry(wctx, m.ID, until, sendErr.Error())
	case class.Permanent:
		w.Logger.Error("outbox: message cannot be delivered and was given up; check the channel ID in the config and that the bot is invited to the channel",
			"key", m.Key, "kind", m.Kind, "channel", m.Channel, "err", sendErr)
		return outcome{state: failed}, w.Store.MarkFailed(wctx, m.ID, sendErr.Error())
	default:
		next := now.Add(Backoff(m.Attempts, w.MinBackoff, w.MaxBackoff))
		w.Logger.Warn("outbox: delivery failed; will retry", "key", m.Key, "attempts", m.Attempts+1, "next", next, "err", sendErr)
		return outcome{state: retry, next: next}, w.Store.MarkRetry(wctx, m.ID, next, sendErr.Error())
	}
}

// send decodes a stored payload and delivers it: a file upload (upload is
// true; there is no ts), or a Response rendered once and posted part by
// part.
func (w *Worker) send(ctx context.Context, d delivery, payload []byte) (ts string, upload bool, err error) {
	p, err := DecodePayload(payload)
	if err != nil {
		return "", false, fmt.Errorf("%w (message %s)", err, d.key)
	}
	if p.isUpload() {
		return "", true, w.upload(ctx, d, p)
	}
	ts, err = w.post(ctx, d, p.Response)
	return ts, false, err
}

// parentTS finds the Slack ts of the message with key. ready is false while
// that message waits for delivery, also while its main message is out but
// some of its thread replies are not, so that its thread stays in order. A
// parent that failed for good, or that does not exist, is ready, with the
// ts of its main message if that went out before the failure and else an
// empty ts, so the child is posted on its own rather than never.
func (w *Worker) parentTS(ctx context.Context, key string) (ts string, ready bool, err error) {
	p, found, err := w.Store.MessageByKey(ctx, key)
	if err != nil {
		return "", false, fmt.Errorf("outbox: look up message %s: %w", key, err)
	}
	if !found {
		return "", true, nil
	}
	switch p.State {
	case storage.OutboxSent:
		return p.TS, true, nil
	case storage.OutboxFailed:
		return p.TS, true, nil
	default:
		return "", false, nil
	}
}

// Backoff is the delay before retry number attempts+1: min doubled per
// attempt, capped at max.
func Backoff(attempts int, min, max time.Duration) time.Duration {
	d := min
	for range attempts {
		d *= 2
		if d >= max {
			return max
		}
	}
	return d
}
