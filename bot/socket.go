package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gmailtls/gmailtls/message"
	"github.com/gmailtls/gmailtls/storage"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// maxAckBytes bounds an ack payload: Slack silently drops Socket Mode
// responses of 20 KB or more. A bigger reply is acknowledged with its
// summary and delivered in full through the response_url.
const maxAckBytes = 16 << 10

// ackTimeout bounds queueing one ack for the WebSocket writer.
const ackTimeout = 2 * time.Second

// runSocket runs Socket Mode until ctx ends or a token is rejected. It
// keeps draining the client's events so that the library's reader and its
// ping handling never stall.
func (b *Bot) runSocket(ctx context.Context) error {
	client := socketmode.New(b.slack,
		socketmode.OptionLog(slog.NewLogLogger(b.log.Handler(), slog.LevelDebug)),
		socketmode.OptionPingInterval(b.cfg.PingInterval),
	)
	errc := make(chan error, 1)
	go func() { errc <- client.RunContext(ctx) }()
	for {
		select {
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			if code := slackCode(err); isAuthCode(code) {
				return &authError{msg: fmt.Sprintf("slack: the app-level token was rejected (%s): check SLACK_APP_TOKEN (an xapp- token with the connections:write scope)", code), err: err}
			}
			return fmt.Errorf("slack: socket mode stopped: %w", err)
		case <-ctx.Done():
			<-errc
			return nil
		case evt := <-client.Events:
			b.onSocketEvent(ctx, client, evt)
		}
	}
}

// onSocketEvent handles one event without blocking on Slack: acks and
// handler calls run on a bounded set of goroutines.
func (b *Bot) onSocketEvent(ctx context.Context, client *socketmode.Client, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		b.ready.Store(false)
		if e, ok := evt.Data.(*slack.ConnectingEvent); ok {
			b.log.Debug("slack: socket mode connecting", "attempt", e.Attempt, "connection", e.ConnectionCount)
		}
	case socketmode.EventTypeConnected:
		b.ready.Store(true)
		n := 0
		if e, ok := evt.Data.(*socketmode.ConnectedEvent); ok {
			n = e.ConnectionCount
		}
		b.log.Info("slack: socket mode connected", "connection", n)
	case socketmode.EventTypeConnectionError:
		b.ready.Store(false)
		if e, ok := evt.Data.(*slack.ConnectionErrorEvent); ok {
			b.log.Warn("slack: socket mode connection failed; retrying", "attempt", e.Attempt, "backoff", e.Backoff, "err", e.ErrorObj)
		}
	case socketmode.EventTypeInvalidAuth:
		b.ready.Store(false)
		b.log.Error("slack: socket mode authentication failed: check SLACK_APP_TOKEN")
	case socketmode.EventTypeHello:
		// Not an envelope: hello is never acknowledged.
		b.log.Debug("slack: socket mode hello")
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slack.SlashCommand)
		if !ok || evt.Request == nil || evt.Request.EnvelopeID == "" {
			return
		}
		id := evt.Request.EnvelopeID
		b.spawn(ctx, func() { b.onSlashEnvelope(ctx, client, id, cmd) })
	case socketmode.EventTypeInteractive:
		cb, ok := evt.Data.(slack.InteractionCallback)
		if !ok || evt.Request == nil || evt.Request.EnvelopeID == "" {
			return
		}
		id := evt.Request.EnvelopeID
		b.spawn(ctx, func() {
			first := b.firstEnvelope(ctx, id)
			// Ack empty first, then handle.
			b.ack(ctx, client, id, nil)
			if first {
				b.acceptInteraction(ctx, cb)
			}
		})
	case socketmode.EventTypeIncomingError, socketmode.EventTypeErrorBadMessage, socketmode.EventTypeErrorWriteFailed:
		b.log.Warn("slack: socket mode problem", "type", string(evt.Type), "detail", fmt.Sprint(evt.Data))
	default:
		// events_api and anything newer: acknowledge so Slack does not
		// retry; gmailtls subscribes to no events.
		if evt.Request != nil && evt.Request.EnvelopeID != "" {
			id := evt.Request.EnvelopeID
			b.spawn(ctx, func() { b.ack(ctx, client, id, nil) })
		}
	}
}

// spawn runs f on one of at most cap(b.ackSem) goroutines, recovering
// panics. It blocks while all are busy (acks are quick).
func (b *Bot) spawn(ctx context.Context, f func()) {
	select {
	case b.ackSem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	b.acks.Go(func() {
		defer func() { <-b.ackSem }()
		defer func() {
			if r := recover(); r != nil {
				b.log.Error("slack: handling a Slack request panicked", "panic", r, "stack", string(debug.Stack()))
			}
		}()
		f()
	})
}

// onSlashEnvelope acknowledges a slash_commands envelope with the
// Handler's immediate reply and queues the rest of the work.
func (b *Bot) onSlashEnvelope(ctx context.Context, client *socketmode.Client, id string, cmd slack.SlashCommand) {
	if !b.firstEnvelope(ctx, id) {
		// A redelivery: ack it so Slack stops, run nothing.
		b.log.Debug("slack: envelope redelivered; acknowledged again, not run twice", "envelope_id", id)
		b.ack(ctx, client, id, nil)
		return
	}
	reply, after := b.acceptSlash(ctx, cmd)
	b.ack(ctx, client, id, reply)
	after()
}

// firstEnvelope reports whether envelope id arrives for the first time, in
// this process or, with a shared replay memory (the database), in any
// replica: Slack may redeliver an envelope on another of the app's
// connections, another replica's. The process's own memory answers a
// redelivery to this replica without waiting; if the shared memory cannot
// be reached in time the envelope counts as new, so that a database
// hiccup costs at worst a double run on two replicas, not an unanswered
// command.
func (b *Bot) firstEnvelope(ctx context.Context, id string) bool {
	now := b.now()
	if !b.seen.first(id, now) {
		return false
	}
	if b.cfg.Replay == nil {
		return true // no shared memory: the process's own is all there is
	}
	rctx, cancel := context.WithTimeout(ctx, replayTimeout)
	defer cancel()
	seen, err := b.replay.RememberSlackRequest(rctx, now, storage.SeenKey{
		Digest: digest("slack-envelope", []byte(id)), Expires: now.Add(dedupeWindow),
	})
	if err != nil {
		b.log.Warn("slack: could not check the envelope against the other replicas; handling it", "envelope_id", id, "err", err)
		return true
	}
	if seen[0] {
		b.log.Info("slack: envelope redelivered after another replica (or this one before a restart) handled it; acknowledged, not run again", "envelope_id", id)
		return false
	}
	return true
}

// ack acknowledges envelope id, with reply as its payload when non-nil.
func (b *Bot) ack(ctx context.Context, client *socketmode.Client, id string, reply *wireMessage) {
	actx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	var payload any
	if reply != nil {
		payload = reply
	}
	if err := client.AckCtx(actx, id, payload); err != nil {
		b.log.Warn("slack: could not acknowledge a request; Slack will show a timeout", "envelope_id", id, "err", err)
	}
}

// acceptSlash turns a slash command into the immediate reply (the ack
// payload, or the HTTP-mode response body) and a function to call once
// that reply is sent, which queues the background work.
func (b *Bot) acceptSlash(ctx context.Context, cmd slack.SlashCommand) (*wireMessage, func()) {
	noop := func() {}
	if cmd.Command != "" && !strings.EqualFold(cmd.Command, b.cfg.Command) {
		b.log.Warn("slack: a slash command this bot is not configured for arrived", "command", cmd.Command, "configured", b.cfg.Command)
		return &wireMessage{
			ResponseType: slack.ResponseTypeEphemeral,
			Text:         escapeTrunc(fmt.Sprintf("This gmailtls bot is configured for %s, not %s: set [slack] command in its config.toml.", b.cfg.Command, cmd.Command), maxSectionText),
		}, noop
	}
	responseURL := b.checkedResponseURL(cmd.ResponseURL, cmd.UserID, cmd.ChannelID)
	b.urls.register(responseURL, b.now())
	org := origin{channel: cmd.ChannelID, user: cmd.UserID, responseURL: responseURL}
	req := message.Request{
		Text:      strings.TrimSpace(cmd.Text),
		UserID:    cmd.UserID,
		UserName:  cmd.UserName,
		ChannelID: cmd.ChannelID,
		Source:    message.SourceSlash,
	}
	b.log.Debug("slack: slash command", "user", cmd.UserID, "channel", cmd.ChannelID, "text", req.Text)
	ack, more := b.acknowledge(ctx, req)
	rendered := RenderMessages(ack)
	w := wireOf(rendered.Main, responseType(ack.Ephemeral))
	reply := &w
	var pre *message.Response
	if len(rendered.Thread) > 0 || wireSize(reply) > maxAckBytes {
		pre = &ack
		reply = &wireMessage{ResponseType: responseType(ack.Ephemeral), Text: FallbackText(ack)}
	}
	if !more && pre == nil {
		return reply, noop
	}
	if !b.pool.reserve() {
		b.log.Warn("slack: too many commands queued; answered busy", "queue", b.cfg.QueueSize)
		return &wireMessage{
			ResponseType: slack.ResponseTypeEphemeral,
			Text:         "gmailtls is busy: too many checks are waiting. Try again in a minute.",
		}, noop
	}
	j := job{org: org, req: req, pre: pre, run: more}
	return reply, func() { b.pool.submit(j) }
}

func wireSize(w *wireMessage) int {
	data, err := json.Marshal(w)
	if err != nil {
		return maxAckBytes + 1
	}
	return len(data)
}

// acceptInteraction handles a block_actions interaction (a button press)
// after it was acknowledged: Acknowledge, then queue the reply and Run.
func (b *Bot) acceptInteraction(ctx context.Context, cb slack.InteractionCallback) {
	if cb.Type != slack.InteractionTypeBlockActions {
		b.log.Debug("slack: ignoring an interaction", "type", string(cb.Type))
		return
	}
	channel := cb.Channel.ID
	if channel == "" {
		channel = cb.Container.ChannelID
	}
	ts := cb.Container.MessageTs
	if ts == "" {
		ts = cb.Message.Timestamp
	}
	responseURL := b.checkedResponseURL(cb.ResponseURL, cb.User.ID, channel)
	org := origin{
		channel:     channel,
		user:        cb.User.ID,
		responseURL: responseURL,
		messageTS:   ts,
		threadTS:    cb.Container.ThreadTs,
		ephemeral:   cb.Container.IsEphemeral,
	}
	b.urls.register(responseURL, b.now())
	name := cb.User.Name
	for _, a := range cb.ActionCallback.BlockActions {
		if a == nil || a.ActionID == "" {
			continue
		}
		req := message.Request{
			UserID:    cb.User.ID,
			UserName:  name,
			ChannelID: channel,
			Source:    message.SourceButton,
			Action:    baseAction(a.ActionID),
			Value:     a.Value,
		}
		b.log.Debug("slack: button pressed", "user", cb.User.ID, "channel", channel, "action", req.Action, "value", req.Value)
		ack, more := b.acknowledge(ctx, req)
		var pre *message.Response
		if !isEmpty(ack) {
			pre = &ack
		}
		if pre == nil && !more {
			continue
		}
		if !b.pool.reserve() {
			b.log.Warn("slack: too many commands queued; button answered busy", "queue", b.cfg.QueueSize)
			busy := message.Response{Summary: "gmailtls is busy: too many checks are waiting. Try again in a minute.", Ephemeral: true}
			if err := b.deliver(ctx, org, busy); err != nil {
				b.log.Warn("slack: could not tell the user the bot is busy", "err", err)
			}
			continue
		}
		b.pool.submit(job{org: org, req: req, pre: pre, run: more})
	}
}
